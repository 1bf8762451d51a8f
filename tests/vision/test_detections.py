"""Detections: a value with boxes, scores, class ids and labels; indexing and filters."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InvalidInputError
from atriva_inference.vision import COCO_LABELS, Detections, coco_label


def _three() -> Detections:
    return Detections.from_arrays(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 70]],
        [0.9, 0.8, 0.3],
        [1.0, 1.0, 3.0],  # TF models answer class ids as floats
        COCO_LABELS,
    )


def test_columns_and_types() -> None:
    found = _three()
    assert len(found) == 3
    assert found.boxes.dtype == np.float32 and found.boxes.shape == (3, 4)
    assert found.scores.dtype == np.float32
    assert found.class_ids.dtype == np.int64 and found.class_ids.tolist() == [1, 1, 3]
    assert found.labels.tolist() == ["person", "person", "car"]
    assert found.keypoints is None


def test_a_value_nobody_else_can_change() -> None:
    boxes = np.array([[0, 0, 4, 4]], np.float32)
    found = Detections(boxes, [0.5], [7], ["x"])
    boxes[0, 0] = 3
    assert found.boxes[0, 0] == 0
    with pytest.raises(ValueError):
        found.boxes[0, 0] = 1
    with pytest.raises(AttributeError):
        found.scores = np.zeros(1)  # type: ignore[misc]


def test_indexing_by_int_slice_mask_and_indices() -> None:
    found = _three()
    assert found[0].labels.tolist() == ["person"] and len(found[-1]) == 1
    assert found[-1].labels.tolist() == ["car"]
    assert len(found[1:]) == 2
    picked = found[np.array([True, False, True])]
    assert picked.scores.tolist() == pytest.approx([0.9, 0.3])
    assert found[[2, 0]].class_ids.tolist() == [3, 1]
    with pytest.raises(IndexError):
        found[3]
    with pytest.raises(InvalidInputError, match="3 booleans"):
        found[np.array([True, False])]


def test_filters_and_counts() -> None:
    found = _three()
    assert found.above(0.5).labels.tolist() == ["person", "person"]
    assert len(found.above(0.9)) == 0  # above, not at
    assert found.of("car").class_ids.tolist() == [3]
    assert len(found.of(1)) == 2 and len(found.of(1, "car")) == 3 and len(found.of("bus")) == 0
    assert found.counts() == {"person": 2, "car": 1}
    assert found.nms(0.5).scores.tolist() == pytest.approx([0.9, 0.3])


def test_nms_per_class_or_across_classes() -> None:
    found = Detections.from_arrays(
        [[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [1, 2], COCO_LABELS
    )
    assert len(found.nms()) == 2  # a person and a bicycle at the same place both stay
    assert found.nms(per_class=False).labels.tolist() == ["person"]


def test_empty_and_keypoints() -> None:
    none = Detections.empty(keypoints=5)
    assert len(none) == 0 and none.boxes.shape == (0, 4) and none.keypoints.shape == (0, 5, 2)
    assert none.counts() == {} and len(none.above(0)) == 0 and len(none.nms()) == 0
    with_points = Detections([[0, 0, 2, 2]], [1.0], [0], ["face"], np.zeros((1, 5, 2)))
    assert with_points[[0]].keypoints.shape == (1, 5, 2)


def test_labels_by_id_where_no_names_are_known() -> None:
    found = Detections.from_arrays([[0, 0, 1, 1]], [0.5], [12])
    assert found.labels.tolist() == ["12"]
    assert Detections.from_arrays([[0, 0, 1, 1]], [0.5], [12], COCO_LABELS).labels[0] == "12"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (([[0, 0, 1]], [1.0], [0], ["a"]), r"boxes: expected shape \[N, 4\]"),
        (([[0, 0, 1, 1]], [1.0, 2.0], [0], ["a"]), r"scores: expected shape \[1\]"),
        (([[0, 0, 1, 1]], [1.0], [], ["a"]), r"class_ids: expected shape \[1\]"),
        (([[0, 0, 1, 1]], [1.0], [0], []), r"labels: expected shape \[1\]"),
        (([[0, 0, 1, 1]], ["x"], [0], ["a"]), "scores: expected float32"),
    ],
)
def test_inconsistent_columns_are_refused(columns, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Detections(*columns)
    with pytest.raises(InvalidInputError, match="keypoints"):
        Detections([[0, 0, 1, 1]], [1.0], [0], ["a"], np.zeros((2, 5, 2)))


def test_coco_labels_are_the_91_id_mapping() -> None:
    assert len(COCO_LABELS) == 80 and min(COCO_LABELS) == 1 and max(COCO_LABELS) == 90
    assert [COCO_LABELS[i] for i in (1, 2, 3, 4, 6, 8, 13, 90)] == [
        "person",
        "bicycle",
        "car",
        "motorcycle",
        "bus",
        "truck",
        "stop sign",
        "toothbrush",
    ]
    gaps = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert set(range(1, 91)) - set(COCO_LABELS) == gaps
    assert coco_label(67) == "dining table" and coco_label(12) == "12"
