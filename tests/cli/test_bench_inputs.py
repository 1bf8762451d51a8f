"""``atriva-infer bench --inputs DIR|VIDEO|FILE.npy[,..]``: real inputs instead of random ones,
and the quantization line of ``info`` and ``bench``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.cli import main
from atriva_inference.cli.inputs import MAX_FRAMES, read_feeds
from atriva_inference.tensor import Tensor, TensorInfo
from tests.cli.test_bench import _field

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

PREFIX = "atriva-infer: error:"
FAST = ["--iterations", "4", "--warmup", "1"]


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


# -- frames ------------------------------------------------------------------------------------
def test_a_folder_of_real_images(models, page_rotations, capsys, tmp_path):
    path = tmp_path / "out.json"
    code, out, err = _run(
        capsys, "bench", models["onnx"], "--inputs", page_rotations, "--json", path, *FAST
    )
    assert code == 0, err
    line = _field(out, "inputs")
    assert line.startswith("input uint8[1,16,16,3] (4 frames of")
    assert "(images), uint8 RGB 16x16, resized from 384x191, 191x384, 1 per run" in line
    data = json.loads(path.read_text())
    assert data["inputs"] == {"input": [1, 16, 16, 3]} and data["iterations"] == 4
    assert data["inputs_source"] == line


def test_a_video_is_read_as_frames_spread_over_it(models, bikes, capsys):
    code, out, err = _run(capsys, "bench", models["xml"], "--inputs", bikes, *FAST)
    assert code == 0, err
    assert f"{MAX_FRAMES} frames of '{bikes}' (video)" in out
    assert "resized from 640x272" in out


def test_frames_take_the_size_given_by_shape_on_a_dynamic_model(models, bikes):
    infos = [TensorInfo("x", (None, 3, None, None), np.dtype(np.float32), "NCHW")]
    feeds, described = read_feeds(str(bikes), infos, ["2x3x64x96"])
    assert len(feeds) == MAX_FRAMES // 2  # two frames per run
    tensor = feeds[0]["x"]
    assert isinstance(tensor, Tensor) and tensor.to_numpy().shape == (2, 64, 96, 3)
    assert tensor.to_numpy().dtype == np.uint8
    assert "uint8 RGB 96x64, resized from 640x272, 2 per run" in described
    feeds, described = read_feeds(str(bikes), infos)  # free H, W: the frames' own size
    assert feeds[0]["x"].to_numpy().shape == (1, 272, 640, 3) and "resized" not in described


def test_frames_go_through_mean_and_scale_in_the_model(models, page_rotations, capsys):
    """The uint8 NHWC frames are converted in the model: layout, dtype, then the mean and
    scale given at load, as a float NCHW batch computed by hand would be."""
    mean, scale = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]
    with InferenceRuntime("onnxruntime") as runtime:
        plain = runtime.load_model(models["onnx"])
        normalized = runtime.load_model(models["onnx"], mean=mean, scale=scale)
        feeds, _ = read_feeds(str(page_rotations), plain.inputs)
        frames = feeds[1]["input"].to_numpy()
        by_hand = (frames.astype(np.float32) - mean) / scale
        expected = plain.run({"input": np.ascontiguousarray(by_hand.transpose(0, 3, 1, 2))})
        got = normalized.run(feeds[1])
        np.testing.assert_allclose(
            got["output"].to_numpy(), expected["output"].to_numpy(), rtol=1e-5, atol=1e-4
        )
    code, _, err = _run(capsys, "bench", models["onnx"], "--mean", "1,x", *FAST)
    assert code == 2 and "expected numbers separated by commas" in err


# -- .npy files ----------------------------------------------------------------------------------
def test_npy_files_are_fed_as_they_are(models, capsys, tmp_path):
    rng = np.random.default_rng(3)
    files = [_save(tmp_path / f"x{i}.npy", rng.random((1, 3, 16, 16), np.float32)) for i in (0, 1)]
    code, out, err = _run(
        capsys, "bench", models["onnx"], "--inputs", ",".join(map(str, files)), *FAST
    )
    assert code == 0, err
    assert _field(out, "inputs").startswith("input float32[1,3,16,16] (2 .npy files for 'input'")


def test_npy_files_of_a_multi_input_model(multi_io, capsys, tmp_path):
    a = _save(tmp_path / "a.npy", np.ones((2, 4), np.float32))
    b = _save(tmp_path / "b.npy", np.zeros((2, 4), np.float32))
    code, out, err = _run(capsys, "bench", multi_io.onnx_path, "--inputs", f"b={b},a={a}", *FAST)
    assert code == 0, err
    assert "(one .npy file per input" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, m: d / "missing", "'{d}/missing' does not exist"),
        (lambda d, m: d.mkdir() or d, "expected images (png/jpg/jpeg/bmp/webp) in '{d}'"),
        (
            lambda d, m: _save(d.with_suffix(".npy"), np.zeros((1, 3, 16, 16))),
            "input 'input' takes float32[1,3,16,16], the file holds float64[1,3,16,16]",
        ),
        (
            lambda d, m: _save(d.with_suffix(".npy"), np.zeros((1, 3, 8, 8), np.float32)),
            "input 'input' takes float32[1,3,16,16], the file holds float32[1,3,8,8]",
        ),
        (lambda d, m: f"{m['data']},{d}", "expected a folder of images, a video or image file"),
        (lambda d, m: f"y={m['data']}", "the model has no input 'y'"),
        (lambda d, m: m["text"], "cannot read"),
    ],
    ids=["missing", "empty-folder", "dtype", "shape", "mixed", "name", "not-npy"],
)
def test_bad_inputs_are_one_line_naming_expected_and_given(models, capsys, tmp_path, make, message):
    where = tmp_path / "in"
    spec = make(where, models)
    code, out, err = _run(capsys, "bench", models["onnx"], "--inputs", spec, *FAST)
    assert code == 2 and out == ""
    assert err.startswith(f"{PREFIX} --inputs") and err.count("\n") == 1
    assert message.format(d=where) in err


def test_inputs_that_do_not_fit_the_model(
    multi_io, strings, models, page_rotations, capsys, tmp_path
):
    a = _save(tmp_path / "a.npy", np.ones((2, 4), np.float32))
    code, _, err = _run(capsys, "bench", multi_io.onnx_path, "--inputs", f"a={a}", *FAST)
    assert code == 2
    assert "the model has 2 inputs ('a' float32[2,4], 'b' float32[2,4]); expected one " in err
    assert "NAME=FILE.npy for each, got 1 (none for 'b')" in err
    code, _, err = _run(capsys, "bench", multi_io.onnx_path, "--inputs", page_rotations, *FAST)
    assert code == 2 and "frames feed a model with one image input, this one has 2 inputs" in err
    code, _, err = _run(capsys, "bench", strings.onnx_path, "--inputs", page_rotations, *FAST)
    assert code == 2 and "frames need an image input (NCHW or NHWC), input" in err


# -- the quantization line -------------------------------------------------------------------
def test_info_and_bench_say_how_much_runs_in_int8(models, classifier_pair, capsys):
    code, out, err = _run(capsys, "info", models["onnx"], "--backend", "onnxruntime")
    assert code == 0, err
    assert _field(out, "quantization") == "none (float model)"
    code, out, err = _run(capsys, "bench", classifier_pair[1], "--backend", "openvino", *FAST)
    assert code == 0, err
    assert _field(out, "precision") == "INT8"
    assert "compute layers in INT8" in _field(out, "quantization")


def test_precision_help_mentions_int8(capsys):
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "INT8 requires a quantized model (see atriva-infer quantize)" in text
    assert "--against OTHER_MODEL" in text and "--inputs DIR|VIDEO|FILE.npy" in text


def test_compare_runs_every_configuration_on_the_same_frames(
    models, page_rotations, capsys, tmp_path
):
    path = tmp_path / "compare.json"
    code, out, err = _run(
        capsys, "bench", models["onnx"], "--backend", "openvino,onnxruntime",
        "--inputs", page_rotations, "--json", path, *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert out.count("(4 frames of") == 1  # one inputs line for every configuration
    data = json.loads(path.read_text())
    assert data["inputs_source"].startswith("input uint8[1,16,16,3] (4 frames of")
    first, second = data["compare"]
    assert first["reference"] and second["backend"] == "onnxruntime"
    assert second["outputs"]["output"]["max_rel"] < 1e-3  # two backends, the same frames
