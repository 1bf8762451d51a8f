"""f32 against INT8 on held-out frames: paired latency, and the comparison metrics that
``quantize`` and ``atriva-infer bench --against`` both report (one implementation, so the
two give the same numbers for the same outputs).

Metrics (``value`` is the agreement, ``drop = 1 - value``):

* ``"cosine"``: the worst cosine similarity between a reference output and the other
  model's (each output flattened) over every output of every frame (a raw-output check:
  strict, model-agnostic);
* ``"top1"``: the share of samples (the first axis of the first output, over every frame)
  whose arg-max over all the other axes agrees (classifiers: scores shaped ``[N, C]`` or
  ``[N, C, 1, 1]`` alike; an arg-max over the last axis alone would compare the 1-wide
  rows of the latter and always agree);
* ``"iou"``: detections decoded from both (``decode``), each reference box matched to the
  other's box of the same class it overlaps most (greedy, one to one); a frame scores the
  sum of the matched IoUs over ``max(reference boxes, other boxes)`` (a missed or extra box
  counts 0; a frame where neither finds anything scores 1); ``value`` is the mean over
  frames.

And the differences (:func:`output_difference`): the largest ``|other - reference|`` of an
output, and that over the largest ``|reference|`` of the same output (relative to the
output's range: an elementwise ratio explodes on values near zero, and is infinite where
the reference is exactly 0, as after a ReLU).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import kind_of
from ..errors import InvalidInputError
from ..vision import Detections, decode_centerface, decode_tf_detections, iou

__all__ = [
    "DECODERS",
    "METRICS",
    "Comparison",
    "Decoder",
    "Outputs",
    "compare",
    "cosine_similarity",
    "match_outputs",
    "matched_iou",
    "max_differences",
    "metric_summary",
    "output_difference",
    "resolve_decoder",
    "top1_agreement",
]

METRICS = ("cosine", "top1", "iou")

Decoder = Callable[[Mapping[str, np.ndarray], np.ndarray], Detections]
"""``decode(outputs, frame) -> Detections``: the arrays of one frame's outputs by name, and
the uint8 HWC frame that went in (decoders scale boxes to it)."""


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


Outputs = Sequence[Mapping[str, np.ndarray]]
"""The outputs of a model on a sequence of frames: one ``{output name: array}`` per frame."""


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` measured: the median latency of each model (ms), the speed-up
    (median of the paired ``f32 / int8`` ratios), the metric's ``value``, the largest
    absolute and relative difference of any output (:func:`output_difference`), and how
    many timed pairs the latency is from."""

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
    differences, _ = max_differences(outputs["int8"], outputs["f32"])
    absolute = max((d[0] for d in differences.values()), default=0.0)
    relative = max((d[1] for d in differences.values()), default=0.0)
    value = metric_summary(metric, outputs["int8"], outputs["f32"], frames, decode)["value"]
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


# -- differences and metrics -----------------------------------------------------------------
def output_difference(a: Any, b: Any) -> tuple[float, float]:
    """``(max abs, max rel)`` difference of ``a`` from the reference ``b`` (same shape).

    ``max abs`` is the largest ``|a - b|``; ``max rel`` is that over the largest finite
    ``|b|`` (the output's range; 0 when both are all zeros, ``inf`` when only ``b`` is).
    Equal infinities and NaN against NaN count as equal, NaN against a number as ``inf``.
    Non-numeric outputs (strings) give ``(0, 0)`` when equal, else ``(inf, inf)``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.size == 0:
        return 0.0, 0.0
    kinds = kind_of(a.dtype) + kind_of(b.dtype)
    if any(kind not in "biufc" for kind in kinds):
        same = bool(np.array_equal(a, b))
        return (0.0, 0.0) if same else (math.inf, math.inf)
    wide = np.complex128 if "c" in kinds else np.float64
    x = a.astype(wide)
    y = b.astype(wide)
    with np.errstate(invalid="ignore", over="ignore"):
        equal = (x == y) | (np.isnan(x) & np.isnan(y))
        absolute = np.where(equal, 0.0, np.abs(x - y))
        absolute = np.where(np.isnan(absolute), math.inf, absolute)  # NaN against a number
        magnitude = np.abs(y)
    largest = float(absolute.max())
    finite = magnitude[np.isfinite(magnitude)]
    peak = float(finite.max()) if finite.size else 0.0
    if largest == 0.0:
        return 0.0, 0.0
    return largest, (largest / peak if peak > 0 else math.inf)


def match_outputs(
    names: Sequence[str], reference: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """``{reference output: output}``: by name; by position when no name matches but the
    counts do (a converter renamed them); notes say which way and what is missing."""
    common = [name for name in reference if name in names]
    if not common and len(names) == len(reference) and names:
        return dict(zip(reference, names)), [
            f"outputs matched by position ({', '.join(names)} vs {', '.join(reference)})"
        ]
    return {name: name for name in common}, [
        f"output '{name}' missing" for name in reference if name not in names
    ]


def max_differences(
    outputs: Outputs, reference: Outputs
) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Per reference output, the largest :func:`output_difference` over the frames
    (``outputs[i]`` against ``reference[i]``), and notes on outputs that could not be
    compared (missing, or of another shape)."""
    if not outputs or not reference:
        return {}, []
    pairs, notes = match_outputs(list(outputs[0]), list(reference[0]))
    differences: dict[str, tuple[float, float]] = {}
    for ref_name, name in pairs.items():
        try:
            found = [
                output_difference(out[name], ref[ref_name]) for out, ref in zip(outputs, reference)
            ]
        except ValueError as exc:
            notes.append(f"output '{ref_name}': {exc}")
            continue
        differences[ref_name] = (max(f[0] for f in found), max(f[1] for f in found))
    return differences, notes


def cosine_similarity(a: Any, b: Any) -> float:
    """Cosine of the angle between ``a`` and ``b`` flattened (1.0: same direction); two zero
    arrays count as 1.0, one zero array against another as 0.0."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    norms = float(np.linalg.norm(x) * np.linalg.norm(y))
    if norms == 0.0:
        return 1.0 if not (x.any() or y.any()) else 0.0
    return float(np.dot(x, y) / norms)


def top1_agreement(a: Any, b: Any) -> tuple[int, int]:
    """``(agreeing, samples)``: how many samples (first axis) of ``a`` and ``b`` have the same
    argmax over the rest of their values (a classifier's top-1 class; a 1-D ``a`` is one
    sample)."""
    x = np.asarray(a)
    y = np.asarray(b)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"expected scores per sample, got shape {tuple(x.shape)}")
    rows = x.shape[0] if x.ndim > 1 else 1
    same = x.reshape(rows, -1).argmax(axis=1) == y.reshape(rows, -1).argmax(axis=1)
    return int(same.sum()), int(same.size)


def metric_summary(
    metric: str,
    outputs: Outputs,
    reference: Outputs,
    frames: Sequence[np.ndarray] | None = None,
    decode: Decoder | None = None,
) -> dict[str, Any]:
    """``metric`` (one of :data:`METRICS`) of ``outputs`` against ``reference`` (one dict
    per frame, matched as :func:`max_differences` matches them): ``{"name", "value", ...}``
    with ``"per_output"`` (cosine: the lowest of each output), ``"output"``, ``"agree"``,
    ``"samples"`` (top1) or ``"frames"`` (iou). ``iou`` needs ``decode`` and ``frames`` (the
    uint8 HWC frame each output came from). ``InvalidInputError`` when the outputs do not
    allow the metric (nothing to compare, a scalar for top1, shapes that differ)."""
    if metric not in METRICS:
        raise InvalidInputError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    if not outputs or not reference:
        raise InvalidInputError(f"metric '{metric}': no outputs to compare")
    pairs, _ = match_outputs(list(outputs[0]), list(reference[0]))
    if not pairs:
        raise InvalidInputError(f"metric '{metric}': no output of the two models matches")
    try:
        if metric == "top1":
            ref_name = next(iter(reference[0]))
            if ref_name not in pairs:
                raise InvalidInputError(f"metric 'top1': output '{ref_name}' missing")
            counts = [
                top1_agreement(out[pairs[ref_name]], ref[ref_name])
                for out, ref in zip(outputs, reference)
            ]
            agree, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
            return {
                "name": "top1",
                "output": ref_name,
                "agree": agree,
                "samples": total,
                "value": agree / total,
            }
        if metric == "cosine":
            per_output = {
                ref_name: min(
                    cosine_similarity(out[name], ref[ref_name])
                    for out, ref in zip(outputs, reference)
                )
                for ref_name, name in pairs.items()
            }
            return {"name": "cosine", "per_output": per_output, "value": min(per_output.values())}
    except ValueError as exc:
        raise InvalidInputError(f"metric '{metric}': {exc}") from exc
    if decode is None or frames is None:
        raise InvalidInputError(
            f"metric 'iou' compares detections: pass decode= (one of {', '.join(DECODERS)}, "
            f"or a callable (outputs, frame) -> Detections) and the frames"
        )
    scores = [
        matched_iou(decode(ref, frame), decode(out, frame))
        for out, ref, frame in zip(outputs, reference, frames)
    ]
    return {"name": "iou", "frames": len(scores), "value": float(np.mean(scores))}


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
