"""Decoding what TensorFlow Object Detection API models answer (SSD, Faster R-CNN, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .coco import COCO_LABELS
from .detections import Detections

__all__ = ["OUTPUT_NAMES", "decode_tf_detections"]

#: boxes (normalised ymin, xmin, ymax, xmax), scores, classes, how many are valid
OUTPUT_NAMES = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


def _output(outputs: Mapping[str, Any], name: str) -> np.ndarray:
    # Frozen graphs name their outputs "detection_boxes:0" where a tool keeps the index.
    for key in (name, f"{name}:0"):
        if key in outputs:
            return np.asarray(outputs[key])
    raise InvalidInputError(
        f"expected the TF Object Detection API output '{name}', got outputs {sorted(outputs)}"
    )


def decode_tf_detections(
    outputs: Mapping[str, Any],
    shape: Sequence[int],
    *,
    threshold: float = 0.5,
    labels: Mapping[int, str] | None = COCO_LABELS,
    index: int = 0,
) -> Detections:
    """One image's ``detection_boxes/scores/classes/num_detections`` -> ``Detections`` in
    pixels of the frame that went in.

    ``shape``: that frame's ``(height, width, ...)``, e.g. ``frame.shape`` (the boxes are
    normalised to it). ``threshold``: keep scores above it. ``labels``: class id -> name
    (COCO's by default; ``None`` labels by id). ``index``: the image within the batch.
    The model has already run NMS; the order (best first) is kept.
    """
    if len(shape) < 2:
        raise InvalidInputError(f"shape: expected (height, width, ...), got {tuple(shape)}")
    height, width = int(shape[0]), int(shape[1])
    boxes = _output(outputs, "detection_boxes")
    scores = _output(outputs, "detection_scores")
    classes = _output(outputs, "detection_classes")
    count = _output(outputs, "num_detections")
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != boxes.shape[:2]:
        raise InvalidInputError(
            f"expected detection_boxes [B, N, 4] and detection_scores [B, N], got "
            f"{list(boxes.shape)} and {list(scores.shape)}"
        )
    if not 0 <= index < len(boxes):
        raise InvalidInputError(
            f"index: expected an image of the batch of {len(boxes)}, got {index}"
        )
    valid = min(int(count.reshape(-1)[index]), boxes.shape[1])
    boxes, scores = boxes[index, :valid], scores[index, :valid]
    classes = classes[index, :valid]
    keep = scores > threshold
    ymin, xmin, ymax, xmax = np.clip(boxes[keep], 0.0, 1.0).T
    pixels = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=1)
    return Detections.from_arrays(
        pixels, scores[keep], np.rint(classes[keep]).astype(np.int64), labels
    )
