"""What only the OpenVINO backend does: IR files, precision hints, layouts, layer profiling."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from atriva_inference import (
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceRuntime,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
)
from atriva_inference.backends.base import LoadedModel, LoadOptions
from atriva_inference.devices import Device
from tests import zoo

ov = pytest.importorskip("openvino")


@pytest.fixture
def runtime():
    with InferenceRuntime("openvino") as rt:
        yield rt


def load_directly(path: Path, options: LoadOptions | None = None) -> LoadedModel:
    """The backend itself, below the runtime: for what only its requests show."""
    from atriva_inference.backends.openvino import OpenVINOBackend

    return OpenVINOBackend().load(path, Device.of("CPU"), options or LoadOptions())


def cpu_capabilities() -> list[str]:
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def test_ir_and_onnx_give_the_same_answer(runtime, conv_net, rng):
    frame = conv_net.make_inputs(rng)["input"]
    from_ir = runtime.load_model(conv_net.ir_path).run(frame)["output"].to_numpy()
    from_onnx = runtime.load_model(conv_net.onnx_path).run(frame)["output"].to_numpy()
    np.testing.assert_array_equal(from_ir, from_onnx)
    np.testing.assert_allclose(from_ir, conv_net.reference({"input": frame})["output"], atol=1e-4)


def test_xml_without_bin(runtime, conv_net, tmp_path):
    xml = tmp_path / "lonely.xml"
    shutil.copy(conv_net.ir_path, xml)
    with pytest.raises(ModelLoadError, match=r"lonely\.bin.*missing"):
        runtime.load_model(xml)


def test_truncated_bin(runtime, conv_net, tmp_path):
    shutil.copy(conv_net.ir_path, tmp_path / "short.xml")
    (tmp_path / "short.bin").write_bytes(conv_net.ir_path.with_suffix(".bin").read_bytes()[:64])
    with pytest.raises(ModelLoadError, match=r"short\.xml") as caught:
        runtime.load_model(tmp_path / "short.xml")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_truncated_xml(runtime, conv_net, tmp_path):
    (tmp_path / "cut.xml").write_text(conv_net.ir_path.read_text()[:300])
    shutil.copy(conv_net.ir_path.with_suffix(".bin"), tmp_path / "cut.bin")
    with pytest.raises(ModelLoadError, match=r"cut\.xml"):
        runtime.load_model(tmp_path / "cut.xml")


def test_default_precision_is_f32_not_the_plugins_bf16(runtime, conv_net):
    assert runtime.load_model(conv_net.ir_path).precision == "FP32"
    loaded = load_directly(conv_net.ir_path)
    assert loaded._compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


@pytest.mark.skipif("BF16" not in cpu_capabilities(), reason="this CPU has no bf16 support")
def test_bf16_is_an_opt_in_that_really_changes_execution(runtime, conv_net, rng):
    frame = conv_net.make_inputs(rng)["input"]
    f32 = runtime.load_model(conv_net.ir_path).run(frame)["output"].to_numpy()
    model = runtime.load_model(conv_net.ir_path, precision="BF16")
    assert model.precision == "BF16"
    bf16 = model.run(frame)["output"].to_numpy()
    assert bf16.dtype == np.float32  # inputs and outputs keep their types
    difference = np.abs(bf16 - f32).max()
    assert 1e-5 < difference < 0.1, difference


def test_unsupported_precision_on_the_device_is_refused(runtime, conv_net):
    missing = [p for p in ("FP16", "BF16") if p not in cpu_capabilities()]
    if not missing:
        pytest.skip("this CPU supports both FP16 and BF16")
    with pytest.raises(DeviceUnavailableError, match=rf"precision {missing[0]}"):
        runtime.load_model(conv_net.ir_path, precision=missing[0])


def test_layout_from_the_ir_is_reported_and_used(runtime, conv_net, tmp_path, rng):
    model = ov.Core().read_model(str(conv_net.onnx_path))
    ov.layout_helpers.set_layout(model.input(0), ov.Layout("NCHW"))
    xml = tmp_path / "with_layout.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    loaded = runtime.load_model(xml)
    assert loaded.inputs[0].layout == "NCHW"
    frame = conv_net.make_inputs(rng)["input"]
    nhwc = runtime.tensor_from_numpy(
        np.ascontiguousarray(frame.transpose(0, 2, 3, 1)), layout="NHWC"
    )
    np.testing.assert_allclose(
        loaded.run(nhwc)["output"].to_numpy(),
        conv_net.reference({"input": frame})["output"],
        atol=1e-4,
    )


def test_layer_profiling(runtime, conv_net, rng):
    model = runtime.load_model(conv_net.ir_path, profiling=True)
    for _ in range(3):
        model.run(conv_net.make_inputs(rng))
    profile = model.get_profiling()
    convolutions = [layer for layer in profile.layers if layer.type == "Convolution"]
    assert len(convolutions) == 2 and all(layer.count == 3 for layer in convolutions)
    assert all(layer.time_ms > 0 and layer.implementation for layer in convolutions)
    assert profile.device_time_ms > 0 and profile.runs == 3
    text = str(profile)
    assert text.index("Convolution") < text.index("Relu")  # heaviest first


def test_aggregates_without_layer_profiling(runtime, conv_net, rng):
    model = runtime.load_model(conv_net.ir_path)
    model.run(conv_net.make_inputs(rng))
    profile = model.get_profiling()
    assert profile.layers == [] and profile.runs == 1
    assert profile.wall_time_ms >= profile.device_time_ms > 0
    assert "profiling=True" in str(profile)


def test_inputs_are_bound_without_copy_and_stream_outputs_reuse_one_buffer(runtime, conv_net, rng):
    model = runtime.load_model(conv_net.ir_path)
    stream = model.create_stream()
    frames = [conv_net.make_inputs(rng)["input"] for _ in range(3)]
    outputs = []
    request = load_directly(conv_net.ir_path).create_request()
    for frame in frames:
        out = stream.run(frame)["output"].to_numpy()
        np.testing.assert_allclose(out, conv_net.reference({"input": frame})["output"], atol=1e-4)
        outputs.append(out)
        request.infer_bound([frame])  # what a stream's request does with each frame
        bound = request._request.get_input_tensor(0).data
        assert np.shares_memory(bound, frame)  # the frame itself is the input: no copy
    assert np.shares_memory(outputs[0], outputs[-1])  # documented: valid until the next run
    first = model.run(frames[0])["output"].to_numpy()
    second = model.run(frames[1])["output"].to_numpy()
    assert not np.shares_memory(first, second)  # run() outputs belong to the caller


def test_a_frame_buffer_rewritten_in_place_is_seen(runtime, conv_net, rng):
    """Cameras often decode into one reused buffer: the binding must see new contents."""
    model = runtime.load_model(conv_net.ir_path)
    stream = model.create_stream()
    buffer = np.empty((1, 3, 16, 16), np.float32)
    for _ in range(3):
        buffer[...] = rng.random(buffer.shape, dtype=np.float32)
        out = stream.run(buffer)["output"].to_numpy()
        np.testing.assert_allclose(out, conv_net.reference({"input": buffer})["output"], atol=1e-4)


# -- one loaded model, one model: the file is read once, the cache keyed by content ------------
def _add_model(directory: Path, weight: float) -> tuple[Path, Path]:
    """x float32[1,3,4,4] -> y = x + weight: versions differ in their weights only."""
    directory.mkdir(parents=True, exist_ok=True)
    model = zoo.make_model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
        [numpy_helper.from_array(np.full((1, 3, 1, 1), weight, np.float32), "w")],
    )
    onnx_path, ir_path = zoo.save(model, directory, "add")
    assert ir_path is not None
    return onnx_path, ir_path


def _install(source: Path, target: Path) -> None:
    """Copy a model over ``target`` in place (the same files, rewritten), IR weights too."""
    shutil.copyfile(source, target)
    if source.suffix == ".xml":
        shutil.copyfile(source.with_suffix(".bin"), target.with_suffix(".bin"))


def _versions(tmp_path: Path, fmt: str) -> tuple[Path, Path, Path]:
    """(version 1, version 2, the path a model is loaded from, holding version 1)."""
    paths = [_add_model(tmp_path / f"v{weight}", weight)[fmt == "ir"] for weight in (1, 2)]
    target = tmp_path / "served" / paths[0].name
    target.parent.mkdir()
    _install(paths[0], target)
    return paths[0], paths[1], target


def _added(outputs: dict, x: np.ndarray) -> float:
    """The weight the model that gave ``outputs`` for ``x`` adds."""
    return float(outputs["y"].to_numpy()[0, 0, 0, 0]) - float(x[0, 0, 0, 0])


@pytest.mark.parametrize("fmt", ["onnx", "ir"])
def test_a_cache_hit_needs_the_same_content_not_the_same_path(tmp_path, fmt):
    _, version_2, target = _versions(tmp_path, fmt)
    x = np.zeros((1, 3, 4, 4), np.float32)
    loads = []
    for replace in (False, False, True, False):
        if replace:
            _install(version_2, target)
        # A new runtime each time: what a process started later finds in the cache.
        with InferenceRuntime("openvino", cache_dir=tmp_path / "cache") as runtime:
            model = runtime.load_model(target, device="CPU")
            loads.append((model.loaded_from_cache, _added(model.run(x), x)))
    assert loads == [(False, 1.0), (True, 1.0), (False, 2.0), (True, 2.0)]


@pytest.mark.parametrize("cache", [False, True], ids=["no_cache", "cache_dir"])
@pytest.mark.parametrize("fmt", ["onnx", "ir"])
def test_a_loaded_model_never_reads_its_file_again(tmp_path, fmt, cache):
    """Conversions compiled into the graph, the queue's THROUGHPUT compile and new static
    shapes all compile what was read at load: a file replaced in place, then deleted,
    changes nothing (mapped weights would have changed the model already loaded)."""
    _, version_2, target = _versions(tmp_path, fmt)
    x = np.random.default_rng(0).random((1, 3, 4, 4), dtype=np.float32)
    half = x.astype(np.float16)
    with InferenceRuntime("openvino", cache_dir=tmp_path / "cache" if cache else None) as rt:
        model = rt.load_model(target, device="CPU")
        static = rt.load_model(target, device="CPU", dynamic=True, static_shapes=True)
        _install(version_2, target)
        added = {
            "run": _added(model.run(x), x),
            "float16": _added(model.run(half), half),
            "queue": _added(next(model.create_async_queue(depth=2).map([x])), x),
        }
        target.unlink()
        if fmt == "ir":
            target.with_suffix(".bin").unlink()
        zeros = np.zeros((1, 3, 4, 4), np.uint8)
        added["uint8"] = _added(model.run(zeros), zeros)
        other_shape = np.zeros((2, 3, 5, 5), np.float32)
        added["new_static_shape"] = _added(static.run(other_shape), other_shape)
    assert added == pytest.approx(dict.fromkeys(added, 1.0), abs=1e-3)


# -- the model file's own input and output names -------------------------------------------------
def _value(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, 2, 2])


#: Graphs whose input OpenVINO also lists under the name of an internal or output tensor.
NAME_CASES = {
    # One-input Max: the input tensor is the output tensor.
    "max": ([helper.make_node("Max", ["data_0"], ["result"])], ["data_0"], ["result"]),
    # One-input Sum and Min: two outputs, one tensor.
    "sum_min": (
        [helper.make_node("Sum", ["in"], ["out"]), helper.make_node("Min", ["in"], ["out2"])],
        ["in"],
        ["out", "out2"],
    ),
    # Identity/Dropout chains, an output that is an Identity of another.
    "identity_chain": (
        [
            helper.make_node("Identity", ["x"], ["a"]),
            helper.make_node("Dropout", ["a"], ["b"]),
            helper.make_node("Relu", ["b"], ["y"]),
            helper.make_node("Identity", ["y"], ["z"]),
        ],
        ["x"],
        ["y", "z"],
    ),
}


@pytest.mark.parametrize("fmt", ["onnx", "ir"])
@pytest.mark.parametrize("case", NAME_CASES)
def test_inputs_and_outputs_keep_the_graphs_own_names(runtime, tmp_path, case, fmt):
    nodes, inputs, outputs = NAME_CASES[case]
    graph = zoo.make_model(nodes, [_value(n) for n in inputs], [_value(n) for n in outputs])
    onnx_path, ir_path = zoo.save(graph, tmp_path, case)
    model = runtime.load_model(onnx_path if fmt == "onnx" else ir_path)
    assert [info.name for info in model.inputs] == [v.name for v in graph.graph.input]
    assert [info.name for info in model.outputs] == [v.name for v in graph.graph.output]
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    results = model.run({inputs[0]: x})
    assert list(results) == outputs
    expected = np.maximum(x, 0) if case == "identity_chain" else x
    for name in outputs:
        np.testing.assert_array_equal(results[name].to_numpy(), expected)


@pytest.mark.parametrize("fmt", ["onnx", "ir"])
def test_load_options_find_an_input_by_its_own_name(runtime, tmp_path, fmt):
    """mean/scale, layout and free dims are given by input name: the graph's, not another
    tensor's that OpenVINO lists on the same port."""
    graph = zoo.make_model(NAME_CASES["max"][0], [_value("data_0")], [_value("result")])
    onnx_path, ir_path = zoo.save(graph, tmp_path, "max")
    model = runtime.load_model(
        onnx_path if fmt == "onnx" else ir_path,
        layout={"data_0": "NCHW"},
        dynamic=True,
        mean={"data_0": [1, 2, 3]},
        scale={"data_0": [2, 4, 8]},
    )
    x = np.random.default_rng(0).random((2, 3, 5, 5), dtype=np.float32)  # dims freed by name
    mean = np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1)
    scale = np.array([2, 4, 8], np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(
        model.run({"data_0": x})["result"].to_numpy(), (x - mean) / scale, rtol=1e-6
    )


# -- files that hold no model --------------------------------------------------------------------
def _no_graph() -> bytes:
    model = onnx.ModelProto(ir_version=zoo.IR_VERSION)
    model.opset_import.append(helper.make_opsetid("", zoo.OPSET))
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (lambda: b"", r"an empty file \(0 bytes\)"),
        (_no_graph, r"no graph outputs \(\d+ bytes\)"),
        (lambda: zoo.make_model([], [], []).SerializeToString(), r"no graph outputs"),
    ],
    ids=["empty_file", "no_graph", "empty_graph"],
)
def test_a_file_without_a_model_is_refused(runtime, tmp_path, content, found):
    path = tmp_path / "nothing.onnx"
    path.write_bytes(content())
    with pytest.raises(
        ModelLoadError, match=rf"nothing\.onnx.*expected a model .*outputs.*{found}"
    ):
        runtime.load_model(path)


# -- asynchronous completion -----------------------------------------------------------------
class Completions:
    """An ``on_done`` that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[np.ndarray] | None, BaseException | None]] = []
        self._event = threading.Event()

    def __call__(self, outputs, error) -> None:
        self.calls.append((outputs, error))
        self._event.set()

    def wait(self) -> None:
        assert self._event.wait(30), "on_done was never called"


@pytest.mark.parametrize("throughput", [False, True], ids=["request", "throughput_request"])
def test_a_failed_start_reports_through_on_done_exactly_once(mismatch, throughput):
    """OpenVINO drops the callback of a failed inference: the request itself must still
    report it, with nobody polling, and stay usable for the next frame."""
    loaded = load_directly(mismatch.ir_path)
    request = loaded.create_throughput_requests(1)[0] if throughput else loaded.create_request()
    failed = Completions()
    request.start([np.ones(3, np.float32), np.ones(4, np.float32)], failed)  # 3 + 4: no
    failed.wait()
    succeeded = Completions()
    request.start([np.ones(3, np.float32), np.full(3, 2, np.float32)], succeeded)
    succeeded.wait()
    request.close()
    ((outputs, error),) = failed.calls
    assert outputs is None and isinstance(error, InferenceFailedError)
    assert isinstance(error.__cause__, RuntimeError) and "OpenVINO inference failed" in str(error)
    ((outputs, error),) = succeeded.calls
    assert error is None
    np.testing.assert_array_equal(outputs[0], np.full(3, 3, np.float32))


def test_on_done_that_raises_does_not_stop_later_reports(conv_net, rng, monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    request = load_directly(conv_net.ir_path).create_request()

    called = threading.Event()

    def broken(outputs, error):
        called.set()
        raise ValueError("the caller's own bug")

    frame = conv_net.make_inputs(rng)["input"]
    request.start([frame], broken)
    assert called.wait(30)
    done = Completions()
    request.start([frame], done)
    done.wait()
    request.close()
    assert [type(args.exc_value) for args in seen] == [ValueError]
    ((outputs, error),) = done.calls
    assert error is None
    np.testing.assert_allclose(
        outputs[0], conv_net.reference({"input": frame})["output"], atol=1e-4
    )


# -- nothing outlives close() ----------------------------------------------------------------
def test_a_dropped_request_is_freed_with_its_waiter_thread(conv_net, rng):
    """No reference cycle through C++ (a callback holding the request) keeps it alive."""
    request = load_directly(conv_net.ir_path).create_request()
    others = set(threading.enumerate())
    done = Completions()
    request.start([conv_net.make_inputs(rng)["input"]], done)
    done.wait()
    (waiter,) = {
        thread
        for thread in set(threading.enumerate()) - others
        if thread.name == "atriva-openvino-wait"
    }
    gone = weakref.ref(request)
    del request, done
    gc.collect()
    assert gone() is None
    waiter.join(30)
    assert not waiter.is_alive()


def test_load_close_cycles_leave_no_memory_or_threads_behind(tmp_path):
    """Every way of running (run, stream, async request, queue, static shapes evicted from
    the shape cache), in a process of its own so that nothing else moves the counts."""
    probe = subprocess.run(
        [sys.executable, "-m", "tests.backends.openvino_leak_probe", str(tmp_path), "12"],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    counts = json.loads(probe.stdout.splitlines()[-1])
    before, after = counts["before"], counts["after"]
    # Before the fix: 2.4 MB and 13 native threads more after each cycle.
    assert after["native_threads"] <= before["native_threads"] + 4, counts
    assert after["python_threads"] <= before["python_threads"], counts
    assert after["rss_mb"] - before["rss_mb"] < 12, counts


def test_mean_of_the_wrong_length_says_one_per_channel(runtime, conv_net, rng):
    with pytest.raises(InvalidInputError, match=r"expected 3 values \(one per channel\), got 2"):
        runtime.load_model(conv_net.ir_path, mean=[0.5, 0.5])
    frame = conv_net.make_inputs(rng)["input"]
    model = runtime.load_model(conv_net.ir_path, mean=[0.5], scale=[2.0])  # one for all
    np.testing.assert_allclose(
        model.run(frame)["output"].to_numpy(),
        conv_net.reference({"input": (frame - 0.5) / 2})["output"],
        atol=1e-4,
    )


def test_close_with_an_inference_in_flight_still_reports_it(slow, rng):
    request = load_directly(slow.ir_path).create_request()
    feed = slow.make_inputs(rng)
    done = Completions()
    request.start([feed["x"]], done)
    request.close()  # the waiter reports what was started, then ends
    done.wait()
    ((outputs, error),) = done.calls
    assert error is None
    np.testing.assert_allclose(outputs[0], slow.reference(feed)["y"], rtol=1e-3, atol=1e-3)
    with pytest.raises(ModelClosedError):
        request.start([feed["x"]], done)
