"""The accounting of one camera: counts, drops by cause, latency and delivery rate.

The counts change under the pipeline's one lock and a snapshot is taken under it, so every
:class:`CameraStats` satisfies ``captured == delivered + sum(dropped.values()) + in_flight``.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import InferenceRuntimeError

__all__ = ["DROP_CAUSES", "STATES", "CameraStats", "Counters"]

#: A camera's states: ``starting`` (opening), ``running`` (frames arrive), ``reconnecting``
#: (lost, waiting to open again), ``ended`` (the source finished, or the pipeline stopped),
#: ``failed`` (cannot be read; ``error`` says why).
STATES = ("starting", "running", "reconnecting", "ended", "failed")

#: Why frames are dropped: the buffer policy, the ``fps`` limit, ``staleness_ms``, a failed
#: inference/preprocess/postprocess, or ``stop()`` while the frame was in the pipeline.
DROP_CAUSES = ("buffer_full", "fps", "stale", "error", "stopped")

#: Deliveries the rate is measured over (seconds) and latencies the percentiles are of.
_RATE_WINDOW_S = 2.0
_LATENCY_WINDOW = 1000


@dataclass(frozen=True)
class CameraStats:
    """A snapshot of one camera (``Pipeline.stats()``).

    ``captured``: frames that entered the pipeline (decoded, or given from Python);
    ``inferred``: frames the model ran on; ``delivered``: results handed to the consumer;
    ``dropped``: frames dropped on purpose, by cause (:data:`DROP_CAUSES`);
    ``in_flight``: frames buffered, converting, in the model or waiting for the consumer;
    ``reconnects``: times the source was opened again after it was lost; ``fps``: results
    delivered per second over the last two seconds; ``latency_p50_ms``/``latency_p99_ms``:
    capture-to-delivery over the last 1000 results (``None`` before the first);
    ``error``: the last error (why the camera failed, or the last frame that failed).
    """

    captured: int
    inferred: int
    delivered: int
    dropped: dict[str, int]
    in_flight: int
    reconnects: int
    state: str
    fps: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    error: InferenceRuntimeError | None = None


@dataclass
class Counters:
    """The mutable counts behind :class:`CameraStats` (guarded by the pipeline's lock)."""

    captured: int = 0
    inferred: int = 0
    delivered: int = 0
    reconnects: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    deliveries: deque[float] = field(default_factory=deque)
    started: float = field(default_factory=time.monotonic)

    def deliver(self, latency_ms: float, now: float) -> None:
        self.delivered += 1
        self.latencies.append(latency_ms)
        self.deliveries.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        deliveries = self.deliveries
        while deliveries and deliveries[0] < now - _RATE_WINDOW_S:
            deliveries.popleft()

    def snapshot(
        self, in_flight: int, state: str, error: InferenceRuntimeError | None
    ) -> CameraStats:
        now = time.monotonic()
        self._trim(now)
        span = min(_RATE_WINDOW_S, now - self.started)
        fps = len(self.deliveries) / span if span > 0 else 0.0
        p50 = p99 = None
        if self.latencies:
            p50, p99 = (
                float(v) for v in np.percentile(np.fromiter(self.latencies, float), [50, 99])
            )
        return CameraStats(
            captured=self.captured,
            inferred=self.inferred,
            delivered=self.delivered,
            dropped={cause: count for cause, count in self.dropped.items() if count},
            in_flight=in_flight,
            reconnects=self.reconnects,
            state=state,
            fps=fps,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            error=error,
        )
