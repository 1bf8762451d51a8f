"""Decoding CenterFace's output maps into faces (boxes, scores, five landmarks).

CenterFace answers four maps at a quarter of the input resolution:

* ``537`` heatmap ``[B, 1, H/4, W/4]``: face-centre probability per cell;
* ``538`` scale ``[B, 2, H/4, W/4]``: log of the box (height, width) / 4;
* ``539`` offset ``[B, 2, H/4, W/4]``: sub-cell (y, x) offset of the centre;
* ``540`` landmarks ``[B, 10, H/4, W/4]``: five (y, x) points, relative to the box.

Its input height and width must be multiples of 32 (``pad_to_multiple``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .detections import Detections
from .nms import nms

__all__ = [
    "IOU_THRESHOLD",
    "MULTIPLE",
    "OUTPUT_NAMES",
    "STRIDE",
    "THRESHOLD",
    "decode_centerface",
    "decode_maps",
    "pad_to_multiple",
]

#: heatmap, scale, offset, landmarks
OUTPUT_NAMES = ("537", "538", "539", "540")
#: Output cells are STRIDE x STRIDE input pixels.
STRIDE = 4
#: Input height and width must be multiples of this.
MULTIPLE = 32
THRESHOLD = 0.5
IOU_THRESHOLD = 0.3


def pad_to_multiple(
    frame_hwc: np.ndarray, multiple: int = MULTIPLE
) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad ``frame_hwc`` at the bottom and right to multiples of ``multiple``.

    Returns the padded frame (the frame itself when no padding is needed) and the original
    ``(height, width)``, to clip detections to.
    """
    frame = np.asarray(frame_hwc)
    if frame.ndim != 3:
        raise InvalidInputError(f"expected an HxWxC frame, got shape {frame.shape}")
    if not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise InvalidInputError(f"multiple must be a positive integer, got {multiple!r}")
    height, width = frame.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))
    return np.ascontiguousarray(frame), (height, width)


def _one_image(array: Any, channels: int, what: str) -> np.ndarray:
    """``[1, C, h, w]`` or ``[C, h, w]`` (or ``[h, w]`` when C is 1) -> ``[C, h, w]``."""
    array = np.asarray(array)
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise InvalidInputError(
                f"{what}: decoding takes one image, got a batch of {array.shape[0]}"
            )
        array = array[0]
    if array.ndim == 2 and channels == 1:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[0] != channels:
        raise InvalidInputError(f"{what}: expected [1, {channels}, h, w], got shape {array.shape}")
    return array


def decode_maps(
    heatmap: Any,
    scale: Any,
    offset: Any,
    landmarks: Any,
    threshold: float = THRESHOLD,
    *,
    image_size: tuple[int, int] | None = None,
) -> Detections:
    """CenterFace's four maps (one image) -> every candidate face, best first, no NMS.

    A face is a heatmap cell above ``threshold``. For cell (row, col): size (h, w) =
    ``exp(scale) * 4``; centre (y, x) = ``(row + offset_y + 0.5) * 4``,
    ``(col + offset_x + 0.5) * 4``; landmark j = ``(x1 + lm[2j+1] * w, y1 + lm[2j] * h)``
    relative to the unclipped box (``keypoints``). ``image_size`` = (height, width) clips
    boxes to the image (landmarks are left as predicted).
    """
    heat = _one_image(heatmap, 1, "heatmap")[0]
    scale = _one_image(scale, 2, "scale")
    offset = _one_image(offset, 2, "offset")
    points = _one_image(landmarks, 10, "landmarks")
    for what, array in (("scale", scale), ("offset", offset), ("landmarks", points)):
        if array.shape[1:] != heat.shape:
            raise InvalidInputError(
                f"{what}: expected maps of {heat.shape} like the heatmap, got {array.shape[1:]}"
            )

    rows, cols = np.nonzero(heat > threshold)
    scores = heat[rows, cols].astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    rows, cols, scores = rows[order], cols[order], scores[order]

    size_h = np.exp(scale[0, rows, cols].astype(np.float64)) * STRIDE
    size_w = np.exp(scale[1, rows, cols].astype(np.float64)) * STRIDE
    centre_y = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    x1, y1 = centre_x - size_w / 2, centre_y - size_h / 2
    boxes = np.stack([x1, y1, x1 + size_w, y1 + size_h], axis=1)

    cell_points = points[:, rows, cols].T.reshape(-1, 5, 2)  # [K, 5, (y, x)]
    marks = np.empty_like(cell_points, dtype=np.float64)
    marks[:, :, 0] = x1[:, None] + cell_points[:, :, 1] * size_w[:, None]
    marks[:, :, 1] = y1[:, None] + cell_points[:, :, 0] * size_h[:, None]

    if image_size is not None:
        height, width = image_size
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    count = len(scores)
    return Detections(boxes, scores, np.zeros(count, np.int64), ["face"] * count, marks)


def decode_centerface(
    outputs: Mapping[str, Any],
    shape: Sequence[int] | None = None,
    *,
    threshold: float = THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
) -> Detections:
    """``{output name: array}`` of one image -> the faces, after ``decode_maps`` and NMS.

    ``shape``: the ``(height, width, ...)`` of the frame before padding (e.g.
    ``frame.shape``), to clip boxes to; ``None`` leaves them unclipped.
    """
    missing = [name for name in OUTPUT_NAMES if name not in outputs]
    if missing:
        raise InvalidInputError(
            f"expected CenterFace's outputs {list(OUTPUT_NAMES)}, got {sorted(outputs)}"
        )
    maps = (np.asarray(outputs[name]) for name in OUTPUT_NAMES)
    size = None if shape is None else (int(shape[0]), int(shape[1]))
    faces = decode_maps(*maps, threshold, image_size=size)
    return faces[nms(faces.boxes, faces.scores, iou_threshold)]
