"""Tensor, TensorInfo, format_signature, validate_layout and runtime.tensor_from_numpy."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

from atriva_inference import InferenceRuntime, Tensor, TensorInfo
from atriva_inference.dtypes import STRING
from atriva_inference.errors import InvalidInputError
from atriva_inference.tensor import format_signature, validate_layout

# --------------------------------------------------------------------------- Tensor


def test_tensor_wraps_without_copy():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    tensor = Tensor(array)
    assert tensor.to_numpy() is array
    assert np.shares_memory(tensor.to_numpy(), array)
    array[0, 0, 0] = 42.0
    assert tensor.to_numpy()[0, 0, 0] == 42.0


def test_to_numpy_copy_true_copies():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    tensor = Tensor(array)
    copied = tensor.to_numpy(copy=True)
    assert copied is not array
    assert not np.shares_memory(copied, array)
    np.testing.assert_array_equal(copied, array)
    assert copied.dtype == array.dtype
    copied[0, 0] = -1
    assert array[0, 0] == 0


def test_tensor_properties():
    array = np.zeros((1, 3, 5, 7), dtype=np.uint8)
    tensor = Tensor(array, "NCHW")
    assert tensor.shape == (1, 3, 5, 7)
    assert tensor.dtype == np.uint8
    assert tensor.layout == "NCHW"
    assert tensor.device == "CPU"
    assert len(tensor) == 1


def test_tensor_without_layout():
    tensor = Tensor(np.zeros((4, 2), dtype=np.float64))
    assert tensor.layout is None
    assert tensor.shape == (4, 2)
    assert tensor.dtype == np.float64
    assert len(tensor) == 4


def test_tensor_repr():
    assert repr(Tensor(np.zeros((1, 3, 2, 2), np.float32), "NCHW")) == (
        "Tensor(float32[1,3,2,2], layout='NCHW')"
    )
    assert repr(Tensor(np.zeros((2,), np.int64))) == "Tensor(int64[2])"
    assert repr(Tensor(np.array(1.5))) == "Tensor(float64[])"
    assert repr(Tensor(np.array(["a"]))) == "Tensor(string[1])"


def test_tensor_np_asarray_shares_memory():
    array = np.arange(5, dtype=np.float32)
    tensor = Tensor(array)
    assert np.shares_memory(np.asarray(tensor), array)
    converted = np.asarray(tensor, dtype=np.float64)
    assert converted.dtype == np.float64
    np.testing.assert_array_equal(converted, array)
    assert not np.shares_memory(np.array(tensor, copy=True), array)


def test_tensor_np_asarray_copy_false_same_dtype_is_the_buffer():
    array = np.arange(5, dtype=np.float32)
    out = np.asarray(Tensor(array), copy=False)
    assert np.shares_memory(out, array)


def test_tensor_np_asarray_copy_false_refuses_a_needed_copy():
    array = np.arange(5, dtype=np.float32)
    with pytest.raises(ValueError):
        np.asarray(array, dtype=np.float64, copy=False)  # what numpy itself does
    with pytest.raises(ValueError):  # numpy>=2 __array__ protocol: never copy silently
        np.asarray(Tensor(array), dtype=np.float64, copy=False)
    # the same dtype needs no copy, so copy=False is fine there
    assert np.shares_memory(np.asarray(Tensor(array), dtype=np.float32, copy=False), array)


def test_tensor_info_str_and_frozen():
    info = TensorInfo("images", (1, 3, None, None), np.dtype(np.float32), "NCHW")
    assert str(info) == "images: float32[1,3,?,?] (NCHW)"
    assert str(TensorInfo("ids", None, np.dtype(np.int64))) == "ids: int64[...]"
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]


def test_tensor_info_of_sequences_and_optionals():
    """ONNX ports that are not plain tensors say so; a plain tensor's info is unchanged."""
    float32 = np.dtype(np.float32)
    plain = TensorInfo("x", (2,), float32)
    assert plain.is_tensor and not plain.sequence and not plain.optional
    assert plain == TensorInfo("x", (2,), float32, None, False, False)
    sequence = TensorInfo("s", None, float32, sequence=True)
    optional = TensorInfo("o", (2,), float32, optional=True)
    both = TensorInfo("b", None, float32, sequence=True, optional=True)
    assert not any(info.is_tensor for info in (sequence, optional, both))
    assert str(sequence) == "s: sequence<float32[...]>"
    assert str(optional) == "o: optional<float32[2]>"
    assert str(both) == "b: optional<sequence<float32[...]>>"


# --------------------------------------------------------------------------- format_signature


@pytest.mark.parametrize(
    ("dtype", "shape", "expected"),
    [
        (np.float32, (1, 3, None, None), "float32[1,3,?,?]"),
        (np.float32, [1, 3, 224, 224], "float32[1,3,224,224]"),
        (np.int64, (None,), "int64[?]"),
        (np.uint8, (), "uint8[]"),
        (np.float16, None, "float16[...]"),
        (ml_dtypes.bfloat16, (2, None), "bfloat16[2,?]"),
        (ml_dtypes.int4, (8,), "int4[8]"),
        (STRING, (3,), "string[3]"),
        (np.dtype("U10"), (0,), "string[0]"),
    ],
)
def test_format_signature(dtype, shape, expected):
    assert format_signature(np.dtype(dtype), shape) == expected


# --------------------------------------------------------------------------- validate_layout


@pytest.mark.parametrize(
    ("layout", "ndim", "expected"),
    [
        ("nchw", 4, "NCHW"),
        ("NCHW", 4, "NCHW"),
        ("nhwc", 4, "NHWC"),
        (" hwc ", 3, "HWC"),
        ("C", 1, "C"),
        ("N?HW", 4, "N?HW"),
        ("??", 2, "??"),  # "don't care" may repeat
        ("NCDHW", 5, "NCDHW"),
        ("xyz", 3, "XYZ"),
    ],
)
def test_validate_layout_ok(layout, ndim, expected):
    assert validate_layout(layout, ndim, "images") == expected


def test_validate_layout_none_is_none():
    assert validate_layout(None, 4, "images") is None
    assert validate_layout(None, 0, "images") is None


@pytest.mark.parametrize(
    "layout",
    ["NCCW", "nchN", "NnCH", "NC1W", "N-CH", "N C", "", "   ", "N.C"],
)
def test_validate_layout_rejects_malformed(layout):
    with pytest.raises(InvalidInputError) as info:
        validate_layout(layout, len(layout), "images")
    message = str(info.value)
    assert message.startswith("images:")
    assert repr(layout) in message
    assert "distinct letters" in message


@pytest.mark.parametrize(("layout", "ndim"), [("NCHW", 3), ("NCHW", 5), ("HWC", 4), ("C", 0)])
def test_validate_layout_rejects_wrong_rank(layout, ndim):
    with pytest.raises(InvalidInputError) as info:
        validate_layout(layout, ndim, "frame")
    message = str(info.value)
    assert message.startswith("frame:")
    assert f"names {len(layout)} dimensions" in message
    assert f"the data has {ndim}" in message


@pytest.mark.parametrize("layout", [4, b"NCHW", ["N", "C"], ("N", "C", "H", "W")])
def test_validate_layout_rejects_non_strings(layout):
    with pytest.raises(InvalidInputError, match="layout must be a string"):
        validate_layout(layout, 4, "images")


# --------------------------------------------------------------------------- tensor_from_numpy


@pytest.fixture(scope="module")
def runtime():
    rt = InferenceRuntime("onnxruntime")
    yield rt
    rt.close()


@pytest.mark.parametrize(
    "dtype", [np.float32, np.uint8, np.int64, np.bool_, ml_dtypes.bfloat16, ml_dtypes.int4]
)
def test_tensor_from_numpy_is_zero_copy(runtime, dtype):
    array = np.zeros((2, 3, 4), dtype=dtype)
    tensor = runtime.tensor_from_numpy(array)
    assert isinstance(tensor, Tensor)
    assert tensor.to_numpy() is array
    assert np.shares_memory(tensor.to_numpy(), array)
    assert tensor.shape == (2, 3, 4)
    assert tensor.dtype == np.dtype(dtype)
    assert tensor.layout is None
    assert tensor.device == "CPU"


def test_tensor_from_numpy_with_layout(runtime):
    array = np.zeros((1, 3, 8, 8), np.float32)
    tensor = runtime.tensor_from_numpy(array, layout="nchw")
    assert tensor.layout == "NCHW"
    assert tensor.to_numpy() is array


def test_tensor_from_numpy_accepts_a_tensor(runtime):
    array = np.ones((2, 2), np.float32)
    tensor = runtime.tensor_from_numpy(runtime.tensor_from_numpy(array), layout="hw")
    assert tensor.to_numpy() is array
    assert tensor.layout == "HW"


@pytest.mark.parametrize(
    ("shape", "override"),
    [
        ((12,), (1, 3, 2, 2)),
        ((3, 4), [4, 3]),
        ((2, 6), (12,)),
        ((6,), (np.int64(2), np.int32(3))),
        ((0, 5), (5, 0)),
        ((1,), ()),
    ],
)
def test_shape_override_is_a_view(runtime, shape, override):
    array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    tensor = runtime.tensor_from_numpy(array, shape_override=override)
    expected = tuple(int(d) for d in override)
    assert tensor.shape == expected
    out = tensor.to_numpy()
    assert out.size == array.size
    assert np.shares_memory(out, array) or array.size == 0
    np.testing.assert_array_equal(out.ravel(), array.ravel())


def test_shape_override_of_noncontiguous_data_keeps_values(runtime):
    array = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not C-contiguous
    tensor = runtime.tensor_from_numpy(array, shape_override=(2, 6))
    np.testing.assert_array_equal(tensor.to_numpy(), array.reshape(2, 6))


@pytest.mark.parametrize(
    ("shape", "override"),
    [((12,), (1, 3, 2, 3)), ((3, 4), (5, 2)), ((2, 2), (4, 0)), ((1,), (2,)), ((4,), ())],
)
def test_shape_override_with_wrong_element_count_names_both_shapes(runtime, shape, override):
    array = np.zeros(shape, np.float32)
    with pytest.raises(InvalidInputError) as info:
        runtime.tensor_from_numpy(array, shape_override=override)
    message = str(info.value)
    assert message.startswith("shape_override:")
    assert str(tuple(shape)) in message
    assert str(tuple(override)) in message
    assert f"{array.size} elements" in message


@pytest.mark.parametrize("override", [(-1, 4), (4, -1), (-2, -2), (-1,)])
def test_shape_override_negative_dims_refused(runtime, override):
    array = np.zeros(4, np.float32)
    with pytest.raises(InvalidInputError, match=">= 0"):
        runtime.tensor_from_numpy(array, shape_override=override)


@pytest.mark.parametrize("override", [5, ("a", 2), (None, 4), [[2, 2]], object()])
def test_shape_override_non_integer_sequences_refused(runtime, override):
    array = np.zeros(4, np.float32)
    with pytest.raises(InvalidInputError, match="sequence of integers"):
        runtime.tensor_from_numpy(array, shape_override=override)


@pytest.mark.parametrize("override", [(1.5, 4), (2, 2.5), ("2", 2), "22", "4", b"\x04"])
def test_shape_override_fractional_or_string_dims_refused(runtime, override):
    # int() would truncate 1.5 and parse "2"; a string would be iterated per character
    array = np.zeros(4, np.float32)
    with pytest.raises(InvalidInputError, match="sequence of integers"):
        runtime.tensor_from_numpy(array, shape_override=override)


def test_layout_is_validated_against_the_overridden_rank(runtime):
    array = np.zeros(12, np.float32)
    tensor = runtime.tensor_from_numpy(array, layout="NCHW", shape_override=(1, 3, 2, 2))
    assert tensor.layout == "NCHW"
    assert tensor.shape == (1, 3, 2, 2)
    with pytest.raises(InvalidInputError, match="names 1 dimensions, the data has 4"):
        runtime.tensor_from_numpy(array, layout="C", shape_override=(1, 3, 2, 2))


@pytest.mark.parametrize(
    ("shape", "layout"), [((2, 2), "NCHW"), ((1, 3, 4, 4), "HWC"), ((5,), "NC")]
)
def test_tensor_from_numpy_layout_rank_mismatch(runtime, shape, layout):
    with pytest.raises(InvalidInputError, match="tensor_from_numpy: layout"):
        runtime.tensor_from_numpy(np.zeros(shape, np.float32), layout=layout)


@pytest.mark.parametrize("layout", ["NCCW", "N1HW", 4])
def test_tensor_from_numpy_bad_layout(runtime, layout):
    with pytest.raises(InvalidInputError, match="tensor_from_numpy"):
        runtime.tensor_from_numpy(np.zeros((1, 2, 3, 4), np.float32), layout=layout)


@pytest.mark.parametrize(
    "value",
    [[1.0, 2.0], (1, 2), 3.0, None, "abc", memoryview(b"abcd")],
    ids=lambda v: type(v).__name__,
)
def test_tensor_from_numpy_rejects_non_arrays(runtime, value):
    with pytest.raises(InvalidInputError, match="expected a numpy array") as info:
        runtime.tensor_from_numpy(value)
    assert type(value).__name__ in str(info.value)


@pytest.mark.parametrize(
    "items", [[1, 2], [1.0, "a"], [None, None], [{"a": 1}], [b"x", 3]], ids=repr
)
def test_tensor_from_numpy_rejects_object_arrays_of_non_strings(runtime, items):
    array = np.empty(len(items), dtype=object)
    array[:] = items
    with pytest.raises(InvalidInputError, match="object array"):
        runtime.tensor_from_numpy(array)


def test_tensor_from_numpy_accepts_object_arrays_of_strings(runtime):
    array = np.array(["a", b"b", "ccc"], dtype=object)
    tensor = runtime.tensor_from_numpy(array)
    assert tensor.to_numpy() is array


def test_tensor_from_numpy_accepts_string_arrays(runtime):
    array = np.array(["hello", "world"])
    tensor = runtime.tensor_from_numpy(array)
    assert tensor.to_numpy() is array
    assert repr(tensor) == "Tensor(string[2])"


def test_tensor_from_numpy_accepts_zero_d(runtime):
    array = np.array(3.5, dtype=np.float32)
    tensor = runtime.tensor_from_numpy(array)
    assert tensor.shape == ()
    assert tensor.to_numpy() is array
    assert float(tensor.to_numpy()) == 3.5
    reshaped = runtime.tensor_from_numpy(array, shape_override=(1, 1))
    assert reshaped.shape == (1, 1)
    assert np.shares_memory(reshaped.to_numpy(), array)


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
def test_tensor_from_numpy_accepts_empty(runtime, shape):
    array = np.zeros(shape, np.float32)
    tensor = runtime.tensor_from_numpy(array)
    assert tensor.shape == shape
    assert tensor.to_numpy() is array


def test_tensor_from_numpy_empty_with_layout(runtime):
    tensor = runtime.tensor_from_numpy(np.zeros((0, 3), np.float32), layout="NC")
    assert tensor.layout == "NC"
    assert tensor.shape == (0, 3)


def test_shape_override_accepts_a_numpy_shape(runtime):
    array = np.arange(12, dtype=np.float32)
    tensor = runtime.tensor_from_numpy(array, shape_override=np.array([3, 4]))
    assert tensor.shape == (3, 4) and np.shares_memory(tensor.to_numpy(), array)
