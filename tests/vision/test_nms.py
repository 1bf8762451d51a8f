"""Vectorised NMS and IoU against a plain reference written box by box."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InvalidInputError
from atriva_inference.vision import iou, nms


def _reference_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_nms(boxes, scores, threshold, class_ids=None) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(
            _reference_iou(boxes[i], boxes[k]) <= threshold
            or (class_ids is not None and class_ids[i] != class_ids[k])
            for k in keep
        ):
            keep.append(i)
    return keep


def _random_boxes(rng, count):
    corner = rng.uniform(0, 200, (count, 2))
    size = rng.uniform(5, 60, (count, 2))
    return np.concatenate([corner, corner + size], axis=1), rng.random(count)


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_box_by_box_reference(seed) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = _random_boxes(rng, 120)
    classes = rng.integers(0, 3, 120)
    for threshold in (0.1, 0.5, 0.8):
        assert nms(boxes, scores, threshold).tolist() == _reference_nms(boxes, scores, threshold)
        assert nms(boxes, scores, threshold, class_ids=classes).tolist() == _reference_nms(
            boxes, scores, threshold, classes
        )


def test_iou_matrix() -> None:
    rng = np.random.default_rng(9)
    a, _ = _random_boxes(rng, 7)
    b, _ = _random_boxes(rng, 5)
    matrix = iou(a, b)
    assert matrix.shape == (7, 5)
    expected = [[_reference_iou(x, y) for y in b] for x in a]
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    assert iou(np.zeros((0, 4)), b).shape == (0, 5)


def test_per_class_keeps_overlapping_boxes_of_other_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    assert nms(boxes, scores, 0.5, class_ids=[1, 1, 2]).tolist() == [0, 2]
    assert nms(boxes, scores, 0.5, class_ids=["car", "bus", "car"]).tolist() == [0, 1]


def test_max_detections() -> None:
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]], np.float32)
    assert nms(boxes, [0.1, 0.3, 0.2], max_detections=2).tolist() == [1, 2]
    assert nms(boxes, [0.1, 0.3, 0.2], max_detections=0).tolist() == []


def test_bad_arguments_say_what_was_expected() -> None:
    boxes = np.zeros((2, 4))
    with pytest.raises(InvalidInputError, match="iou_threshold"):
        nms(boxes, [0.1, 0.2], 1.5)
    with pytest.raises(InvalidInputError, match=r"class_ids: expected shape \[2\]"):
        nms(boxes, [0.1, 0.2], class_ids=[1])
