"""What only the ONNX Runtime backend does: ONNX only, its provider check, its cache file."""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from queue import SimpleQueue

import numpy as np
import pytest

from atriva_inference import DeviceUnavailableError, InferenceRuntime, ModelLoadError
from atriva_inference.backends import onnxruntime as onnxruntime_backend
from atriva_inference.backends.base import LoadOptions
from atriva_inference.devices import Device
from tests.backends.gpu_libraries import usable_cupy

ort = pytest.importorskip("onnxruntime")


@pytest.fixture
def runtime():
    with InferenceRuntime("onnxruntime") as rt:
        yield rt


def test_openvino_ir_gets_a_how_to_error(runtime, conv_net):
    with pytest.raises(ModelLoadError, match=r"export ONNX .*backend='openvino'"):
        runtime.load_model(conv_net.ir_path)


FOREIGN_FILES = {
    "model.pb": r"the TensorFlow frozen graph 'model.pb': convert it to ONNX with tf2onnx "
    r"\(python -m tf2onnx.convert --graphdef model.pb .*\), or load it with "
    r"InferenceRuntime\(backend='openvino'\), which reads frozen graphs",
    "model.tflite": r"the TensorFlow Lite model 'model.tflite': .*tf2onnx.convert --tflite "
    r"model.tflite .*backend='openvino'",
    "model.pdmodel": r"the PaddlePaddle model 'model.pdmodel': convert it to ONNX with "
    r"paddle2onnx .*--model_filename model.pdmodel --params_filename model.pdiparams.*"
    r"backend='openvino'",
    "model.pdiparams": r"PaddlePaddle model 'model.pdiparams'.*--model_filename model.pdmodel",
    "saved_model.pb": r"the graph of a TensorFlow SavedModel: .*--saved-model .*"
    r"backend='openvino'",
}


@pytest.mark.parametrize("name", list(FOREIGN_FILES))
def test_formats_openvino_reads_get_a_how_to_error(runtime, tmp_path, name):
    """TensorFlow, TensorFlow Lite and PaddlePaddle files: what to convert them with, or the
    backend that reads them."""
    path = tmp_path / name
    path.write_bytes(b"not read: the suffix says what it is")
    with pytest.raises(ModelLoadError, match=FOREIGN_FILES[name]) as caught:
        runtime.load_model(path)
    assert str(caught.value).startswith("backend 'onnxruntime' reads ONNX (.onnx), got ")


def test_directories_are_refused_saying_what_they_are(runtime, tmp_path):
    """A SavedModel directory gets the tf2onnx command; any other directory is not a model.
    (Asked of the backend itself: the runtime lets directories through to it.)"""
    saved_model = tmp_path / "saved"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    other = tmp_path / "other.onnx"
    other.mkdir()
    backend, options = runtime._backend, LoadOptions()
    with pytest.raises(ModelLoadError, match=r"SavedModel directory .*--saved-model .*saved "):
        backend.load(saved_model, Device.of("CPU"), options)
    with pytest.raises(ModelLoadError, match=r"got the directory .*other.onnx', which holds no"):
        backend.load(other, Device.of("CPU"), options)


@pytest.mark.parametrize("precision", ["BF16", "FP16"])
def test_reduced_precision_is_refused_not_ignored(runtime, conv_net, precision):
    with pytest.raises(DeviceUnavailableError, match=rf"precision {precision}"):
        runtime.load_model(conv_net.onnx_path, precision=precision)


def _list_cuda_provider(runtime, monkeypatch):
    """As with onnxruntime-gpu installed: ONNX Runtime lists its CUDA provider whether or not
    a GPU is there."""
    monkeypatch.setattr(
        runtime._backend, "_providers", [*ort.get_available_providers(), "CUDAExecutionProvider"]
    )


def test_cuda_that_does_not_activate_is_an_error_not_a_fallback(runtime, conv_net, monkeypatch):
    """Where CUDA says a GPU is there but ONNX Runtime cannot start its CUDA provider (here:
    no GPU at all, the count forced to one), ONNX Runtime falls back to the CPU with only a
    warning. We refuse."""
    _list_cuda_provider(runtime, monkeypatch)
    monkeypatch.setattr(onnxruntime_backend, "_cuda_devices", lambda: ["GPU.0"])
    assert runtime.available_devices() == ["CPU", "GPU.0"]
    with pytest.raises(DeviceUnavailableError, match=r"CUDAExecutionProvider.*fall back"):
        runtime.load_model(conv_net.onnx_path, device="GPU")


def test_without_cuda_python_the_driver_counts_the_gpus(runtime, monkeypatch):
    """No cuda-python: the NVIDIA driver library is asked directly; without one, no GPU."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        pass
    else:
        pytest.skip("for a machine without the NVIDIA driver; this one has libcuda.so.1")
    _list_cuda_provider(runtime, monkeypatch)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)  # cuda-python absent
    assert runtime.available_devices() == ["CPU"]


def test_cuda_provider_without_a_gpu_offers_no_gpu(runtime, conv_net, monkeypatch):
    """With cuda-python, the GPUs are counted: none here, so neither GPU nor AUTO picks CUDA."""
    pytest.importorskip("cuda.bindings.runtime")
    _list_cuda_provider(runtime, monkeypatch)
    assert runtime.available_devices() == ["CPU"]
    with pytest.raises(DeviceUnavailableError, match=r"'GPU.1'.*devices present: CPU"):
        runtime.load_model(conv_net.onnx_path, device="GPU.1")
    assert runtime.load_model(conv_net.onnx_path, device="AUTO").device == "CPU"


CUDA_OPTIONS = {"device_id": "0", "use_tf32": "0"}
GPU1_OPTIONS = {"device_id": "1", "use_tf32": "0"}


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("CPU", ["CPUExecutionProvider"]),
        ("GPU", [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]),
        ("GPU.0", [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]),
        ("GPU.1", [("CUDAExecutionProvider", GPU1_OPTIONS), "CPUExecutionProvider"]),
    ],
)
def test_device_maps_to_provider_and_device_id(device, expected):
    """The device id, and TF32 off: FP32 means FP32 (the CUDA provider's default is TF32)."""
    from atriva_inference.backends.onnxruntime import _providers_for

    assert _providers_for(Device.of(device)) == expected


def test_cuda_cache_key_names_the_provider_and_device(conv_net):
    """An optimized model is specific to its provider and hardware: the keys differ."""
    from atriva_inference.backends.onnxruntime import _providers_for

    data = conv_net.onnx_path.read_bytes()
    with InferenceRuntime("onnxruntime") as runtime:
        backend = runtime._backend
        keys = {backend._cache_key(data, _providers_for(Device.of(d))) for d in ("CPU", "GPU.0")}
    assert len(keys) == 2


def test_cache_key_changes_with_the_model(conv_net, multi_io, tmp_path):
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path) as runtime:
        runtime.load_model(conv_net.onnx_path)
        runtime.load_model(multi_io.onnx_path)
    assert len(list((tmp_path / "onnxruntime").glob("*.ort"))) == 2


def test_matches_raw_onnxruntime(runtime, conv_net, rng):
    frame = conv_net.make_inputs(rng)["input"]
    raw = ort.InferenceSession(str(conv_net.onnx_path), providers=["CPUExecutionProvider"])
    expected = raw.run(None, {"input": frame})[0]
    np.testing.assert_array_equal(
        runtime.load_model(conv_net.onnx_path).run(frame)["output"].to_numpy(), expected
    )


def test_strings_round_trip(runtime, strings, rng):
    model = runtime.load_model(strings.onnx_path)
    feed = strings.make_inputs(rng)
    out = model.run(feed)["same"].to_numpy()
    assert list(out) == ["camera", "héllo", ""]


def test_a_damaged_cache_entry_is_rebuilt(conv_net, tmp_path, rng):
    frame = conv_net.make_inputs(rng)
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path) as runtime:
        expected = runtime.load_model(conv_net.onnx_path).run(frame)["output"].to_numpy()
    (cached,) = (tmp_path / "onnxruntime").glob("*.ort")
    cached.write_bytes(cached.read_bytes()[:100])  # truncated, as by a full disk
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path)
        assert not model.loaded_from_cache
        np.testing.assert_array_equal(model.run(frame)["output"].to_numpy(), expected)
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path) as runtime:
        assert runtime.load_model(conv_net.onnx_path).loaded_from_cache


def test_profiling_leaves_no_files_behind(conv_net, rng, tmp_path, monkeypatch):
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where ORT's profiles go
    with InferenceRuntime("onnxruntime") as runtime:
        collected = runtime.load_model(conv_net.onnx_path, profiling=True)
        collected.run(conv_net.make_inputs(rng))
        assert collected.get_profiling().layers
        closed = runtime.load_model(conv_net.onnx_path, profiling=True)
        closed.run(conv_net.make_inputs(rng))
        closed.close()
        dropped = runtime.load_model(conv_net.onnx_path, profiling=True)
        dropped.run(conv_net.make_inputs(rng))
        runtime._models.remove(dropped)  # as if the user kept no reference
        del dropped
        gc.collect()
    assert list(tmp_path.iterdir()) == []


# -- on a GPU (onnxruntime-gpu and an NVIDIA GPU; skipped elsewhere, with the reason) ----------
def _gpu_runtime() -> InferenceRuntime:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(
            "needs onnxruntime-gpu: the installed onnxruntime lists "
            f"{', '.join(ort.get_available_providers())}"
        )
    runtime = InferenceRuntime("onnxruntime")
    if not any(device.startswith("GPU") for device in runtime.available_devices()):
        runtime.close()
        pytest.skip("needs an NVIDIA GPU: CUDA counts none here")
    return runtime


def _cuda_starts(runtime: InferenceRuntime, path) -> None:
    """A GPU is there; skip (with ONNX Runtime's reason) where its CUDA provider cannot start,
    e.g. cuDNN missing: that is this machine's install, not the code under test."""
    try:
        runtime.load_model(path, device="GPU").close()
    except DeviceUnavailableError as exc:
        pytest.skip(f"onnxruntime-gpu cannot start CUDA here: {exc}")


@pytest.fixture
def gpu_runtime(conv_net):
    runtime = _gpu_runtime()
    _cuda_starts(runtime, conv_net.onnx_path)
    yield runtime
    runtime.close()


@pytest.mark.gpu
def test_gpu_runs_on_cuda_and_matches_the_cpu(gpu_runtime, conv_net, rng):
    frame = conv_net.make_inputs(rng)["input"]
    model = gpu_runtime.load_model(conv_net.onnx_path, device="GPU")
    assert model.device == "GPU.0"
    assert gpu_runtime.load_model(conv_net.onnx_path, device="AUTO").device == "GPU.0"
    expected = gpu_runtime.load_model(conv_net.onnx_path, device="CPU").run(frame)["output"]
    np.testing.assert_allclose(
        model.run(frame)["output"].to_numpy(), expected.to_numpy(), rtol=1e-3, atol=1e-4
    )


@pytest.mark.gpu
def test_gpu_stream_outputs_stay_on_the_device_in_one_buffer(gpu_runtime, conv_net, rng):
    from atriva_inference import DeviceTensor

    model = gpu_runtime.load_model(conv_net.onnx_path, device="GPU")
    frame = conv_net.make_inputs(rng)["input"]
    expected = model.run(frame)["output"].to_numpy()
    with model.create_stream() as stream:
        first = stream.run(frame)["output"]
        second = stream.run(frame)["output"]
    assert type(first) is DeviceTensor and first.device == "GPU.0"
    assert first.data_ptr == second.data_ptr  # allocated once, reused every frame
    np.testing.assert_allclose(second.to_numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_gpu_takes_a_cupy_array_in_place(gpu_runtime, conv_net, rng):
    cupy = usable_cupy()
    model = gpu_runtime.load_model(conv_net.onnx_path, device="GPU")
    frame = conv_net.make_inputs(rng)["input"]
    on_gpu = cupy.asarray(frame)
    tensor = gpu_runtime.tensor_from_dlpack(on_gpu)
    assert tensor.data_ptr == on_gpu.data.ptr  # zero-copy
    expected = model.run(frame)["output"].to_numpy()
    np.testing.assert_allclose(
        model.run({"input": tensor})["output"].to_numpy(), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.gpu
def test_gpu_same_device_tensor_twice_and_a_refilled_frame_buffer(gpu_runtime, conv_net, rng):
    """The same GPU tensor runs again (each run binds it); a host buffer refilled in place
    gives the new frame's answer on a stream (ONNX Runtime copies a host input when bound)."""
    cupy = usable_cupy()
    model = gpu_runtime.load_model(conv_net.onnx_path, device="GPU")
    first, second = (conv_net.make_inputs(rng)["input"] for _ in range(2))
    expected = [model.run(frame)["output"].to_numpy() for frame in (first, second)]
    tensor = gpu_runtime.tensor_from_dlpack(cupy.asarray(first))
    for _ in range(2):
        np.testing.assert_allclose(
            model.run({"input": tensor})["output"].to_numpy(), expected[0], rtol=1e-5, atol=1e-6
        )
    buffer = first.copy()
    with model.create_stream() as stream:
        stream.run(buffer)
        buffer[...] = second  # the camera decodes the next frame into the same buffer
        np.testing.assert_allclose(
            stream.run(buffer)["output"].to_numpy(), expected[1], rtol=1e-5, atol=1e-6
        )


# -- one loaded model, one model: nothing reads the file again after load_model ------------
def _other_model(path) -> None:
    """Write over ``path`` a model with the same input and output as conv_net, other maths."""
    import onnx
    from onnx import TensorProto, helper

    from tests.zoo import make_model

    model = make_model(
        [helper.make_node("ReduceSum", ["input", "axes"], ["output"], keepdims=1)],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 16, 16])],
        [onnx.numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    onnx.save(model, str(path))


def _every_path(runtime, model, frame):
    """The output of ``frame`` on every way to run it: each builds its own session."""
    hwc = runtime.tensor_from_numpy(np.ascontiguousarray(frame[0].transpose(1, 2, 0)), "HWC")
    answers = {
        "run": model.run(frame),
        "float16": model.run(frame.astype(np.float16)),
        "uint8": model.run((frame * 255).astype(np.uint8)),
        "HWC frame": model.run(hwc),
    }
    with model.create_async_queue() as queue:
        answers["queue"] = queue.submit(frame).wait()
    with model.create_async_request() as request:
        request.start(frame)
        answers["async request"] = request.wait()
    return {path: outputs["output"].to_numpy() for path, outputs in answers.items()}


def _assert_conv_net_answers(answers, conv_net, frame):
    """Each path's answer is conv_net's on the data that path was given."""
    given = {
        "float16": frame.astype(np.float16),
        "uint8": (frame * 255).astype(np.uint8),
    }
    for name, answer in answers.items():
        data = given.get(name, frame).astype(np.float32)
        want = conv_net.reference({"input": data})["output"]
        np.testing.assert_allclose(answer, want, rtol=1e-4, atol=1e-3, err_msg=name)


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_a_loaded_model_never_reads_its_file_again(conv_net, rng, tmp_path, change):
    """The async queue's session and every in-graph conversion (float16, uint8, HWC) are
    built after load: from what load read, not from whatever the path holds by then."""
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_net.onnx_path.read_bytes())
    frame = rng.random((1, 3, 16, 16), dtype=np.float32)
    with InferenceRuntime("onnxruntime") as runtime:
        model = runtime.load_model(path)
        if change == "replaced":
            _other_model(path)
        else:
            path.unlink()
        answers = _every_path(runtime, model, frame)
    _assert_conv_net_answers(answers, conv_net, frame)


def _with_external_data(conv_net, directory):
    import onnx

    directory.mkdir()
    proto = onnx.load(str(conv_net.onnx_path))
    path = directory / "external.onnx"
    onnx.save(
        proto, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    return path


def test_external_data_is_read_once_too(conv_net, rng, tmp_path):
    """Weights in a file of their own are read at load with the model: every path runs,
    and still does with both files gone."""
    path = _with_external_data(conv_net, tmp_path / "model")
    frame = rng.random((1, 3, 16, 16), dtype=np.float32)
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path / "cache") as runtime:
        model = runtime.load_model(path)
        for name in ("external.onnx", "weights.bin"):
            (tmp_path / "model" / name).unlink()
        answers = _every_path(runtime, model, frame)
    _assert_conv_net_answers(answers, conv_net, frame)


def test_external_data_too_big_to_inline_is_read_from_its_folder(conv_net, rng, tmp_path):
    """Past protobuf's 2 GiB (here: a limit of 0) the weights stay in their file, found
    beside the model as when ONNX Runtime loads it from its path."""
    from atriva_inference.backends import onnx_graph

    path = _with_external_data(conv_net, tmp_path / "model")
    frame = rng.random((1, 3, 16, 16), dtype=np.float32)
    with pytest.MonkeyPatch.context() as patch, InferenceRuntime("onnxruntime") as runtime:
        patch.setattr(onnx_graph, "PROTOBUF_LIMIT", 0)
        model = runtime.load_model(path)
        answers = _every_path(runtime, model, frame)
    _assert_conv_net_answers(answers, conv_net, frame)


def test_an_ort_format_model_runs_every_path_from_what_was_read(conv_net, rng, tmp_path):
    """ONNX Runtime's own format has no ONNX graph to add conversions to: numpy converts
    (float16, uint8, HWC), and the file is not read again either."""
    path = tmp_path / "model.ort"
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ort.InferenceSession(str(conv_net.onnx_path), options, providers=["CPUExecutionProvider"])
    frame = rng.random((1, 3, 16, 16), dtype=np.float32)
    with InferenceRuntime("onnxruntime") as runtime:
        with pytest.raises(ModelLoadError, match=r"own format.*load the .onnx model"):
            runtime.load_model(path, dynamic=True)
        model = runtime.load_model(path)
        path.unlink()
        answers = _every_path(runtime, model, frame)
    _assert_conv_net_answers(answers, conv_net, frame)


def test_cache_entry_follows_the_bytes_loaded(conv_net, rng, tmp_path):
    """The cache is keyed by what was read: the model replaced on disk gets its own entry
    and its own answers, while the one loaded before keeps the first model's."""
    path = tmp_path / "model.onnx"
    path.write_bytes(conv_net.onnx_path.read_bytes())
    frame = rng.random((1, 3, 16, 16), dtype=np.float32)
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path / "cache") as runtime:
        first = runtime.load_model(path)
        _other_model(path)
        second = runtime.load_model(path)
        assert not second.loaded_from_cache
        assert runtime.load_model(path).loaded_from_cache
        np.testing.assert_allclose(
            second.run(frame)["output"].to_numpy(), frame.sum(axis=1, keepdims=True), rtol=1e-5
        )
        with first.create_async_queue() as queue:
            answer = queue.submit(frame).wait()["output"].to_numpy()
    np.testing.assert_allclose(
        answer, conv_net.reference({"input": frame})["output"], rtol=1e-4, atol=1e-5
    )


# -- closing with work in flight --------------------------------------------------------------
def test_a_closed_request_reports_model_closed(conv_net, rng):
    """Work that reaches a request after it was closed says so: ModelClosedError, through
    raise and through on_done, never an AttributeError on a session set to None."""
    from atriva_inference import ModelClosedError
    from atriva_inference.backends.base import LoadOptions

    frame = conv_net.make_inputs(rng)["input"]
    with InferenceRuntime("onnxruntime") as runtime:
        loaded = runtime._backend.load(conv_net.onnx_path, Device.of("CPU"), LoadOptions())
        requests = [loaded.create_request(), *loaded.create_throughput_requests(1)]
        reported: SimpleQueue = SimpleQueue()
        for request in requests:
            request.infer_bound([frame])  # bound once: close drops the binding too
            request.close()
            for call in (request.infer, request.infer_bound):
                with pytest.raises(ModelClosedError, match="closed"):
                    call([frame])
            request.start([frame], lambda outputs, error: reported.put(error))
            assert isinstance(reported.get(timeout=10), ModelClosedError)
        loaded.close()
        with pytest.raises(ModelClosedError):
            loaded.create_request().infer([frame])


def test_closing_with_async_work_queued_finishes_or_says_closed(slow, rng):
    """More async requests than worker threads: some wait in the pool when the model closes.
    Each either finishes or raises ModelClosedError."""
    from atriva_inference import ModelClosedError

    frame = slow.make_inputs(rng)["x"]
    with InferenceRuntime("onnxruntime") as runtime:
        model = runtime.load_model(slow.onnx_path)
        requests = [model.create_async_request() for _ in range(40)]
        for request in requests:
            request.start(frame)
        model.close()
        for request in requests:
            with contextlib.suppress(ModelClosedError):
                request.wait(timeout=60)


def test_run_on_other_threads_while_the_model_closes(conv_net, rng):
    from atriva_inference import ModelClosedError

    frame = conv_net.make_inputs(rng)["input"]
    errors = []

    def loop(model):
        try:
            while True:
                model.run(frame)
        except ModelClosedError:
            pass
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    with InferenceRuntime("onnxruntime") as runtime:
        for _ in range(30):
            model = runtime.load_model(conv_net.onnx_path)
            threads = [threading.Thread(target=loop, args=(model,)) for _ in range(3)]
            for thread in threads:
                thread.start()
            model.run(frame)
            model.close()
            for thread in threads:
                thread.join(30)
    assert errors == []


# -- input and option checks ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2"])
def test_big_endian_data_is_swapped_not_refused(runtime, conv_net, rng, dtype):
    """Data in the other byte order goes through numpy (one copy that swaps it), as
    OpenVINO takes it: no ONNX graph can read it."""
    frame = (rng.random((1, 3, 16, 16)) * 100).astype(np.float32)
    model = runtime.load_model(conv_net.onnx_path)
    native = frame.astype(np.dtype(dtype).newbyteorder("="))
    expected = model.run(native)["output"].to_numpy()
    swapped = frame.astype(dtype)
    assert not swapped.dtype.isnative
    np.testing.assert_allclose(model.run(swapped)["output"].to_numpy(), expected, rtol=1e-6)
    with model.create_async_queue() as queue:
        answer = queue.submit(swapped).wait()["output"].to_numpy()
    np.testing.assert_allclose(answer, expected, rtol=1e-6)


def test_mean_of_the_wrong_length_says_one_per_channel(runtime, conv_net, rng):
    from atriva_inference import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"expected 3 values \(one per channel\), got 2"):
        runtime.load_model(conv_net.onnx_path, mean=[0.5, 0.5])
    with pytest.raises(InvalidInputError, match=r"expected 3 values \(one per channel\), got 4"):
        runtime.load_model(conv_net.onnx_path, scale=[2, 2, 2, 2])
    mean, scale = np.array([0.5, 0.4, 0.3]), np.array([2.0, 4.0, 0.5])
    model = runtime.load_model(conv_net.onnx_path, mean=mean, scale=scale)
    frame = conv_net.make_inputs(rng)["input"]
    normalized = (frame - mean.reshape(1, 3, 1, 1)) / scale.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(
        model.run(frame)["output"].to_numpy(),
        conv_net.reference({"input": normalized})["output"],
        rtol=1e-4,
        atol=1e-4,
    )


def test_maps_are_refused_at_load_saying_what_is_taken(runtime, tmp_path):
    """ONNX-ML's ZipMap gives a sequence of maps, which numpy cannot hold: refused at load,
    naming what the runtime exchanges instead."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    maps = helper.make_sequence_type_proto(
        helper.make_map_type_proto(
            TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
        )
    )
    graph = helper.make_graph(
        [helper.make_node("ZipMap", ["x"], ["y"], domain="ai.onnx.ml", classlabels_int64s=[0, 1])],
        "zipmap",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_value_info("y", maps)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "zipmap.onnx"))
    with pytest.raises(
        ModelLoadError,
        match=r"'y' has type seq\(map\(int64,tensor\(float\)\)\), which this runtime cannot "
        r"exchange with numpy \(it takes tensors, sequences of tensors and optionals",
    ):
        runtime.load_model(tmp_path / "zipmap.onnx")
