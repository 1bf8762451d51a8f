"""Drawing detections on a frame, with Pillow (extra ``[video]`` or ``[demo]``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, InvalidInputError
from .detections import Detections

__all__ = ["PALETTE", "draw"]

#: Box colours (RGB), chosen by class id: well apart from each other and from grey roads.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
)


def _pillow() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise BackendUnavailableError(
            "drawing detections needs Pillow: pip install 'atriva-inference[video]'"
        ) from exc
    return Image, ImageDraw, ImageFont


def draw(
    frame: np.ndarray,
    detections: Detections,
    *,
    thickness: int = 2,
    scores: bool = True,
) -> np.ndarray:
    """A copy of ``frame`` (uint8 HxWx3 RGB) with each detection's box, label and score
    (and keypoints, where it has them) drawn on it; ``frame`` itself is not changed."""
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InvalidInputError(
            f"frame: expected a uint8 HxWx3 RGB array, got {array.dtype}{list(array.shape)}"
        )
    if not isinstance(detections, Detections):
        raise InvalidInputError(f"detections: expected Detections, got {type(detections).__name__}")
    image_module, draw_module, font_module = _pillow()
    image = image_module.fromarray(np.ascontiguousarray(array))  # Pillow copies the pixels
    pen = draw_module.Draw(image)
    font = font_module.load_default()
    width = array.shape[1]
    for row in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[row])
        colour = PALETTE[int(detections.class_ids[row]) % len(PALETTE)]
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=thickness)
        text = str(detections.labels[row])
        if scores:
            text += f" {float(detections.scores[row]):.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left + 4, bottom - top + 4
        # Above the box where there is room, else inside its top edge.
        tx = min(max(x1, 0.0), max(width - text_w, 0))
        ty = y1 - text_h if y1 - text_h >= 0 else max(y1, 0.0)
        pen.rectangle((tx, ty, tx + text_w, ty + text_h), fill=colour)
        pen.text((tx + 2 - left, ty + 2 - top), text, fill=(0, 0, 0), font=font)
        if detections.keypoints is not None:
            for px, py in detections.keypoints[row]:
                pen.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
    return np.asarray(image).copy()
