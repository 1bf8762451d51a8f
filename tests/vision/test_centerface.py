"""CenterFace's decoder (atriva_inference.vision.centerface) on synthetic maps, and NMS on
the boxes it gives; the real model runs in tests/test_centerface.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from atriva_inference.vision import decode_centerface, nms, pad_to_multiple
from atriva_inference.vision.centerface import OUTPUT_NAMES, decode_maps

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
    faces = decode_maps(*_synthetic())
    assert faces.boxes.dtype == np.float32
    assert faces.boxes.shape == (2, 4)
    assert faces.scores.shape == (2,)
    assert faces.keypoints.shape == (2, 5, 2)
    np.testing.assert_allclose(faces.scores, [0.9, 0.7], rtol=1e-6)  # highest first
    np.testing.assert_allclose(faces.boxes[0], [2, 6, 22, 16], atol=1e-5)
    np.testing.assert_allclose(faces.boxes[1], [4, 20, 8, 24], atol=1e-5)
    # landmark j: x = x1 + lm[2j+1] * w, y = y1 + lm[2j] * h, box (2, 6) 20 wide 10 high
    np.testing.assert_allclose(
        faces.keypoints[0],
        [[7, 11], [22, 6], [2, 16], [10, 8], [18, 12]],
        atol=1e-5,
    )
    np.testing.assert_allclose(faces.keypoints[1], [[4, 20]] * 5, atol=1e-5)


def test_decode_threshold_and_unbatched_maps() -> None:
    heatmap, scale, offset, landmarks = _synthetic()
    assert len(decode_maps(heatmap, scale, offset, landmarks, threshold=0.8).boxes) == 1
    assert len(decode_maps(heatmap, scale, offset, landmarks, threshold=0.1).boxes) == 4
    faces = decode_maps(heatmap[0, 0], scale[0], offset[0], landmarks[0])
    np.testing.assert_allclose(faces.boxes, decode_maps(*_synthetic()).boxes)


def test_decode_clips_to_image_size() -> None:
    faces = decode_maps(*_synthetic(), image_size=(20, 20))
    np.testing.assert_allclose(faces.boxes[0], [2, 6, 20, 16], atol=1e-5)
    np.testing.assert_allclose(faces.boxes[1], [4, 20, 8, 20], atol=1e-5)


def test_decode_nothing_found() -> None:
    faces = decode_maps(*_maps())
    assert faces.boxes.shape == (0, 4)
    assert faces.scores.shape == (0,)
    assert faces.keypoints.shape == (0, 5, 2)
    assert len(nms(faces.boxes, faces.scores)) == 0


def test_decode_rejects_bad_maps() -> None:
    heatmap, scale, offset, landmarks = _maps()
    with pytest.raises(ValueError, match="one image"):
        decode_maps(np.concatenate([heatmap, heatmap]), scale, offset, landmarks)
    with pytest.raises(ValueError, match="scale"):
        decode_maps(heatmap, scale[:, :1], offset, landmarks)
    with pytest.raises(ValueError, match="landmarks"):
        decode_maps(heatmap, scale, offset, landmarks[:, :, :4])


def test_decode_centerface_applies_nms() -> None:
    heatmap, scale, offset, landmarks = _synthetic()
    heatmap[0, 0, 2, 4] = 0.8  # a neighbour of the best cell: the same face, one cell right
    scale[0, :, 2, 4] = scale[0, :, 2, 3]
    outputs = dict(zip(OUTPUT_NAMES, (heatmap, scale, offset, landmarks)))
    assert len(decode_maps(heatmap, scale, offset, landmarks).boxes) == 3
    faces = decode_centerface(outputs)
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
    assert nms(boxes, scores, 0.3).tolist() == [4, 0]
    scores[4] = 0.5
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert nms(boxes, scores, iou_threshold=0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, iou_threshold=1.0).tolist() == [0, 1, 2, 3, 4]


def test_nms_zero_and_one_box() -> None:
    kept = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert kept.dtype == np.int64
    assert kept.shape == (0,)
    assert nms(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5])).tolist() == [0]


def test_nms_ties_and_degenerate_boxes() -> None:
    same = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    assert nms(same, np.array([0.5, 0.5])).tolist() == [0]
    points = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)  # zero area: IoU 0, no NaN
    assert nms(points, np.array([0.4, 0.6])).tolist() == [1, 0]


def test_nms_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="boxes"):
        nms(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="scores"):
        nms(np.zeros((3, 4)), np.zeros(2))


# -- pad_to_multiple -----------------------------------------------------------------------


def test_pad_to_multiple_no_padding_needed() -> None:
    frame = np.arange(64 * 96 * 3, dtype=np.uint32).astype(np.uint8).reshape(64, 96, 3)
    padded, size = pad_to_multiple(frame, 32)
    assert size == (64, 96)
    assert padded.shape == (64, 96, 3)
    assert np.shares_memory(padded, frame)


def test_pad_to_multiple_pads_bottom_and_right() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(1, 256, size=(100, 70, 3), dtype=np.uint8)
    padded, size = pad_to_multiple(frame, 32)
    assert size == (100, 70)
    assert padded.shape == (128, 96, 3)
    assert padded.dtype == np.uint8
    assert padded.flags.c_contiguous
    np.testing.assert_array_equal(padded[:100, :70], frame)
    assert not padded[100:].any()
    assert not padded[:, 70:].any()


def test_pad_to_multiple_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="HxWxC"):
        pad_to_multiple(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="positive"):
        pad_to_multiple(np.zeros((10, 10, 3), np.uint8), 0)
