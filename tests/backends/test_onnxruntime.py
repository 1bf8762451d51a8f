"""What only the ONNX Runtime backend does: ONNX only, its provider check, its cache file."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import DeviceUnavailableError, InferenceRuntime, ModelLoadError

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


def test_cuda_that_does_not_activate_is_an_error_not_a_fallback(runtime, conv_net, monkeypatch):
    """Pretend the CUDA provider is listed (as with onnxruntime-gpu on a machine without a
    usable GPU): ONNX Runtime then falls back to the CPU with only a warning. We refuse."""
    backend = runtime._backend
    monkeypatch.setattr(
        backend, "_providers", [*ort.get_available_providers(), "CUDAExecutionProvider"]
    )
    assert "GPU" in runtime.available_devices()
    with pytest.raises(DeviceUnavailableError, match=r"CUDAExecutionProvider.*fall back"):
        runtime.load_model(conv_net.onnx_path, device="GPU")


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
