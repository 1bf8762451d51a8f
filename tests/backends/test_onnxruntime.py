"""What only the ONNX Runtime backend does: ONNX only, its provider check, its cache file."""

from __future__ import annotations

import ctypes
import sys

import numpy as np
import pytest

from atriva_inference import DeviceUnavailableError, InferenceRuntime, ModelLoadError
from atriva_inference.backends import onnxruntime as onnxruntime_backend
from tests.backends.gpu_libraries import usable_cupy

ort = pytest.importorskip("onnxruntime")


@pytest.fixture
def runtime():
    with InferenceRuntime("onnxruntime") as rt:
        yield rt


def test_openvino_ir_gets_a_how_to_error(runtime, conv_net):
    with pytest.raises(ModelLoadError, match=r"export ONNX .*backend='openvino'"):
        runtime.load_model(conv_net.ir_path)


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
    assert onnxruntime_backend._driver_device_count() == 0
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

    assert _providers_for(device) == expected


def test_cuda_cache_key_names_the_provider_and_device(conv_net):
    """An optimized model is specific to its provider and hardware: the keys differ."""
    from atriva_inference.backends.onnxruntime import _providers_for

    with InferenceRuntime("onnxruntime") as runtime:
        backend = runtime._backend
        keys = {backend._cache_key(conv_net.onnx_path, _providers_for(d)) for d in ("CPU", "GPU.0")}
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
