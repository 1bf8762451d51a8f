"""Greedy non-maximum suppression, vectorised with numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError

__all__ = ["iou", "nms"]


def _boxes(boxes: Any) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InvalidInputError(f"boxes: expected shape [N, 4] (x1, y1, x2, y2), got {array.shape}")
    return array


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou(first: Any, second: Any) -> np.ndarray:
    """Intersection over union of every box in ``first`` ``[N, 4]`` with every box in
    ``second`` ``[M, 4]`` (x1, y1, x2, y2): ``[N, M]``, 0 where the union is empty."""
    a, b = _boxes(first), _boxes(second)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = _areas(a)[:, None] + _areas(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float = 0.5,
    *,
    class_ids: Any = None,
    max_detections: int | None = None,
) -> np.ndarray:
    """Indices of the boxes kept, best score first (int64).

    Takes the best remaining box, drops every other box whose IoU with it is above
    ``iou_threshold``, repeats. With ``class_ids``, boxes suppress only boxes of their own
    class (all classes in one pass: each class's boxes are moved apart from the others').
    Each step compares one box with all the remaining ones at once; memory stays O(N).
    """
    array = _boxes(boxes)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1) if np.size(scores) else np.zeros(0)
    if scores.shape != (len(array),):
        raise InvalidInputError(f"scores: expected shape [{len(array)}], got {scores.shape}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise InvalidInputError(f"iou_threshold: expected a value in [0, 1], got {iou_threshold}")
    if class_ids is not None and len(array):
        ids = np.asarray(class_ids).reshape(-1)
        if ids.shape != scores.shape:
            raise InvalidInputError(f"class_ids: expected shape [{len(array)}], got {ids.shape}")
        # Boxes of different classes never overlap once each class sits in its own square.
        _, classes = np.unique(ids, return_inverse=True)
        span = float(np.max(array) - np.min(array)) + 1.0
        array = array + (classes.reshape(-1) * span)[:, None]
    areas = _areas(array)
    order = np.argsort(-scores, kind="stable")
    limit = len(order) if max_detections is None else max(int(max_detections), 0)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = np.minimum(array[best, 2], array[rest, 2]) - np.maximum(
            array[best, 0], array[rest, 0]
        )
        height = np.minimum(array[best, 3], array[rest, 3]) - np.maximum(
            array[best, 1], array[rest, 1]
        )
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
