"""The metrics' building blocks: box matching and decoder choice."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference.errors import InvalidInputError
from atriva_inference.quantization.compare import DECODERS, matched_iou, resolve_decoder
from atriva_inference.vision import Detections


def _boxes(
    *boxes: tuple[float, float, float, float], classes: list[int] | None = None
) -> Detections:
    ids = classes if classes is not None else [0] * len(boxes)
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4), [0.9] * len(boxes), ids, [str(i) for i in ids]
    )


def test_matched_iou() -> None:
    a = _boxes((0, 0, 10, 10), (20, 20, 30, 30))
    assert matched_iou(a, a) == pytest.approx(1.0)
    assert matched_iou(_boxes(), _boxes()) == 1.0
    assert matched_iou(a, _boxes()) == 0.0
    # One box missed: half the score. One shifted by half its width: IoU 1/3.
    assert matched_iou(a, _boxes((0, 0, 10, 10))) == pytest.approx(0.5)
    assert matched_iou(_boxes((0, 0, 10, 10)), _boxes((5, 0, 15, 10))) == pytest.approx(1 / 3)
    # Same place, other class: no match.
    assert (
        matched_iou(_boxes((0, 0, 10, 10), classes=[1]), _boxes((0, 0, 10, 10), classes=[2])) == 0.0
    )
    # One to one: two INT8 boxes on one f32 box count once.
    assert matched_iou(
        _boxes((0, 0, 10, 10)), _boxes((0, 0, 10, 10), (0, 0, 10, 10))
    ) == pytest.approx(0.5)


def test_resolve_decoder() -> None:
    assert resolve_decoder("centerface", "iou") is DECODERS["centerface"]
    assert resolve_decoder(None, "cosine") is None
    custom = DECODERS["tf-od"]
    assert resolve_decoder(custom, "iou") is custom
    with pytest.raises(InvalidInputError, match="got 'yolo'"):
        resolve_decoder("yolo", "iou")
    with pytest.raises(InvalidInputError, match="got int"):
        resolve_decoder(3, "iou")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="metric 'iou' compares detections"):
        resolve_decoder(None, "iou")
