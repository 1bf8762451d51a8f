"""Frames as cameras give them: layouts and dtypes converted in the graph, once per signature."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from atriva_inference import InvalidInputError
from tests import zoo

ATOL = 1e-4


def load(runtime, zoo_model, backend, **options):
    return runtime.load_model(zoo_model.path_for(backend), device="CPU", **options)


def uint8_frame(rng, shape=(16, 16, 3)):
    return rng.integers(0, 256, shape, dtype=np.uint8)


def as_model_input(frame_hwc):
    return np.ascontiguousarray(frame_hwc.transpose(2, 0, 1)[np.newaxis]).astype(np.float32)


def converted_in_graph(model) -> bool:
    return any(
        record.signature.endswith("converted in graph)") for record in model.get_profiling().shapes
    )


@pytest.mark.parametrize("layout", ["HWC", "NHWC"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float16])
def test_frames_match_manual_conversion(runtime, backend, conv_net, rng, layout, dtype):
    model = load(runtime, conv_net, backend)
    frame = uint8_frame(rng).astype(dtype)
    expected = model.run(as_model_input(frame))["output"].to_numpy()
    data = frame if layout == "HWC" else frame[np.newaxis]
    tensor = runtime.tensor_from_numpy(data, layout=layout)
    out = model.run({"input": tensor})["output"].to_numpy()
    np.testing.assert_allclose(out, expected, atol=ATOL)
    np.testing.assert_allclose(
        out, conv_net.reference({"input": as_model_input(frame)})["output"], atol=1e-3
    )
    assert converted_in_graph(model)


def test_uint8_nchw_frame_is_cast_in_the_graph(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = np.ascontiguousarray(uint8_frame(rng).transpose(2, 0, 1)[np.newaxis])
    out = model.run(frame)["output"].to_numpy()
    np.testing.assert_allclose(
        out, model.run(frame.astype(np.float32))["output"].to_numpy(), atol=ATOL
    )
    assert converted_in_graph(model)


def test_conversion_is_compiled_once_per_signature(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    for _ in range(3):
        model.run(runtime.tensor_from_numpy(uint8_frame(rng), layout="HWC"))
    info = model.shape_cache_info()
    assert (info.hits, info.misses) == (2, 1)
    variants = [v for v in model._engine._conversions.values() if v is not None]
    assert len(variants) == 1  # one specialized executable, taking the frame as it is
    (variant,) = variants
    assert variant.loaded.inputs[0].dtype == np.uint8
    assert variant.loaded.inputs[0].shape in ((1, 16, 16, 3),)


def test_openvino_frame_goes_in_untouched(conv_net, rng):
    """No transpose and no cast in Python: the request reads the camera's own buffer."""
    pytest.importorskip("openvino")
    from atriva_inference import InferenceRuntime

    with InferenceRuntime("openvino") as runtime:
        model = runtime.load_model(conv_net.ir_path)
        stream = model.create_stream()
        frame = uint8_frame(rng)
        stream.run(runtime.tensor_from_numpy(frame, layout="HWC"))
        (request,) = stream._holder.requests.values()
        assert np.shares_memory(request._request.get_input_tensor(0).data, frame)


def test_multi_input_with_one_converted(runtime, backend, multi_io, rng):
    model = load(runtime, multi_io, backend)
    a = rng.integers(0, 100, (2, 4)).astype(np.uint8)
    b = rng.random((2, 4), dtype=np.float32)
    out = model.run({"a": a, "b": b})
    np.testing.assert_allclose(out["z_sum"].to_numpy(), a + b, rtol=1e-6)
    np.testing.assert_allclose(out["a_prod"].to_numpy(), a * b, rtol=1e-6)


def test_read_only_frames(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = uint8_frame(rng)
    frame.setflags(write=False)  # as np.asarray(PIL image) gives them
    out = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))["output"].to_numpy()
    np.testing.assert_allclose(
        out, model.run(as_model_input(frame))["output"].to_numpy(), atol=ATOL
    )


# -- errors --------------------------------------------------------------------------------
def test_frame_of_the_wrong_size_names_both_layouts(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    frame = np.zeros((1, 30, 16, 3), np.uint8)
    with pytest.raises(InvalidInputError) as caught:
        model.run(runtime.tensor_from_numpy(frame, layout="NHWC"))
    assert str(caught.value) == (
        "input 'input': expected float32[1,3,16,16] (NCHW), got uint8[1,30,16,3] (NHWC)"
    )
    assert model.shape_cache_info().misses == 0  # nothing compiled for a bad frame


@pytest.mark.parametrize(
    ("layout", "shape", "fragment"),
    [
        ("NCXW", (1, 3, 16, 16), "cannot be converted"),
        ("HW", (16, 16), "cannot be converted"),
        ("NHWC?", (1, 16, 16, 3), "names 5 dimensions"),
    ],
)
def test_unconvertible_layouts(runtime, backend, conv_net, layout, shape, fragment):
    model = load(runtime, conv_net, backend)
    with pytest.raises(InvalidInputError, match=fragment):
        model.run(runtime.tensor_from_numpy(np.zeros(shape, np.float32), layout=layout))


def test_lossy_cast_is_refused_in_any_layout(runtime, backend, int_bool):
    model = load(runtime, int_bool, backend)
    with pytest.raises(InvalidInputError, match="fraction"):
        model.run({"i": np.full(4, 1.5), "flag": np.zeros(4, bool)})


# -- layout hints --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ambiguous(tmp_path_factory):
    """x float32[1,5,6,7] -> y = relu(x): no layout can be guessed from these dims."""
    model = zoo.make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 6, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 6, 7])],
    )
    onnx_path, ir_path = zoo.save(model, tmp_path_factory.mktemp("ambiguous"), "ambiguous")
    return zoo.ZooModel("ambiguous", onnx_path, ir_path, None, None)


def test_layout_hint_at_load(runtime, backend, ambiguous, rng):
    assert load(runtime, ambiguous, backend).inputs[0].layout is None
    model = load(runtime, ambiguous, backend, layout="NCHW")
    assert model.inputs[0].layout == "NCHW"
    x = rng.standard_normal((1, 5, 6, 7)).astype(np.float32)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = model.run(runtime.tensor_from_numpy(nhwc, layout="NHWC"))["y"].to_numpy()
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    assert load(runtime, ambiguous, backend, layout={"x": "NHWC"}).inputs[0].layout == "NHWC"


@pytest.mark.parametrize(
    ("layout", "fragment"),
    [
        ("NCH", "names 3 dimensions"),
        ({"nope": "NCHW"}, "unknown input"),
        ("NNCH", "distinct"),
        (5, "layout"),
    ],
)
def test_bad_layout_hints(runtime, backend, ambiguous, layout, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        load(runtime, ambiguous, backend, layout=layout)


def test_a_layout_string_for_a_multi_input_model_is_refused(runtime, backend, multi_io):
    with pytest.raises(InvalidInputError, match="2 inputs"):
        load(runtime, multi_io, backend, layout="NC")


# -- mean / scale compiled into the model --------------------------------------------------
MEAN, SCALE = [0.5, 0.25, -0.5], [0.2, 0.5, 2.0]


def normalized(x):
    return (x - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(SCALE, (1, 3, 1, 1))


def test_mean_and_scale_in_the_model(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend, mean=MEAN, scale=SCALE)
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    expected = conv_net.reference({"input": normalized(x)})["output"]
    np.testing.assert_allclose(model.run(x)["output"].to_numpy(), expected, atol=1e-3)
    frame = uint8_frame(rng)  # and a camera frame: convert, then normalize, all in the graph
    out = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))["output"].to_numpy()
    expected = conv_net.reference({"input": normalized(as_model_input(frame))})["output"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-2)


def test_mean_or_scale_alone_and_by_name(runtime, backend, conv_net, rng):
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    only_mean = load(runtime, conv_net, backend, mean={"input": MEAN})
    expected = conv_net.reference({"input": x - np.reshape(MEAN, (1, 3, 1, 1))})["output"]
    np.testing.assert_allclose(only_mean.run(x)["output"].to_numpy(), expected, atol=1e-3)
    only_scale = load(runtime, conv_net, backend, scale=SCALE)
    expected = conv_net.reference({"input": x / np.reshape(SCALE, (1, 3, 1, 1))})["output"]
    np.testing.assert_allclose(only_scale.run(x)["output"].to_numpy(), expected, atol=1e-3)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"mean": [0.5, 0.5], "scale": SCALE}, "as many scales as means"),
        ({"scale": [1.0, 0.0, 1.0]}, "non-zero"),
        ({"mean": ["a", 1, 2]}, "sequence of numbers"),
        ({"mean": []}, "at least one"),
        ({"mean": {"nope": MEAN}}, "no input 'nope'"),
    ],
)
def test_bad_mean_scale(runtime, backend, conv_net, options, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        load(runtime, conv_net, backend, **options)


def test_mean_needs_a_layout(runtime, backend, ambiguous):
    with pytest.raises(InvalidInputError, match="layout"):
        load(runtime, ambiguous, backend, mean=[0.0] * 5)
    model = load(runtime, ambiguous, backend, mean=[1.0] * 5, layout="NCHW")
    x = np.full((1, 5, 6, 7), 3.0, np.float32)
    np.testing.assert_array_equal(model.run(x)["y"].to_numpy(), np.full((1, 5, 6, 7), 2.0))


def test_one_frame_buffer_is_bound_once(runtime, backend, conv_net, rng):
    """A camera decoding into one HWC buffer: the stream binds it once and sees every frame."""
    model = load(runtime, conv_net, backend)
    stream = model.create_stream()
    buffer = np.empty((16, 16, 3), np.uint8)
    bound = set()
    for _ in range(3):
        buffer[...] = uint8_frame(rng)
        out = stream.run(runtime.tensor_from_numpy(buffer, layout="HWC"))["output"].to_numpy()
        np.testing.assert_allclose(
            out, model.run(as_model_input(buffer))["output"].to_numpy(), atol=ATOL
        )
        (request,) = stream._holder.requests.values()
        bound.add(id(request._bound[0]))
    assert len(bound) == 1


def test_graph_edits_reach_subgraphs_and_keep_output_names(runtime, backend, if_branch, rng):
    model = load(runtime, if_branch, backend, dynamic=True)
    assert [info.name for info in model.outputs] == ["output"]  # not the merged 'branch'
    frame = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    out = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))["output"].to_numpy()
    np.testing.assert_array_equal(out, as_model_input(frame) * 2)
    x = rng.random((2, 3, 5, 6), dtype=np.float32)  # dims freed by dynamic=True
    np.testing.assert_array_equal(model.run(x)["output"].to_numpy(), x * 2)
    normalized = load(runtime, if_branch, backend, mean=[1, 1, 1])
    x = rng.random((1, 3, 4, 4), dtype=np.float32)
    np.testing.assert_allclose(normalized.run(x)["output"].to_numpy(), (x - 1) * 2, rtol=1e-6)


@pytest.fixture(scope="module")
def passthrough(tmp_path_factory):
    """x float32[1,3,2,2] is also the graph's output: no graph can convert it in place."""
    model = zoo.make_model(
        [helper.make_node("Relu", ["x"], ["r"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 3, 2, 2]),
        ],
    )
    onnx_path, _ = zoo.save(model, tmp_path_factory.mktemp("passthrough"), "passthrough", ir=False)
    return onnx_path


def test_an_input_that_is_also_an_output_is_converted_in_numpy(passthrough, rng):
    from atriva_inference import InferenceRuntime

    with InferenceRuntime("onnxruntime") as runtime:
        model = runtime.load_model(passthrough)
        frame = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
        out = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))
        np.testing.assert_array_equal(out["x"].to_numpy(), as_model_input(frame))
        assert out["x"].dtype == np.float32


def test_mean_scale_refused_where_ambiguous_or_meaningless(runtime, backend, multi_io, int_bool):
    with pytest.raises(InvalidInputError, match="2 inputs"):
        load(runtime, multi_io, backend, mean=[0.5])
    with pytest.raises(InvalidInputError, match="float inputs"):
        load(runtime, int_bool, backend, mean={"i": [1]}, layout={"i": "C"})


# -- sequence and optional ports: the plan alone (no backend) ------------------------------
def test_a_sequence_plan_passes_ready_items_as_they_are_and_casts_the_rest():
    from atriva_inference import Tensor, TensorInfo
    from atriva_inference._preparation import PortPlan, plan_for

    plan = plan_for(TensorInfo("s", None, np.dtype(np.float32), sequence=True), "NCHW")
    assert isinstance(plan, PortPlan) and plan.layout is None  # no layout for a sequence
    assert plan.conversion([np.zeros(2)]) is None  # never converted in the graph
    ready = np.zeros((2, 3), np.float32)
    strided = np.arange(8, dtype=np.float32)[::2]
    items = plan.prepare((ready, strided, np.arange(3), Tensor(np.ones(2, ">f8")), [1.5]))
    assert items[0] is ready  # in place: no copy of an item already as the model takes it
    assert all(item.dtype == np.float32 and item.flags.c_contiguous for item in items)
    assert [item.tolist() for item in items[1:]] == [[0, 2, 4, 6], [0, 1, 2], [1, 1], [1.5]]
    assert plan.prepare([]) == []
    with pytest.raises(InvalidInputError, match=r"input 's' item 2: expected float32 data"):
        plan.prepare([ready, ready, np.zeros(1, np.complex64)])


def test_an_optional_plan_takes_none_or_the_tensor():
    from atriva_inference import TensorInfo
    from atriva_inference._preparation import plan_for

    plan = plan_for(TensorInfo("o", (2,), np.dtype(np.int64), optional=True), None)
    assert plan.prepare(None) is None
    assert plan.prepare(np.array([1, 2], np.int32)).dtype == np.int64
    with pytest.raises(InvalidInputError, match=r"input 'o': expected int64\[2\], got"):
        plan.prepare(np.zeros(3, np.int64))
    with pytest.raises(InvalidInputError, match="fraction"):
        plan.prepare(np.array([0.5, 1]))
