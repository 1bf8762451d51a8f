"""The conformance suite: every test here runs on every usable backend (the `backend` fixture)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import onnx
import pytest

from atriva_inference import (
    InferenceRuntime,
    InferenceRuntimeError,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
    RequestBusyError,
    Tensor,
)
from atriva_inference.backends import onnx_graph
from tests.conftest import BACKENDS

# f32 on both backends: OpenVINO runs f32 by default (never its silent bf16).
ATOL = 1e-4


def load(runtime, zoo_model, backend):
    return runtime.load_model(zoo_model.path_for(backend), device="CPU")


# -- the seed page, as written -------------------------------------------------------------
def test_seed_page_flow(runtime, backend, conv_net, rng):
    model = runtime.load_model(model_path=str(conv_net.path_for(backend)), device="AUTO")
    frame = conv_net.make_inputs(rng)["input"]
    tensor = runtime.tensor_from_numpy(frame, layout="NCHW")
    expected = conv_net.reference({"input": frame})["output"]

    output = model.run({"input": tensor})
    output_np = output["output"].to_numpy()
    np.testing.assert_allclose(output_np, expected, atol=ATOL)

    request = model.create_async_request()
    request.start({"input": tensor})
    result = request.wait()
    np.testing.assert_allclose(result["output"].to_numpy(), expected, atol=ATOL)

    stream = model.create_stream()
    for _ in range(3):
        inp = runtime.tensor_from_numpy(frame)
        out = stream.run({"input": inp})
        np.testing.assert_allclose(out["output"].to_numpy(), expected, atol=ATOL)

    profile = model.get_profiling()
    assert profile.runs == 5
    assert "runs" in str(profile)
    assert model.device == "CPU"
    assert model.precision == "FP32"


def test_outputs_in_model_order_and_values(runtime, backend, multi_io, rng):
    model = load(runtime, multi_io, backend)
    feed = multi_io.make_inputs(rng)
    outputs = model.run(feed)
    assert list(outputs) == ["z_sum", "a_prod"] == [o.name for o in model.outputs]
    for name, value in multi_io.reference(feed).items():
        assert isinstance(outputs[name], Tensor)
        np.testing.assert_allclose(outputs[name].to_numpy(), value, rtol=1e-6)


def test_model_describes_inputs_and_outputs(runtime, backend, conv_net, dynamic):
    model = load(runtime, conv_net, backend)
    (info,) = model.inputs
    assert (info.name, info.shape, info.dtype) == ("input", (1, 3, 16, 16), np.dtype(np.float32))
    assert model.outputs[0].shape == (1, 4, 16, 16)
    dyn = load(runtime, dynamic, backend)
    assert dyn.inputs[0].shape == (None, 3, None, None)


def test_dynamic_shapes_run(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend)
    for shape in [(1, 3, 4, 4), (2, 3, 5, 7), (1, 3, 9, 2)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = model.run(x)["y"].to_numpy()
        np.testing.assert_allclose(y, np.maximum(x, 0) * 2, rtol=1e-6)


def test_int_and_bool_ops(runtime, backend, int_bool, rng):
    model = load(runtime, int_bool, backend)
    feed = int_bool.make_inputs(rng)
    outputs = model.run(feed)
    np.testing.assert_array_equal(outputs["doubled"].to_numpy(), feed["i"] * 2)
    np.testing.assert_array_equal(outputs["negated"].to_numpy(), ~feed["flag"])
    assert outputs["negated"].dtype == np.bool_


def test_safe_casts_at_run(runtime, backend, conv_net, int_bool, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)["input"]
    expected = model.run(frame)["output"].to_numpy()
    np.testing.assert_allclose(
        model.run(frame.astype(np.float64))["output"].to_numpy(), expected, atol=1e-6
    )
    ints = load(runtime, int_bool, backend)
    values = np.array([1, -2, 3, 400], np.int64)
    out = ints.run({"i": values, "flag": np.zeros(4, bool)})
    np.testing.assert_array_equal(out["doubled"].to_numpy(), values * 2)


def test_bare_array_for_one_input_model(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)["input"]
    np.testing.assert_array_equal(
        model.run(frame)["output"].to_numpy(), model.run(Tensor(frame))["output"].to_numpy()
    )


def test_non_contiguous_input_is_correct(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)["input"]
    fortran = np.asfortranarray(frame)
    np.testing.assert_allclose(
        model.run(fortran)["output"].to_numpy(), model.run(frame)["output"].to_numpy(), atol=1e-6
    )


def test_layout_declared_nhwc_and_hwc_frames(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)["input"]
    expected = model.run(frame)["output"].to_numpy()
    nhwc = np.ascontiguousarray(frame.transpose(0, 2, 3, 1))
    out = model.run(runtime.tensor_from_numpy(nhwc, layout="NHWC"))["output"].to_numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    out = model.run(runtime.tensor_from_numpy(nhwc[0], layout="HWC"))["output"].to_numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_outputs_belong_to_the_caller(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    first_in = conv_net.make_inputs(rng)["input"]
    first = model.run(first_in)["output"].to_numpy()
    kept = first.copy()
    model.run(conv_net.make_inputs(rng)["input"])
    np.testing.assert_array_equal(first, kept)


# -- bad inputs: a clear error, and the model keeps working --------------------------------
BAD_INPUTS = {
    "wrong dtype and layout": (
        lambda: {"input": np.zeros((1, 16, 16, 3), np.uint8)},
        "input 'input': expected float32[1,3,16,16], got uint8[1,16,16,3]",
    ),
    "wrong rank": (lambda: {"input": np.zeros((3, 16, 16), np.float32)}, "got float32[3,16,16]"),
    "wrong static dim": (lambda: {"input": np.zeros((1, 3, 16, 15), np.float32)}, "[1,3,16,15]"),
    "unknown name": (
        lambda: {"images": np.zeros((1, 3, 16, 16), np.float32)},
        "unknown input(s) 'images'",
    ),
    "missing name": (lambda: {}, "missing input(s) 'input'"),
    "extra name": (
        lambda: {"input": np.zeros((1, 3, 16, 16), np.float32), "x": np.zeros(1)},
        "unknown input(s) 'x'",
    ),
    "complex data": (lambda: {"input": np.zeros((1, 3, 16, 16), np.complex64)}, "complex"),
    "string data": (
        lambda: {"input": np.full((1, 3, 16, 16), "a")},
        "expected float32 data, got string",
    ),
    "object data": (lambda: {"input": [object()]}, "objects"),
    "not a mapping": (lambda: [np.zeros((1, 3, 16, 16), np.float32)], "expected a dict"),
    "a list of arrays (a sequence) for a tensor": (
        lambda: {"input": [np.zeros((1, 3, 16, 16), np.float32)]},
        "got a list of 1 arrays; this input is a tensor, not a sequence",
    ),
    "layout not convertible": (
        lambda: {"input": Tensor(np.zeros((1, 3, 16, 16), np.float32), "NCDW")},
        "cannot be converted",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_clear_and_model_keeps_working(runtime, backend, conv_net, rng, case):
    model = load(runtime, conv_net, backend)
    make_bad, fragment = BAD_INPUTS[case]
    with pytest.raises(InvalidInputError) as caught:
        model.run(make_bad())
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)
    frame = conv_net.make_inputs(rng)["input"]
    np.testing.assert_allclose(
        model.run(frame)["output"].to_numpy(),
        conv_net.reference({"input": frame})["output"],
        atol=ATOL,
    )


def test_float_into_integer_input_is_refused(runtime, backend, int_bool):
    model = load(runtime, int_bool, backend)
    with pytest.raises(InvalidInputError, match="fraction"):
        model.run({"i": np.array([1.5, 2, 3, 4]), "flag": np.zeros(4, bool)})
    with pytest.raises(InvalidInputError, match=r"values in \[-2147483648, 2147483647\]"):
        model.run({"i": np.array([2**40, 0, 0, 0], np.int64), "flag": np.zeros(4, bool)})
    with pytest.raises(InvalidInputError, match="bool"):
        model.run({"i": np.zeros(4, np.int32), "flag": np.ones(4, np.int32)})
    out = model.run({"i": np.ones(4, np.int32), "flag": np.ones(4, bool)})
    np.testing.assert_array_equal(out["doubled"].to_numpy(), [2, 2, 2, 2])


def test_one_input_model_rejects_bare_array_for_many_inputs(runtime, backend, multi_io):
    model = load(runtime, multi_io, backend)
    with pytest.raises(InvalidInputError, match="the model has 2 inputs"):
        model.run(np.zeros((2, 4), np.float32))


# -- threads, async, streams ---------------------------------------------------------------
def test_run_is_thread_safe(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    frames = [np.full((1, 3, 16, 16), i / 10, np.float32) for i in range(16)]
    expected = [conv_net.reference({"input": f})["output"] for f in frames]
    failures: list[str] = []

    def worker(index: int) -> None:
        for _ in range(10):
            out = model.run(frames[index])["output"].to_numpy()
            if not np.allclose(out, expected[index], atol=ATOL):
                failures.append(f"thread {index} got another frame's result")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert model.get_profiling().runs == 160


def test_async_request_callback_done_and_reuse(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    request = model.create_async_request()
    assert not request.done
    seen = []
    for _ in range(3):
        frame = conv_net.make_inputs(rng)["input"]
        request.start({"input": frame}, callback=lambda outputs: seen.append(outputs))
        result = request.wait(timeout=30)
        assert request.done
        np.testing.assert_allclose(
            result["output"].to_numpy(), conv_net.reference({"input": frame})["output"], atol=ATOL
        )
        assert seen[-1] is result
    assert len(seen) == 3


def test_async_busy_request_raises(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    request = model.create_async_request()
    frame = conv_net.make_inputs(rng)["input"]
    release = threading.Event()
    request.start({"input": frame}, callback=lambda _: release.wait(10))
    with pytest.raises(RequestBusyError):
        request.start({"input": frame})
    release.set()
    request.wait(timeout=30)
    request.start({"input": frame})
    request.wait(timeout=30)


def test_async_timeout_then_result(runtime, backend, conv_net, rng):
    from atriva_inference import InferenceTimeoutError

    model = load(runtime, conv_net, backend)
    request = model.create_async_request()
    release = threading.Event()
    request.start(conv_net.make_inputs(rng), callback=lambda _: release.wait(10))
    with pytest.raises(InferenceTimeoutError):
        request.wait(timeout=0.05)
    release.set()
    assert "output" in request.wait(timeout=30)


def test_async_callback_error_surfaces_at_wait(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    request = model.create_async_request()

    def broken(_outputs):
        raise KeyError("in callback")

    request.start(conv_net.make_inputs(rng), callback=broken)
    with pytest.raises(KeyError, match="in callback"):
        request.wait(timeout=30)
    request.start(conv_net.make_inputs(rng))
    assert "output" in request.wait(timeout=30)


def test_async_invalid_input_raises_at_start_and_request_stays_usable(
    runtime, backend, conv_net, rng
):
    model = load(runtime, conv_net, backend)
    request = model.create_async_request()
    with pytest.raises(InvalidInputError):
        request.start({"input": np.zeros((2, 2), np.float32)})
    assert not request.busy
    request.start(conv_net.make_inputs(rng))
    assert "output" in request.wait(timeout=30)


def test_wait_before_start_is_an_error(runtime, backend, conv_net):
    request = load(runtime, conv_net, backend).create_async_request()
    with pytest.raises(InferenceRuntimeError, match="never started"):
        request.wait()


def test_stream_runs_every_frame_correctly(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    stream = model.create_stream()
    for _ in range(5):
        frame = conv_net.make_inputs(rng)["input"]
        out = stream.run({"input": runtime.tensor_from_numpy(frame)})
        np.testing.assert_allclose(
            out["output"].to_numpy(), conv_net.reference({"input": frame})["output"], atol=ATOL
        )
    with pytest.raises(InvalidInputError):
        stream.run({"input": np.zeros((1, 3), np.float32)})
    assert "output" in stream.run(conv_net.make_inputs(rng))


# -- lifecycle -----------------------------------------------------------------------------
def test_close_is_idempotent_and_use_after_close_is_clear(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    request = model.create_async_request()
    stream = model.create_stream()
    with model:
        model.run(conv_net.make_inputs(rng))
    assert model.closed
    model.close()
    for action in (
        lambda: model.run(conv_net.make_inputs(rng)),
        model.create_stream,
        model.create_async_request,
        lambda: request.start(conv_net.make_inputs(rng)),
        lambda: stream.run(conv_net.make_inputs(rng)),
    ):
        with pytest.raises(ModelClosedError, match="closed"):
            action()


def test_no_growth_in_live_objects_over_runs(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)["input"]
    stream = model.create_stream()
    for _ in range(50):
        model.run(frame)
        stream.run(frame)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(500):
        model.run(frame)
        stream.run(frame)
    gc.collect()
    assert len(gc.get_objects()) - before < 50


def test_an_input_too_big_for_memory_is_refused_before_allocating(runtime, backend, dynamic):
    model = runtime.load_model(dynamic.path_for(backend))
    huge = np.broadcast_to(np.float32(0), (1, 3, 100000, 100000))  # 4 bytes, 120 GB as an array
    with pytest.raises(InvalidInputError, match=r"input 'x': float32\[1, 3, 100000, 100000\]"):
        model.run({"x": huge})
    x = np.ones((1, 3, 2, 2), np.float32)
    np.testing.assert_array_equal(model.run({"x": x})["y"].to_numpy(), x * 2)  # still usable


@pytest.mark.parametrize("dtype", [">f4", ">f2", ">f8", ">i4"])
def test_big_endian_inputs_give_the_right_answer(runtime, backend, conv_net, rng, dtype):
    model = runtime.load_model(conv_net.path_for(backend))
    feed = conv_net.make_inputs(rng)
    native = feed["input"]
    if np.dtype(dtype).kind == "i":
        native = np.round(native * 10)
    swapped = native.astype(dtype)
    assert not swapped.dtype.isnative
    expected = conv_net.reference({"input": native.astype(np.float32)})["output"]
    outputs = model.run({"input": swapped})
    np.testing.assert_allclose(outputs["output"].to_numpy(), expected, rtol=1e-2, atol=1e-2)
    with model.create_stream() as stream:  # the stream path converts the same way
        np.testing.assert_allclose(
            stream.run({"input": swapped})["output"].to_numpy(), expected, rtol=1e-2, atol=1e-2
        )


def test_profiling_after_close_keeps_the_counts(runtime, backend, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(backend))
    feed = conv_net.make_inputs(rng)
    for _ in range(3):
        model.run(feed)
    with model.create_stream() as stream:
        stream.run(feed)
    request = model.create_async_request()
    request.start(feed)
    request.wait()
    model.close()
    profile = model.get_profiling()
    assert profile.runs == 5
    assert profile.compile_ms > 0
    with pytest.raises(ModelClosedError):
        model.run(feed)


def test_a_closed_model_is_freed_without_the_cycle_collector(runtime, backend, dynamic, rng):
    """No reference cycle keeps a model's engine alive (its compiles, its requests)."""
    import weakref

    model = runtime.load_model(dynamic.path_for(backend), shape_cache_size=1)
    for size in (2, 3, 4):  # evictions too
        model.run({"x": np.ones((1, 3, size, size), np.float32)})
    with model.create_stream() as stream:
        stream.run({"x": np.ones((1, 3, 2, 2), np.float32)})
    engine = weakref.ref(model._engine)
    model.close()
    gc.disable()
    try:
        del model, stream
        assert engine() is None
    finally:
        gc.enable()


# -- ONNX sequences and optionals (docs/onnx-types.md) --------------------------------------
def _sequence_model(directory):
    """``s``: a sequence of float32; ``o``: an optional float32[2]; ``x``: float32[?,2].
    Outputs: ``n`` the length of ``s``, ``t`` = ``s``, ``has`` whether ``o`` is there,
    ``oo`` = ``o`` (optional), ``parts`` = ``x`` split into rows (a sequence)."""
    from onnx import TensorProto, helper

    sequence = helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    )
    optional = helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    )
    graph = helper.make_graph(
        [
            helper.make_node("SequenceLength", ["s"], ["n"]),
            helper.make_node("Identity", ["s"], ["t"]),
            helper.make_node("OptionalHasElement", ["o"], ["has"]),
            helper.make_node("Identity", ["o"], ["oo"]),
            helper.make_node("SplitToSequence", ["x"], ["parts"], axis=0),
        ],
        "sequences",
        [
            helper.make_value_info("s", sequence),
            helper.make_value_info("o", optional),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 2]),
        ],
        [
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
            helper.make_value_info("t", sequence),
            helper.make_tensor_value_info("has", TensorProto.BOOL, []),
            helper.make_value_info("oo", optional),
            helper.make_value_info("parts", sequence),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = directory / "sequences.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def sequence_path(tmp_path_factory):
    return _sequence_model(tmp_path_factory.mktemp("sequences"))


@pytest.fixture
def sequence_model(sequence_path):
    if "onnxruntime" not in BACKENDS:
        pytest.skip("sequences and optionals run on ONNX Runtime, which is not installed")
    with InferenceRuntime("onnxruntime") as rt:
        yield rt.load_model(sequence_path)


def _check_sequence_outputs(outputs, items, optional=None):
    assert list(outputs) == ["n", "t", "has", "oo", "parts"]
    assert outputs["n"].to_numpy() == len(items)
    assert isinstance(outputs["t"], list) and all(isinstance(t, Tensor) for t in outputs["t"])
    assert [t.to_numpy().tolist() for t in outputs["t"]] == [list(item) for item in items]
    assert all(t.dtype == np.float32 for t in outputs["t"])
    assert bool(outputs["has"].to_numpy()) is (optional is not None)
    if optional is None:
        assert outputs["oo"] is None
    else:
        np.testing.assert_array_equal(outputs["oo"].to_numpy(), optional)
    return [part.to_numpy() for part in outputs["parts"]]


def test_sequence_and_optional_ports_are_described(sequence_model):
    inputs = {info.name: info for info in sequence_model.inputs}
    outputs = {info.name: info for info in sequence_model.outputs}
    assert inputs["s"].sequence and not inputs["s"].optional and inputs["s"].shape is None
    assert inputs["o"].optional and not inputs["o"].sequence and inputs["o"].shape == (2,)
    assert inputs["x"].is_tensor and not inputs["s"].is_tensor and not inputs["o"].is_tensor
    assert inputs["s"].dtype == inputs["o"].dtype == np.float32
    assert [str(inputs[name]) for name in "sox"] == [
        "s: sequence<float32[...]>",
        "o: optional<float32[2]>",
        "x: float32[?,2]",
    ]
    assert outputs["parts"].sequence and outputs["oo"].optional and outputs["n"].is_tensor


def test_sequences_go_in_as_lists_and_come_out_as_lists_of_tensors(sequence_model):
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    items = [np.array([1, 2], np.float32), np.array([3.5], np.float32)]
    outputs = sequence_model.run({"s": items, "o": np.array([7, 8], np.float32), "x": rows})
    parts = _check_sequence_outputs(outputs, items, [7, 8])
    assert [part.tolist() for part in parts] == [[[0, 1]], [[2, 3]], [[4, 5]]]
    # A tuple, Tensors, Python lists and safely cast items go in too; None and a left-out
    # optional are absent; an empty sequence is a sequence.
    items = (Tensor(np.array([1.0, 2.0])), [3, 4], np.array([5], np.int64))
    outputs = sequence_model.run({"s": items, "o": None, "x": rows})
    _check_sequence_outputs(outputs, [[1, 2], [3, 4], [5]])
    _check_sequence_outputs(sequence_model.run({"s": [], "x": rows}), [])


SEQUENCE_MISTAKES = {
    "a tensor for a sequence": (
        {"s": np.zeros(2, np.float32)},
        "input 's': expected sequence<float32[...]> (a list of arrays), got ndarray "
        "float32[2]; wrap a single array in a list",
    ),
    "None for a sequence that is not optional": ({"s": None}, "only optional inputs may be None"),
    "a generator for a sequence": (
        {"s": (item for item in [np.zeros(1)])},
        "got generator; pass a list or tuple",
    ),
    "None as an item": ({"s": [None]}, "input 's' item 0: expected a Tensor or numpy array"),
    "an item too big for memory": (
        {"s": [np.zeros(1), np.broadcast_to(np.float64(0), (10**6, 10**6))]},
        "input 's' item 1: float32[1000000, 1000000] needs",
    ),
    "a list of arrays for a tensor": (
        {"s": [], "x": [np.zeros((1, 2), np.float32)]},
        "input 'x': expected one array of float32[?,2], got a list of 1 arrays",
    ),
    "a list of arrays for an optional tensor": (
        {"s": [], "o": [np.zeros(2, np.float32)]},
        "this input is a tensor, not a sequence",
    ),
    "strings in a float sequence": (
        {"s": [np.zeros(2, np.float32), np.array(["a"])]},
        "input 's' item 1: expected float32 data, got string",
    ),
    "complex numbers in a float sequence": (
        {"s": [np.zeros(2, np.complex64)]},
        "input 's' item 0: expected float32 data, got complex64",
    ),
    "an optional of the wrong shape": ({"s": [], "o": np.zeros(3)}, "expected float32[2]"),
    "a missing input that is not optional": (
        {"o": None, "x": np.zeros((1, 2), np.float32)},
        "missing input(s) 's'; the model takes 's' sequence<float32[...]>, 'o' "
        "optional<float32[2]>, 'x' float32[?,2] (optional ones may be left out)",
    ),
}


@pytest.mark.parametrize("case", list(SEQUENCE_MISTAKES))
def test_sequence_and_optional_mistakes_are_clear(sequence_model, case):
    inputs, message = SEQUENCE_MISTAKES[case]
    feed = {"s": [np.ones(1, np.float32)], "x": np.zeros((1, 2), np.float32), **inputs}
    if "missing" in case:
        feed = inputs
    with pytest.raises(InvalidInputError) as caught:
        sequence_model.run(feed)
    assert message in str(caught.value)
    outputs = sequence_model.run({"s": [np.ones(1, np.float32)], "x": np.ones((1, 2))})
    _check_sequence_outputs(outputs, [[1]])  # the model keeps working


def test_sequences_on_every_asynchronous_path(sequence_model):
    """An async request, the queue (submit and map) and a stream take and give the same."""
    feeds = [
        {"s": [np.full(2, index, np.float32)] * index, "x": np.ones((2, 2), np.float32)}
        for index in range(4)
    ]

    def check(outputs, index):
        _check_sequence_outputs(outputs, [[index, index]] * index)

    request = sequence_model.create_async_request()
    for index, feed in enumerate(feeds):
        request.start(feed)
        check(request.wait(), index)
    request.close()
    with sequence_model.create_async_queue(depth=2) as queue:
        results = [queue.submit(feed) for feed in feeds]
        for index, result in enumerate(results):
            check(result.wait(), index)
        for index, outputs in enumerate(queue.map(feeds)):
            check(outputs, index)
        with pytest.raises(InvalidInputError, match="expected sequence<float32"):
            queue.submit({"s": np.zeros(2, np.float32), "x": np.ones((2, 2), np.float32)})
    with sequence_model.create_stream() as stream:
        for index, feed in enumerate(feeds):
            check(stream.run(feed), index)
    assert sequence_model.get_profiling().runs == 4 * len(feeds)
    # One signature for every sequence, whatever its length: nothing is compiled per shape.
    assert sequence_model.shape_cache_info().currsize == 1


def test_a_one_input_sequence_model_takes_its_list_bare(tmp_path):
    if "onnxruntime" not in BACKENDS:
        pytest.skip("sequences run on ONNX Runtime, which is not installed")
    from onnx import TensorProto, helper

    sequence = helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.INT64, None)
    )
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["s"], ["n"])],
        "length",
        [helper.make_value_info("s", sequence)],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model_proto.ir_version = 8
    onnx.save(model_proto, str(tmp_path / "length.onnx"))
    with InferenceRuntime("onnxruntime") as rt:
        model = rt.load_model(tmp_path / "length.onnx")
        assert model.run([np.arange(3), np.arange(2)])["n"].to_numpy() == 2
        with pytest.raises(InvalidInputError, match="values in"):
            model.run([np.array([2**63], np.uint64)])  # int64 items: out of range refused


def test_backends_without_sequences_refuse_them_at_load(runtime, backend, sequence_path):
    """OpenVINO (and TensorRT) have no sequence or optional types: a ModelLoadError at load."""
    if backend == "onnxruntime":
        pytest.skip("ONNX Runtime runs them (the tests above)")
    with pytest.raises(ModelLoadError) as caught:
        runtime.load_model(sequence_path)
    if backend == "openvino":  # its converter's own message is replaced by one naming the ports
        assert "exchanges tensors only" in str(caught.value), caught.value
        assert caught.value.__cause__ is not None


def test_tensor_only_backends_have_a_check_naming_the_ports(sequence_path, conv_net):
    with pytest.raises(ModelLoadError) as caught:
        onnx_graph.refuse_non_tensor_ports(sequence_path, "openvino")
    message = str(caught.value)
    assert "backend 'openvino' exchanges tensors only" in message
    assert "input 's' (a sequence), input 'o' (an optional)" in message
    assert "output 'parts' (a sequence)" in message and "backend='onnxruntime'" in message
    onnx_graph.refuse_non_tensor_ports(conv_net.onnx_path, "openvino")  # tensors: no error
