"""InferenceRuntime: backends, devices, loading, caching, lifecycle -- on every usable backend."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import (
    DeviceUnavailableError,
    InferenceRuntime,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
)


def test_available_devices_has_cpu(runtime):
    assert "CPU" in runtime.available_devices()


@pytest.mark.parametrize("device", ["CPU", "cpu", "AUTO", "auto", "Cpu"])
def test_device_strings_are_case_insensitive(runtime, backend, conv_net, device):
    model = runtime.load_model(conv_net.path_for(backend), device=device)
    assert model.device == "CPU"  # AUTO resolves to the first present of GPU -> NPU -> CPU


@pytest.mark.parametrize("device", ["GPU", "GPU.1", "NPU", "gpu.0"])
def test_absent_device_is_an_error_listing_what_is_present(runtime, backend, conv_net, device):
    with pytest.raises(DeviceUnavailableError) as caught:
        runtime.load_model(conv_net.path_for(backend), device=device)
    message = str(caught.value)
    assert device.upper() in message and "CPU" in message and "fall back" in message


@pytest.mark.parametrize("device", ["TPU", "HETERO:GPU,CPU", "", "GPU.x"])
def test_malformed_device_is_invalid_input(runtime, backend, conv_net, device):
    with pytest.raises(InvalidInputError, match="device"):
        runtime.load_model(conv_net.path_for(backend), device=device)


@pytest.mark.parametrize("precision", ["INT4", "fp64", "fast"])
def test_unknown_precision_is_invalid_input(runtime, backend, conv_net, precision):
    with pytest.raises(InvalidInputError, match="precision"):
        runtime.load_model(conv_net.path_for(backend), precision=precision)


def test_int8_precision_refuses_a_float_model(runtime, backend, conv_net):
    """INT8 means "require a quantized model": a float one is refused, closed, and the
    error names the two compute layers that run FP32 and the quantize command."""
    with pytest.raises(ModelLoadError, match="expected a quantized model") as caught:
        runtime.load_model(conv_net.path_for(backend), precision="INT8")
    message = str(caught.value)
    assert "2 compute layers all run FP32" in message, message
    assert "atriva-infer quantize" in message, message
    assert runtime._models == []  # nothing left loaded
    assert runtime.load_model(conv_net.path_for(backend)).precision == "FP32"


def test_explicit_fp32_is_the_default(runtime, backend, conv_net):
    assert runtime.load_model(conv_net.path_for(backend), precision="fp32").precision == "FP32"


# -- load errors ---------------------------------------------------------------------------
def test_missing_file(runtime, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        runtime.load_model(tmp_path / "nope.onnx")


def test_directory_instead_of_file(runtime, tmp_path):
    with pytest.raises(ModelLoadError, match="directory"):
        runtime.load_model(tmp_path)


def test_corrupt_onnx(runtime, tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelLoadError, match=r"garbage\.onnx") as caught:
        runtime.load_model(path)
    assert caught.value.__cause__ is not None


def test_truncated_onnx(runtime, conv_net, tmp_path):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(conv_net.onnx_path.read_bytes()[:300])
    with pytest.raises(ModelLoadError, match=r"truncated\.onnx") as caught:
        runtime.load_model(path)
    assert caught.value.__cause__ is not None


def test_unsupported_format(runtime, backend, tmp_path):
    path = tmp_path / "model.pb"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelLoadError, match=backend):
        runtime.load_model(path)


def test_model_keeps_working_after_a_failed_load(runtime, backend, conv_net, tmp_path, rng):
    model = runtime.load_model(conv_net.path_for(backend))
    with pytest.raises(ModelLoadError):
        runtime.load_model(tmp_path / "missing.onnx")
    frame = conv_net.make_inputs(rng)["input"]
    np.testing.assert_allclose(
        model.run(frame)["output"].to_numpy(),
        conv_net.reference({"input": frame})["output"],
        atol=1e-4,
    )


# -- compiled-model cache ------------------------------------------------------------------
def test_cache_dir_second_load_comes_from_cache(backend, conv_net, tmp_path, rng):
    cache = tmp_path / "cache"
    frame = conv_net.make_inputs(rng)["input"]
    with InferenceRuntime(backend, cache_dir=cache) as first_runtime:
        first = first_runtime.load_model(conv_net.path_for(backend))
        assert first.loaded_from_cache is False
        expected = first.run(frame)["output"].to_numpy()
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files, "the first load wrote no compiled artefact"
    with InferenceRuntime(backend, cache_dir=cache) as second_runtime:
        second = second_runtime.load_model(conv_net.path_for(backend))
        assert second.loaded_from_cache is True
        np.testing.assert_array_equal(second.run(frame)["output"].to_numpy(), expected)
    assert sorted(p for p in cache.rglob("*") if p.is_file()) == sorted(files)


def test_no_cache_dir_means_no_cache(runtime, backend, conv_net):
    assert runtime.load_model(conv_net.path_for(backend)).loaded_from_cache is False


# -- lifecycle -----------------------------------------------------------------------------
def test_runtime_close_closes_models(backend, conv_net, rng):
    runtime = InferenceRuntime(backend)
    model = runtime.load_model(conv_net.path_for(backend))
    runtime.close()
    runtime.close()  # idempotent
    assert model.closed
    with pytest.raises(ModelClosedError):
        model.run(conv_net.make_inputs(rng))
    with pytest.raises(ModelClosedError):
        runtime.load_model(conv_net.path_for(backend))
    with pytest.raises(ModelClosedError):
        runtime.available_devices()


def test_repr_says_backend_and_state(runtime, backend, conv_net):
    model = runtime.load_model(conv_net.path_for(backend))
    assert backend in repr(runtime) and "CPU" in repr(model)
    model.close()
    assert "closed" in repr(model)


@pytest.mark.parametrize("path", [None, 3, b"model.onnx"[0], ["model.onnx"]])
def test_a_model_path_that_is_not_a_path_is_invalid_input(runtime, path):
    with pytest.raises(InvalidInputError, match=r"model_path: expected a path .* got"):
        runtime.load_model(path)


def test_tensors_are_refused_after_the_runtime_is_closed(backend):
    runtime = InferenceRuntime(backend=backend)
    runtime.close()
    with pytest.raises(ModelClosedError, match="runtime is closed"):
        runtime.tensor_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(ModelClosedError, match="runtime is closed"):
        runtime.tensor_from_dlpack(np.zeros((1, 3), np.float32))


def test_a_warm_up_shape_too_big_for_memory_is_refused_before_allocating(runtime, backend, dynamic):
    with pytest.raises(InvalidInputError, match=r"shapes: input 'x': float32\[1, 3, 100000"):
        runtime.load_model(dynamic.path_for(backend), shapes=[(1, 3, 100000, 100000)])
    model = runtime.load_model(dynamic.path_for(backend))  # nothing was left half-loaded
    x = np.ones((1, 3, 2, 2), np.float32)
    np.testing.assert_array_equal(model.run({"x": x})["y"].to_numpy(), x * 2)
