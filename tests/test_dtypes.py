"""Element-type classification, safe casting and sub-byte packing."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

from atriva_inference.dtypes import (
    STRING,
    SUBBYTE_BITS,
    convert_array,
    describe,
    kind_of,
    pack_subbyte,
    unpack_subbyte,
)
from atriva_inference.errors import InvalidInputError

# --------------------------------------------------------------------------- kind_of


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        (np.bool_, "b"),
        (np.int8, "i"),
        (np.int16, "i"),
        (np.int32, "i"),
        (np.int64, "i"),
        (np.uint8, "u"),
        (np.uint16, "u"),
        (np.uint32, "u"),
        (np.uint64, "u"),
        (np.float16, "f"),
        (np.float32, "f"),
        (np.float64, "f"),
        (np.complex64, "c"),
        (np.complex128, "c"),
        (np.str_, "T"),
        ("U7", "T"),
        (np.bytes_, "T"),
        ("S3", "T"),
        (object, "O"),
        ("V4", "O"),
        ([("a", np.int32), ("b", np.float32)], "O"),
        ("datetime64[s]", "O"),
    ],
)
def test_kind_of_numpy_types(dtype, kind):
    assert kind_of(np.dtype(dtype)) == kind


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        (ml_dtypes.bfloat16, "f"),
        (ml_dtypes.float8_e4m3fn, "f"),
        (ml_dtypes.float8_e4m3fnuz, "f"),
        (ml_dtypes.float8_e5m2, "f"),
        (ml_dtypes.float8_e5m2fnuz, "f"),
        (ml_dtypes.float8_e8m0fnu, "f"),
        (ml_dtypes.float4_e2m1fn, "f"),
        (ml_dtypes.int4, "i"),
        (ml_dtypes.int2, "i"),
        (ml_dtypes.uint4, "u"),
        (ml_dtypes.uint2, "u"),
    ],
)
def test_kind_of_ml_dtypes(dtype, kind):
    # numpy calls most of these 'V' (void); kind_of gives their real kind
    assert kind_of(np.dtype(dtype)) == kind


def test_describe():
    assert describe(np.dtype(np.float32)) == "float32"
    assert describe(np.dtype(ml_dtypes.bfloat16)) == "bfloat16"
    assert describe(np.dtype(ml_dtypes.int4)) == "int4"
    assert describe(STRING) == "string"
    assert describe(np.dtype("U12")) == "string"
    assert describe(np.dtype("S4")) == "string"


# --------------------------------------------------------------------------- convert_array: allowed


@pytest.mark.parametrize(
    "dtype",
    [np.float32, np.int64, np.bool_, np.uint8, ml_dtypes.bfloat16, ml_dtypes.int4, "U3"],
)
def test_same_dtype_returns_the_same_object(dtype):
    array = np.zeros((2, 3), dtype=dtype)
    assert convert_array(array, np.dtype(dtype), "x") is array


def test_same_dtype_noncontiguous_is_returned_untouched():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    view = base[:, ::2]
    assert convert_array(view, np.dtype(np.float32), "x") is view


def test_float64_to_float32():
    array = np.array([[0.5, -1.25], [3.0, 1e-3]], dtype=np.float64)
    out = convert_array(array, np.dtype(np.float32), "x")
    assert out.dtype == np.float32
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, array.astype(np.float32))
    assert not np.shares_memory(out, array)


@pytest.mark.parametrize("source", [np.int8, np.int32, np.int64, np.uint8, np.uint16])
def test_integers_to_float(source):
    array = np.array([0, 1, 7, 100], dtype=source)
    out = convert_array(array, np.dtype(np.float32), "x")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.0, 1.0, 7.0, 100.0])


def test_negative_integers_to_float():
    out = convert_array(np.array([-3, 5], np.int16), np.dtype(np.float64), "x")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [-3.0, 5.0])


def test_bool_to_float():
    out = convert_array(np.array([True, False, True]), np.dtype(np.float32), "x")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0, 0.0, 1.0])


def test_bfloat16_to_float32_exact():
    values = [1.0, -2.5, 0.15625, 3.0e38, 0.0]
    array = np.array(values, dtype=ml_dtypes.bfloat16)
    out = convert_array(array, np.dtype(np.float32), "x")
    assert out.dtype == np.float32
    # every bfloat16 is exactly a float32: compare with the bfloat16 values themselves
    np.testing.assert_array_equal(out, array.astype(np.float32))
    np.testing.assert_array_equal(out[:3], [1.0, -2.5, 0.15625])


def test_float32_to_bfloat16_values():
    array = np.array([1.0, -2.5, 0.15625, 1.00390625], dtype=np.float32)
    out = convert_array(array, np.dtype(ml_dtypes.bfloat16), "x")
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    # the first three are exact; 1 + 2**-8 rounds to nearest even -> 1.0
    np.testing.assert_array_equal(out.astype(np.float32), [1.0, -2.5, 0.15625, 1.0])


def test_float32_to_float8():
    array = np.array([1.0, -0.5, 2.0], dtype=np.float32)
    out = convert_array(array, np.dtype(ml_dtypes.float8_e4m3fn), "x")
    assert out.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    np.testing.assert_array_equal(out.astype(np.float32), array)


def test_float_to_complex_and_complex_narrowing_allowed():
    out = convert_array(np.array([1.5, -2.0]), np.dtype(np.complex64), "x")
    assert out.dtype == np.complex64
    np.testing.assert_array_equal(out, [1.5 + 0j, -2.0 + 0j])
    out = convert_array(np.array([1 + 2j]), np.dtype(np.complex64), "x")
    assert out.dtype == np.complex64
    np.testing.assert_array_equal(out, [1 + 2j])


@pytest.mark.parametrize(
    ("source", "target", "values"),
    [
        (np.int64, np.int32, [-(2**31), 0, 2**31 - 1]),
        (np.int64, np.int8, [-128, 5, 127]),
        (np.int32, np.uint8, [0, 200, 255]),
        (np.uint8, np.int8, [0, 100, 127]),
        (np.uint64, np.int64, [0, 2**63 - 1]),
        (np.int64, np.uint64, [0, 2**62]),
        (np.int64, ml_dtypes.int4, [-8, 0, 7]),
        (np.int32, ml_dtypes.uint4, [0, 15]),
    ],
)
def test_integer_narrowing_allowed_when_values_fit(source, target, values):
    array = np.array(values, dtype=source)
    out = convert_array(array, np.dtype(target), "x")
    assert out.dtype == np.dtype(target)
    assert [int(v) for v in out] == values


@pytest.mark.parametrize(("source", "target"), [(np.int8, np.int64), (np.uint8, np.int16)])
def test_integer_widening(source, target):
    array = np.array([0, 1, 100], dtype=source)
    out = convert_array(array, np.dtype(target), "x")
    assert out.dtype == target
    np.testing.assert_array_equal(out, [0, 1, 100])


def test_bool_to_integer_allowed():
    out = convert_array(np.array([True, False]), np.dtype(np.int32), "x")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [1, 0])


def test_empty_integer_array_narrows_without_range_check():
    out = convert_array(np.zeros((0, 4), np.int64), np.dtype(np.int8), "x")
    assert out.dtype == np.int8
    assert out.shape == (0, 4)


@pytest.mark.parametrize("source", [STRING, np.dtype("U5"), np.dtype("S5")])
def test_strings_into_a_string_input_pass_through(source):
    array = np.array(["ab", "cde"], dtype=source)
    assert convert_array(array, STRING, "text") is array


def test_object_array_of_strings_into_a_string_input_passes_through():
    array = np.array(["ab", "cde"], dtype=object)
    assert convert_array(array, STRING, "text") is array


# --------------------------------------------------------------------------- convert_array: refused


def _refused(array, target, what="images"):
    with pytest.raises(InvalidInputError) as info:
        convert_array(array, np.dtype(target), what)
    message = str(info.value)
    assert message.startswith(f"{what}:")
    assert describe(np.dtype(target)) in message
    assert describe(array.dtype) in message
    return message


@pytest.mark.parametrize(
    ("source", "target", "values"),
    [
        (np.int64, np.int32, [0, 2**31]),
        (np.int64, np.int32, [-(2**31) - 1, 0]),
        (np.uint8, np.int8, [1, 200]),
        (np.int16, np.uint8, [-1, 3]),
        (np.int64, np.uint64, [-5]),
        (np.uint64, np.int64, [2**63]),
        (np.int64, ml_dtypes.int4, [8]),
        (np.int8, ml_dtypes.uint4, [-1]),
    ],
)
def test_integer_narrowing_refused_when_values_do_not_fit(source, target, values):
    array = np.array(values, dtype=source)
    message = _refused(array, target, what="input_ids")
    info = ml_dtypes.iinfo(np.dtype(target))
    assert f"[{int(info.min)}, {int(info.max)}]" in message
    assert f"[{min(values)}, {max(values)}]" in message


def test_uint8_200_into_int8_message():
    message = _refused(np.array([200], np.uint8), np.int8, what="mask")
    assert message == (
        "mask: expected int8 values in [-128, 127], got uint8 values in [200, 200] which do not fit"
    )


@pytest.mark.parametrize("source", [np.float16, np.float32, np.float64, ml_dtypes.bfloat16])
@pytest.mark.parametrize("target", [np.int32, np.int64, np.uint8, ml_dtypes.int4])
def test_float_to_integer_refused_mentions_fraction(source, target):
    array = np.array([1.0, 2.0], dtype=source)  # even whole-number floats are refused
    message = _refused(array, target)
    assert "fraction" in message


@pytest.mark.parametrize("source", [np.int32, np.uint8, np.float32, np.int64])
def test_anything_but_bool_into_bool_refused(source):
    message = _refused(np.array([0, 1], dtype=source), np.bool_)
    assert "only bool data" in message


@pytest.mark.parametrize("target", [np.float32, np.float64, np.int64, ml_dtypes.bfloat16])
def test_complex_to_real_refused(target):
    message = _refused(np.array([1 + 0j], np.complex64), target)
    assert "imaginary" in message


@pytest.mark.parametrize("source", ["U3", "S3"])
@pytest.mark.parametrize("target", [np.float32, np.int64, ml_dtypes.bfloat16])
def test_strings_to_numbers_refused(source, target):
    message = _refused(np.array(["1", "2"], dtype=source), target)
    assert "strings are not numbers" in message


@pytest.mark.parametrize("target", [np.float32, np.int64, np.bool_])
def test_object_arrays_refused(target):
    array = np.array([1.0, 2.0], dtype=object)
    message = _refused(array, target)
    assert "object" in message


@pytest.mark.parametrize("source", [np.float32, np.int64, np.bool_])
def test_numbers_into_a_string_input_refused(source):
    message = _refused(np.array([1, 0], dtype=source), STRING, what="prompt")
    assert "takes strings" in message
    assert "expected string data" in message


def test_refusal_message_names_input_and_both_dtypes_exactly():
    with pytest.raises(InvalidInputError) as info:
        convert_array(np.array([0.5], np.float64), np.dtype(np.int64), "pixel_values")
    assert str(info.value).startswith("pixel_values: expected int64 data, got float64 (")


# --------------------------------------------------------------------------- sub-byte packing

SUBBYTE = [
    ml_dtypes.int4,
    ml_dtypes.uint4,
    ml_dtypes.int2,
    ml_dtypes.uint2,
    ml_dtypes.float4_e2m1fn,
]


def _all_codes(dtype, shape, seed):
    """An array of ``dtype`` whose raw codes cover every bit pattern of the type."""
    bits = SUBBYTE_BITS[np.dtype(dtype).name]
    count = int(np.prod(shape, dtype=np.int64))
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << bits, size=count, dtype=np.uint8)
    codes[: min(count, 1 << bits)] = np.arange(min(count, 1 << bits), dtype=np.uint8)
    return codes.view(dtype).reshape(shape)


def test_subbyte_bits_table():
    assert SUBBYTE_BITS == {
        "int4": 4,
        "uint4": 4,
        "float4_e2m1fn": 4,
        "int2": 2,
        "uint2": 2,
    }


def test_known_int4_packing():
    packed = pack_subbyte(np.array([1, -2, 3], dtype=ml_dtypes.int4))
    assert packed.dtype == np.uint8
    assert packed.tolist() == [0xE1, 0x03]


def test_known_uint4_packing():
    packed = pack_subbyte(np.array([0xA, 0x5, 0xF, 0x0], dtype=ml_dtypes.uint4))
    assert packed.tolist() == [0x5A, 0x0F]


def test_known_int2_packing():
    # codes: 1 -> 01, -1 -> 11, -2 -> 10, 0 -> 00; element 0 in the lowest bits
    packed = pack_subbyte(np.array([1, -1, -2, 0, 1], dtype=ml_dtypes.int2))
    assert packed.tolist() == [0b00_10_11_01, 0b01]


def test_known_int4_unpacking():
    out = unpack_subbyte(np.array([0xE1, 0x03], np.uint8), np.dtype(ml_dtypes.int4), (3,))
    assert out.dtype == np.dtype(ml_dtypes.int4)
    assert [int(v) for v in out] == [1, -2, 3]


@pytest.mark.parametrize("dtype", SUBBYTE, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "shape", [(1,), (2,), (3,), (4,), (5,), (16,), (17,), (2, 3), (3, 5, 7), (1, 1, 2, 2), (0,)]
)
def test_pack_unpack_round_trip_bit_exact(dtype, shape):
    array = _all_codes(dtype, shape, seed=sum(shape) + len(shape))
    bits = SUBBYTE_BITS[np.dtype(dtype).name]
    packed = pack_subbyte(array)
    per_byte = 8 // bits
    assert packed.dtype == np.uint8
    assert packed.ndim == 1
    assert packed.size == -(-array.size // per_byte)
    out = unpack_subbyte(packed, np.dtype(dtype), shape)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == shape
    np.testing.assert_array_equal(out.view(np.uint8), array.view(np.uint8))


@pytest.mark.parametrize("dtype", SUBBYTE, ids=lambda d: np.dtype(d).name)
def test_unused_high_bits_of_last_byte_are_zero(dtype):
    bits = SUBBYTE_BITS[np.dtype(dtype).name]
    per_byte = 8 // bits
    count = per_byte + 1  # one element spills into a second byte
    codes = np.full(count, (1 << bits) - 1, dtype=np.uint8)
    packed = pack_subbyte(codes.view(dtype))
    assert packed.tolist() == [0xFF, (1 << bits) - 1]


def test_pack_noncontiguous_input():
    base = np.array([[1, -2, 3, 4], [-8, 7, 0, -1]], dtype=ml_dtypes.int4)
    view = base[:, ::2]  # [[1, 3], [-8, 0]]
    packed = pack_subbyte(view)
    assert packed.tolist() == [0x31, 0x08]
    out = unpack_subbyte(packed, np.dtype(ml_dtypes.int4), (2, 2))
    assert [[int(v) for v in row] for row in out] == [[1, 3], [-8, 0]]


def test_round_trip_preserves_int4_values():
    values = list(range(-8, 8))
    array = np.array(values, dtype=ml_dtypes.int4).reshape(4, 4)
    out = unpack_subbyte(pack_subbyte(array), np.dtype(ml_dtypes.int4), (4, 4))
    assert [int(v) for v in out.ravel()] == values


def test_round_trip_preserves_float4_values():
    values = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.5, -6.0, -0.0]
    array = np.array(values, dtype=ml_dtypes.float4_e2m1fn)
    out = unpack_subbyte(pack_subbyte(array), np.dtype(ml_dtypes.float4_e2m1fn), (11,))
    np.testing.assert_array_equal(out.astype(np.float32), np.array(values, np.float32))
    assert np.signbit(out.astype(np.float32)[-1])


def test_unsupported_dtype_is_not_silently_packed():
    with pytest.raises((KeyError, ValueError), match=re.escape("float32")):
        pack_subbyte(np.zeros(3, np.float32))
