"""Computer vision on model outputs: ``Detections``, NMS, COCO labels, decoders for the
detectors the examples run (TensorFlow Object Detection API, CenterFace), drawing boxes.

Only numpy is needed; ``draw`` needs Pillow (extra ``[video]``). See ``docs/vision.md``.
"""

from __future__ import annotations

from .centerface import decode_centerface, pad_to_multiple
from .coco import COCO_LABELS, coco_label
from .detections import Detections
from .draw import draw
from .nms import iou, nms
from .tensorflow import decode_tf_detections

__all__ = [
    "COCO_LABELS",
    "Detections",
    "coco_label",
    "decode_centerface",
    "decode_tf_detections",
    "draw",
    "iou",
    "nms",
    "pad_to_multiple",
]
