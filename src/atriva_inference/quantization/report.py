"""What :func:`~atriva_inference.quantization.quantize` measured, and whether the guard passed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["QuantReport"]

_METRIC_WORDS = {
    "cosine": "worst-output cosine similarity",
    "top1": "top-1 agreement",
    "iou": "matched-box IoU",
}


@dataclass
class QuantReport:
    """An INT8 model written, and how it compares with its f32 source on held-out frames.

    ``f32_ms``/``int8_ms``: median latency of one frame, measured in one run, the two models
    interleaved on the same inputs and loaded the same way; ``speedup``: the median of the
    paired ``f32 / INT8`` time ratios (close to ``f32_ms / int8_ms``, steadier under load).
    ``metric``/``value``: the agreement on held-out frames (see :mod:`.compare`) and
    ``drop = 1 - value``. ``max_abs_diff``/``max_rel_diff``: of any output (the relative one
    over the output's largest f32 magnitude). ``quantize_s``: seconds from the call to the
    INT8 file written (frames read, f32 model loaded, calibration, save). ``quantization``:
    how much of the INT8 model
    runs INT8, as the runtime reports it (``None`` where it cannot tell). ``passed`` is False
    when the speed-up is under ``min_speedup`` (1.0: INT8 slower than f32; 0: not guarded),
    the drop exceeds ``max_drop``, or nothing runs INT8; ``reasons`` says why, one line each.
    """

    model: str
    output: str
    backend: str
    device: str
    calibration_frames: int
    held_out_frames: int
    input_shape: list[int | None]
    f32_ms: float
    int8_ms: float
    speedup: float
    metric: str
    value: float
    drop: float
    max_drop: float | None
    min_speedup: float
    max_abs_diff: float
    max_rel_diff: float
    quantization: str | None
    int8_layers: int | None
    compute_layers: int | None
    f32_precision: str
    int8_precision: str
    quantize_s: float
    passed: bool = True
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values (infinities as ``None``)."""
        return {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in asdict(self).items()
        }

    def __str__(self) -> str:
        words = _METRIC_WORDS.get(self.metric, self.metric)
        guard = f" (max {self.max_drop:g})" if self.max_drop is not None else ""
        rows = [
            ("model", f"{self.model} -> {self.output}"),
            ("backend", f"{self.backend} on {self.device}"),
            (
                "frames",
                f"{self.calibration_frames} calibration, {self.held_out_frames} held out, "
                f"input {'x'.join('?' if d is None else str(d) for d in self.input_shape)}",
            ),
            ("latency f32", f"{self.f32_ms:.2f} ms ({self.f32_precision})"),
            ("latency INT8", f"{self.int8_ms:.2f} ms ({self.int8_precision})"),
            (
                "speed-up",
                f"{self.speedup:.2f}x"
                + (f" (min {self.min_speedup:g}x)" if self.min_speedup else " (not guarded)"),
            ),
            (self.metric, f"{self.value:.4f} {words}, drop {self.drop:.4f}{guard}"),
            ("max diff", f"abs {self.max_abs_diff:.4g}, rel {self.max_rel_diff:.4g}"),
            ("runs INT8", self.quantization or "not reported"),
            ("quantized in", f"{self.quantize_s:.1f} s"),
            ("verdict", "passed" if self.passed else "FAILED"),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [f"{label:<{width}}  {text}" for label, text in rows]
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)
