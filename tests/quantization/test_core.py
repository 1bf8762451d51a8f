"""quantize() on the real models from the wheels, both backends: the INT8 file loads, gives
the f32 answers, and the report is sane; bad arguments are refused before any work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.errors import BackendUnavailableError, InvalidInputError, ModelLoadError
from atriva_inference.quantization import QuantReport, default_output, quantize
from atriva_inference.quantization import core as quantization_core
from atriva_inference.vision import iou
from atriva_inference.vision.images import read_frames
from tests import int8_models
from tests.quantization import real_frames
from tests.quantization.conftest import HELD_OUT, SUBSET

centerface = real_frames.centerface
orientation = real_frames.orientation
BACKENDS = ("openvino", "onnxruntime")


@pytest.mark.parametrize("backend", BACKENDS)
def test_classifier_int8_gets_the_four_rotations_right(quantized, backend: str) -> None:
    report, path = quantized("classifier", backend)
    labels = orientation.load_labels(int8_models.classifier_path())
    page = int8_models.load_image("page.png")
    with InferenceRuntime(backend=backend) as runtime:
        model = runtime.load_model(
            path, "CPU", mean=real_frames.CLASSIFIER_MEAN, scale=real_frames.CLASSIFIER_SCALE
        )
        found = {}
        for degrees in orientation.ROTATIONS:
            frame = real_frames.classifier_crop(orientation.rotate(page, degrees))
            outputs = model.run({"x": runtime.tensor_from_numpy(frame, layout="HWC")})
            scores = outputs[model.outputs[0].name].to_numpy().reshape(-1)
            found[degrees] = labels[int(np.argmax(scores))]
    assert found == {d: orientation.expected_label(d) for d in orientation.ROTATIONS}
    assert report.metric == "top1"
    assert report.int8_precision == "INT8" and report.int8_layers > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_centerface_int8_finds_the_astronaut(quantized, backend: str) -> None:
    _, path = quantized("centerface", backend)
    astronaut = centerface.load_astronaut()
    with InferenceRuntime(backend=backend) as runtime:
        # Calibrated at 320x320 with its dims freed: it runs at the photo's own 512x512.
        model = runtime.load_model(path, "CPU", dynamic=True)
        faces = centerface.detect(model, runtime, astronaut)
    assert len(faces) == 1, faces
    overlap = iou(faces.boxes, np.asarray([centerface.EXPECTED_BOX]))[0, 0]
    assert overlap >= 0.85, (faces.boxes, overlap)


@pytest.mark.parametrize(
    ("model", "backend"), [(m, b) for m in ("classifier", "centerface") for b in BACKENDS]
)
def test_report_is_sane(quantized, model: str, backend: str) -> None:
    report, path = quantized(model, backend)
    assert isinstance(report, QuantReport)
    assert Path(report.output) == path and path.is_file()
    if backend == "openvino":
        assert path.with_suffix(".bin").is_file()
    assert report.backend == backend and report.device == "CPU"
    assert (report.calibration_frames, report.held_out_frames) == (SUBSET, HELD_OUT)
    expected_shape = (
        [1, 3, 224, 224] if model == "classifier" else list(real_frames.CENTERFACE_SHAPE)
    )
    assert report.input_shape == expected_shape
    assert report.f32_ms > 0 and report.int8_ms > 0
    # The median of paired ratios: near the ratio of the medians, not equal to it.
    assert report.speedup == pytest.approx(report.f32_ms / report.int8_ms, rel=0.5)
    assert 0 <= report.value <= 1
    assert report.drop == pytest.approx(1 - report.value)
    assert report.metric == ("top1" if model == "classifier" else "iou")
    # INT8 answers are close, not equal: a real difference, and a bounded one.
    assert report.max_abs_diff > 0 and 0 < report.max_rel_diff < 5
    assert report.f32_precision == "FP32"
    # Not guarded (min_speedup=0, no max_drop): passes whatever the machine's load.
    assert report.passed and report.reasons == []
    data = report.to_dict()
    assert json.loads(json.dumps(data))["output"] == str(path)
    text = str(report)
    assert "speed-up" in text and "passed" in text and report.metric in text


def test_centerface_detections_agree_on_held_out_frames(quantized) -> None:
    report, _ = quantized("centerface", "openvino")
    assert report.value >= 0.8  # NNCF's CenterFace finds the same faces (issue 14: 0.994)


def test_guard_reasons_one_line_each(quantized) -> None:
    report, _ = quantized("classifier", "onnxruntime")
    slow = dataclasses.replace(report, f32_ms=1.0, int8_ms=2.0, speedup=0.5, min_speedup=1.0)
    (reason,) = quantization_core._guard(slow)
    assert reason == "INT8 is slower than f32: 2.00 ms vs 1.00 ms (2.00x the f32 time)"
    strict = dataclasses.replace(report, max_drop=1e-9, drop=0.25, value=0.75, min_speedup=0.0)
    (reason,) = quantization_core._guard(strict)
    assert "drop 0.25 is over max_drop 1e-09" in reason
    float_only = dataclasses.replace(report, int8_layers=0, compute_layers=33, min_speedup=0.0)
    assert "nothing runs INT8: 0 of 33" in quantization_core._guard(float_only)[0]
    unknown = dataclasses.replace(
        float_only,
        compute_layers=0,
        quantization="unknown how much runs INT8: ONNX Runtime wrote no optimized graph",
    )
    (reason,) = quantization_core._guard(unknown)
    assert reason.startswith("could not tell what runs INT8 in ") and "no optimized graph" in reason


@pytest.fixture(scope="module")
def bikes_crops() -> list[np.ndarray]:
    frames = read_frames(real_frames.bikes_path(), limit=8)
    return [real_frames.classifier_crop(frame) for frame in frames]


def test_frames_as_arrays_and_the_guard_fires(tmp_path: Path, bikes_crops) -> None:
    """Arrays instead of a folder; a drop no INT8 build meets (1e-9 of cosine) fails the
    guard without raising, and the file is still written."""
    report = quantize(
        int8_models.classifier_path(),
        bikes_crops,
        tmp_path / "classifier-int8.onnx",
        subset_size=4,
        held_out=4,
        mean=real_frames.CLASSIFIER_MEAN,
        scale=real_frames.CLASSIFIER_SCALE,
        max_drop=1e-9,
        min_speedup=0,
    )
    assert report.backend == "onnxruntime"  # chosen by the file type
    assert (report.calibration_frames, report.held_out_frames) == (4, 4)
    assert not report.passed
    assert len(report.reasons) == 1 and "over max_drop 1e-09" in report.reasons[0]
    assert (tmp_path / "classifier-int8.onnx").is_file()


# -- bad arguments: refused before any work, saying expected vs given ------------------------
@pytest.fixture(scope="module")
def classifier() -> Path:
    return int8_models.classifier_path()


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"metric": "mse"},
            InvalidInputError,
            r"metric: expected one of cosine, top1, iou, got 'mse'",
        ),
        ({"metric": "iou"}, InvalidInputError, r"metric 'iou' compares detections: pass decode="),
        (
            {"decode": "yolo"},
            InvalidInputError,
            r"decode: expected one of centerface, tf-od .* got 'yolo'",
        ),
        (
            {"backend": "tensorrt"},
            InvalidInputError,
            r"backend: expected one of openvino, onnxruntime",
        ),
        ({"subset_size": 0}, InvalidInputError, r"subset_size: expected an integer >= 1, got 0"),
        ({"held_out": 2}, InvalidInputError, r"held_out: expected an integer >= 4, got 2"),
        ({"max_drop": -0.1}, InvalidInputError, r"max_drop: expected a number >= 0"),
        ({"min_speedup": "fast"}, InvalidInputError, r"min_speedup: expected a number >= 0"),
    ],
)
def test_bad_arguments(
    classifier: Path, bikes_crops, tmp_path: Path, kwargs, error, pattern
) -> None:
    with pytest.raises(error, match=pattern):
        quantize(classifier, bikes_crops, tmp_path / "out.onnx", **kwargs)


def test_too_few_frames_says_how_many_are_needed(
    classifier: Path, bikes_crops, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError) as info:
        quantize(classifier, bikes_crops, tmp_path / "out.onnx", subset_size=300)
    message = str(info.value)
    assert "expected at least 304 frames (300 to calibrate on, 4 held out" in message
    assert "got 8" in message and "subset_size=4 or fewer (--subset-size 4)" in message


def test_missing_frames_folder(classifier: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        quantize(classifier, tmp_path / "no-frames", tmp_path / "out.onnx")


def test_frames_of_the_wrong_kind(classifier: Path, tmp_path: Path) -> None:
    frames = [np.zeros((8, 8, 3), np.float32)] * 8
    with pytest.raises(
        InvalidInputError,
        match=r"frames\[0\]: expected a uint8 HWC array .* got float32\[8, 8, 3\]",
    ):
        quantize(classifier, frames, tmp_path / "out.onnx", subset_size=4)


def test_wrong_backend_for_the_file_type(tmp_path: Path, bikes_crops) -> None:
    xml = tmp_path / "model.xml"
    xml.write_text("<net/>")
    with pytest.raises(
        InvalidInputError,
        match=r"backend 'onnxruntime' quantizes ONNX models \(\.onnx\), got 'model\.xml'",
    ):
        quantize(xml, bikes_crops, backend="onnxruntime")


def test_output_of_the_wrong_kind(classifier: Path, bikes_crops, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInputError, match=r"backend 'openvino' writes a \.xml file, got 'out\.onnx'"
    ):
        quantize(classifier, bikes_crops, tmp_path / "out.onnx", backend="openvino")
    with pytest.raises(InvalidInputError, match="expected a new file, got the model itself"):
        quantize(classifier, bikes_crops, classifier)
    with pytest.raises(InvalidInputError, match="does not exist"):
        quantize(classifier, bikes_crops, tmp_path / "missing" / "out.onnx")


def test_missing_model(tmp_path: Path, bikes_crops) -> None:
    with pytest.raises(ModelLoadError, match=r"model file '.*nothing\.onnx' does not exist"):
        quantize(tmp_path / "nothing.onnx", bikes_crops)


def test_missing_nncf_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, classifier: Path, bikes_crops, tmp_path: Path
) -> None:
    real = quantization_core.importlib.util.find_spec
    monkeypatch.setattr(
        quantization_core.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "nncf" else real(name, *a),
    )
    with pytest.raises(
        BackendUnavailableError,
        match=r"needs nncf, not installed: pip install 'atriva-inference\[quantize\]'",
    ):
        quantize(classifier, bikes_crops, tmp_path / "out.xml", backend="openvino")


def test_default_output_next_to_the_model() -> None:
    assert default_output("/models/net.onnx", "onnxruntime") == Path("/models/net-int8.onnx")
    assert default_output("/models/net.onnx", "openvino") == Path("/models/net-int8.xml")
    assert default_output("/models/net.xml", "openvino") == Path("/models/net-int8.xml")


def _one_channel_model(path: Path) -> Path:
    """A 1-channel (grayscale) 16x16 NCHW conv net built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weights = numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["relu"]),
            helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["scores"]),
        ],
        "gray",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_one_channel_model_calibrates_on_rgb_frames_made_grayscale(
    tmp_path: Path, frames_dir: Path
) -> None:
    model = _one_channel_model(tmp_path / "gray.onnx")
    report = quantize(
        model, frames_dir, subset_size=SUBSET, held_out=HELD_OUT, min_speedup=0, mean=[128.0]
    )
    assert report.input_shape == [1, 1, 16, 16]
    assert (report.calibration_frames, report.held_out_frames) == (SUBSET, HELD_OUT)
    assert report.int8_layers and report.value > 0.9  # cosine of f32 and INT8 scores
