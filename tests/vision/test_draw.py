"""Drawing detections with Pillow: a new frame, boxes where the detections are."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InvalidInputError
from atriva_inference.vision import COCO_LABELS, Detections, draw
from atriva_inference.vision.draw import PALETTE

pytest.importorskip("PIL", reason="drawing needs Pillow (extra [video])")


def test_boxes_are_drawn_on_a_copy() -> None:
    frame = np.full((120, 160, 3), 40, np.uint8)
    found = Detections.from_arrays([[20, 40, 80, 100]], [0.87], [1], COCO_LABELS)
    drawn = draw(frame, found, thickness=2)
    assert drawn.dtype == np.uint8 and drawn.shape == frame.shape
    assert not np.shares_memory(drawn, frame) and (frame == 40).all()
    colour = PALETTE[1]
    assert tuple(drawn[70, 20]) == colour and tuple(drawn[70, 79]) == colour  # left, right
    assert tuple(drawn[99, 50]) == colour  # bottom edge
    assert tuple(drawn[70, 50]) == (40, 40, 40)  # inside the box: untouched
    assert (drawn[:40, 20:80] != 40).any()  # the label sits above the box
    assert (drawn[:, 100:] == 40).all()  # nothing far away


def test_labels_at_the_top_edge_and_keypoints() -> None:
    frame = np.zeros((64, 64, 3), np.uint8)
    found = Detections([[0, 0, 30, 30]], [0.5], [0], ["face"], [[[45, 45]] * 5])
    drawn = draw(frame, found, scores=False)
    assert tuple(drawn[45, 45]) == PALETTE[0]
    assert (drawn[:12, :30] != 0).any()  # the label inside the box when there is no room


def test_nothing_to_draw_and_bad_frames() -> None:
    frame = np.zeros((8, 8, 3), np.uint8)
    np.testing.assert_array_equal(draw(frame, Detections.empty()), frame)
    with pytest.raises(InvalidInputError, match="uint8 HxWx3"):
        draw(np.zeros((8, 8), np.uint8), Detections.empty())
    with pytest.raises(InvalidInputError, match="uint8 HxWx3"):
        draw(np.zeros((8, 8, 3), np.float32), Detections.empty())
    with pytest.raises(InvalidInputError, match="Detections"):
        draw(frame, [])  # type: ignore[arg-type]
