"""f32 against INT8 on held-out frames: paired latency and the accuracy metrics.

Metrics (``value`` is the agreement, ``drop = 1 - value``):

* ``"cosine"``: the worst cosine similarity between an f32 output and its INT8 twin over
  every output of every held-out frame (a raw-output check: strict, model-agnostic);
* ``"top1"``: the share of held-out frames whose first output has the same arg-max (the
  last axis) in f32 and INT8 (classifiers);
* ``"iou"``: detections decoded from both (``decode``), each f32 box matched to the INT8
  box of the same class it overlaps most (greedy, one to one); a frame scores the sum of
  the matched IoUs over ``max(f32 boxes, INT8 boxes)`` (a missed or extra box counts 0;
  a frame where neither finds anything scores 1); ``value`` is the mean over frames.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..vision import Detections, decode_centerface, decode_tf_detections, iou

__all__ = ["DECODERS", "METRICS", "Comparison", "compare", "resolve_decoder"]

METRICS = ("cosine", "top1", "iou")

#: ``decode(outputs, frame) -> Detections``: the arrays of one frame's outputs by name, and
#: the uint8 HWC frame that went in (decoders scale boxes to it).
Decoder = Callable[[Mapping[str, np.ndarray], np.ndarray], Detections]


def _centerface(outputs: Mapping[str, np.ndarray], frame: np.ndarray) -> Detections:
    return decode_centerface(outputs, frame.shape)


def _tf_od(outputs: Mapping[str, np.ndarray], frame: np.ndarray) -> Detections:
    bare = {name.split(":")[0]: value for name, value in outputs.items()}
    return decode_tf_detections(bare, frame.shape)


#: Built-in decoders by name (the names ``atriva-infer pipeline --decoder`` uses).
DECODERS: dict[str, Decoder] = {"centerface": _centerface, "tf-od": _tf_od}


def resolve_decoder(decode: Decoder | str | None, metric: str) -> Decoder | None:
    """The decoder callable for ``decode``; an error when ``metric`` needs one and none is
    given, or the name is unknown."""
    if isinstance(decode, str):
        if decode not in DECODERS:
            raise InvalidInputError(
                f"decode: expected one of {', '.join(DECODERS)} or a callable "
                f"(outputs, frame) -> Detections, got {decode!r}"
            )
        return DECODERS[decode]
    if decode is not None and not callable(decode):
        raise InvalidInputError(
            f"decode: expected a decoder name or a callable (outputs, frame) -> Detections, "
            f"got {type(decode).__name__}"
        )
    if metric == "iou" and decode is None:
        raise InvalidInputError(
            f"metric 'iou' compares detections: pass decode= (one of {', '.join(DECODERS)}, "
            f"or a callable (outputs, frame) -> Detections)"
        )
    return decode


@dataclass(frozen=True)
class Comparison:
    f32_ms: float
    int8_ms: float
    speedup: float
    value: float
    max_abs_diff: float
    max_rel_diff: float
    pairs: int


def compare(
    f32: Any,
    int8: Any,
    feeds: Sequence[Any],
    frames: Sequence[np.ndarray],
    *,
    metric: str,
    decode: Decoder | None,
    min_pairs: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> Comparison:
    """Run both loaded models on the same ``feeds`` (one per held-out frame), interleaved:
    passes over the frames (at least 3, and enough for ``min_pairs`` timed pairs), each
    frame through f32 and INT8 back to back, the order alternating per pass so neither
    always runs on a warmer cache. Latency is the median per model; the speed-up is the
    median of the per-pair ratios (robust to load that comes and goes during the run). The
    outputs of the first pass are compared."""
    rounds = max(3, -(-min_pairs // max(len(feeds), 1)))
    name = f32.inputs[0].name
    for feed in feeds[:2]:  # warm-up: first-shape compiles and caches, not timed
        f32.run({name: feed})
        int8.run({name: feed})
    times: dict[str, list[float]] = {"f32": [], "int8": []}
    outputs: dict[str, list[dict[str, np.ndarray]]] = {"f32": [], "int8": []}
    total = rounds * len(feeds)
    done = 0
    for round_index in range(rounds):
        order = (("f32", f32), ("int8", int8))
        if round_index % 2:
            order = order[::-1]
        for feed in feeds:
            for key, model in order:
                started = time.perf_counter()
                result = model.run({name: feed})
                times[key].append((time.perf_counter() - started) * 1e3)
                if round_index == 0:
                    outputs[key].append(
                        {out: tensor.to_numpy(copy=True) for out, tensor in result.items()}
                    )
            done += 1
            if progress is not None:
                progress(done, total)
    absolute, relative = _differences(outputs["f32"], outputs["int8"])
    value = _METRIC_FUNCTIONS[metric](outputs["f32"], outputs["int8"], frames, decode)
    ratios = [a / b for a, b in zip(times["f32"], times["int8"]) if b > 0]
    return Comparison(
        f32_ms=statistics.median(times["f32"]),
        int8_ms=statistics.median(times["int8"]),
        speedup=statistics.median(ratios) if ratios else float("inf"),
        value=value,
        max_abs_diff=absolute,
        max_rel_diff=relative,
        pairs=len(times["f32"]),
    )


Outputs = list[dict[str, np.ndarray]]


def _differences(reference: Outputs, other: Outputs) -> tuple[float, float]:
    """Max ``|f32 - int8|`` and that over the largest ``|f32|`` of the same output (relative
    to the output's range: an elementwise ratio explodes on values near zero)."""
    absolute = relative = 0.0
    for ref, got in zip(reference, other):
        for name, a in ref.items():
            a64, b64 = a.astype(np.float64), got[name].astype(np.float64)
            diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
            peak = float(np.max(np.abs(a64))) if a.size else 0.0
            absolute = max(absolute, diff)
            relative = max(relative, diff / peak if peak > 0 else (0.0 if diff == 0 else np.inf))
    return absolute, relative


def _cosine(reference: Outputs, other: Outputs, frames: Any, decode: Any) -> float:
    worst = 1.0
    for ref, got in zip(reference, other):
        for name, a in ref.items():
            x, y = a.astype(np.float64).ravel(), got[name].astype(np.float64).ravel()
            norms = float(np.linalg.norm(x) * np.linalg.norm(y))
            if norms == 0:
                cosine = 1.0 if not (x.any() or y.any()) else 0.0
            else:
                cosine = float(np.dot(x, y) / norms)
            worst = min(worst, cosine)
    return worst


def _top1(reference: Outputs, other: Outputs, frames: Any, decode: Any) -> float:
    agree = total = 0
    for ref, got in zip(reference, other):
        name = next(iter(ref))
        a, b = ref[name], got[name]
        if a.ndim == 0:
            raise InvalidInputError(
                f"metric 'top1' needs class scores, output '{name}' is a scalar; use 'cosine'"
            )
        a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        agree += int(np.sum(np.argmax(a2, axis=-1) == np.argmax(b2, axis=-1)))
        total += len(a2)
    return agree / total if total else 1.0


def _iou(reference: Outputs, other: Outputs, frames: Sequence[np.ndarray], decode: Any) -> float:
    scores = []
    for ref, got, frame in zip(reference, other, frames):
        first, second = decode(ref, frame), decode(got, frame)
        scores.append(matched_iou(first, second))
    return float(np.mean(scores)) if scores else 1.0


def matched_iou(first: Detections, second: Detections) -> float:
    """Greedy one-to-one matching of same-class boxes by IoU: the sum of matched IoUs over
    ``max(len(first), len(second))``; 1 when both are empty."""
    if len(first) == 0 and len(second) == 0:
        return 1.0
    if len(first) == 0 or len(second) == 0:
        return 0.0
    overlaps = iou(first.boxes, second.boxes)
    overlaps[first.class_ids[:, None] != second.class_ids[None, :]] = 0.0
    total = 0.0
    while overlaps.size and overlaps.max() > 0:
        row, column = np.unravel_index(int(np.argmax(overlaps)), overlaps.shape)
        total += float(overlaps[row, column])
        overlaps[row, :] = 0.0
        overlaps[:, column] = 0.0
    return total / max(len(first), len(second))


_METRIC_FUNCTIONS = {"cosine": _cosine, "top1": _top1, "iou": _iou}
