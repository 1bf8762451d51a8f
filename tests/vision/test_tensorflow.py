"""Decoding TF Object Detection API outputs (synthetic; the real detector is in
tests/backends/test_openvino_formats.py and the main job)."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InvalidInputError
from atriva_inference.vision import decode_tf_detections


def _outputs(batch: int = 1) -> dict[str, np.ndarray]:
    boxes = np.zeros((batch, 100, 4), np.float32)
    scores = np.zeros((batch, 100), np.float32)
    classes = np.zeros((batch, 100), np.float32)
    boxes[0, :4] = [[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.6, 0.6], [0, 0, 1, 1]]
    scores[0, :4] = [0.9, 0.6, 0.4, 0.99]
    classes[0, :4] = [1, 2, 3, 6]
    # the fourth is past num_detections: padding the graph leaves, never a detection
    return {
        "detection_boxes": boxes,
        "detection_scores": scores,
        "detection_classes": classes,
        "num_detections": np.full(batch, 3, np.float32),
    }


def test_normalised_ymin_xmin_ymax_xmax_become_pixel_xyxy() -> None:
    found = decode_tf_detections(_outputs(), (272, 640, 3))
    assert found.labels.tolist() == ["person", "bicycle"]  # 0.4 is below the 0.5 threshold
    np.testing.assert_allclose(found.boxes[0], [0.2 * 640, 0.1 * 272, 0.4 * 640, 0.5 * 272])
    np.testing.assert_allclose(found.boxes[1], [0, 0, 640, 272])
    assert found.scores.tolist() == pytest.approx([0.9, 0.6])
    assert found.class_ids.tolist() == [1, 2]


def test_threshold_labels_and_frozen_graph_names() -> None:
    outputs = {f"{name}:0": value for name, value in _outputs().items()}
    found = decode_tf_detections(outputs, (100, 100), threshold=0.0, labels=None)
    assert found.labels.tolist() == ["1", "2", "3"]  # num_detections bounds what is read
    assert len(decode_tf_detections(outputs, (100, 100), threshold=0.95)) == 0


def test_an_image_of_a_batch() -> None:
    outputs = _outputs(batch=2)
    assert len(decode_tf_detections(outputs, (10, 10), index=1)) == 0
    with pytest.raises(InvalidInputError, match="batch of 2"):
        decode_tf_detections(outputs, (10, 10), index=2)


def test_outputs_of_another_model_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="detection_boxes"):
        decode_tf_detections({"537": np.zeros(1)}, (10, 10))
    outputs = _outputs()
    outputs["detection_scores"] = outputs["detection_scores"][:, :50]
    with pytest.raises(InvalidInputError, match=r"\[B, N\]"):
        decode_tf_detections(outputs, (10, 10))
    with pytest.raises(InvalidInputError, match="shape"):
        decode_tf_detections(_outputs(), (10,))
