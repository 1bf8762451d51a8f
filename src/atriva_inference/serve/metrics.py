"""Prometheus metrics per model, under the names Triton users know where one fits.

Counters (exposed with prometheus' ``_total`` suffix): ``nv_inference_request_success``,
``nv_inference_request_failure`` (by ``reason``: ``REJECTED`` a bad request or a full queue,
``BACKEND`` a failed run, ``CANCELED`` the client went away), ``nv_inference_count``
(inferences: batch sizes added up), ``nv_inference_exec_count`` (model runs), and the
cumulative ``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``,
``nv_inference_compute_infer_duration_us``. Gauges: ``nv_inference_pending_request_count``
(waiting for the model) and ``atriva_inference_in_flight`` (running). Histograms, in seconds:
``atriva_inference_request_duration_seconds``, ``atriva_inference_queue_duration_seconds``,
``atriva_inference_compute_duration_seconds``.

Each repository has its own registry, so several servers in one process do not collide.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..errors import InvalidInputError
from .errors import ServerBusyError

__all__ = ["CONTENT_TYPE", "Metrics", "ModelMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_VERSION = "1"
# From 0.5 ms (a small tensor) to 10 s (a slow model behind a long queue).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The registry of one repository and its metric families."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "version")

        def counter(name: str, text: str, *extra: str) -> Counter:
            return Counter(name, text, (*labels, *extra), registry=self.registry)

        def histogram(name: str, text: str) -> Histogram:
            return Histogram(name, text, labels, buckets=_BUCKETS, registry=self.registry)

        self.success = counter("nv_inference_request_success", "Successful inference requests")
        self.failure = counter(
            "nv_inference_request_failure", "Failed inference requests", "reason"
        )
        self.count = counter("nv_inference_count", "Inferences performed (batch sizes added)")
        self.exec_count = counter("nv_inference_exec_count", "Model executions")
        self.request_us = counter(
            "nv_inference_request_duration_us", "Cumulative request duration (us)"
        )
        self.queue_us = counter(
            "nv_inference_queue_duration_us", "Cumulative time waiting for the model (us)"
        )
        self.compute_us = counter(
            "nv_inference_compute_infer_duration_us", "Cumulative model run time (us)"
        )
        self.pending = Gauge(
            "nv_inference_pending_request_count",
            "Requests waiting for the model",
            labels,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "atriva_inference_in_flight",
            "Requests running on the model",
            labels,
            registry=self.registry,
        )
        self.request_seconds = histogram(
            "atriva_inference_request_duration_seconds", "Request duration (s)"
        )
        self.queue_seconds = histogram(
            "atriva_inference_queue_duration_seconds", "Time waiting for the model (s)"
        )
        self.compute_seconds = histogram(
            "atriva_inference_compute_duration_seconds", "Model run time (s)"
        )

    def model(self, name: str) -> ModelMetrics:
        return ModelMetrics(self, name)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class ModelMetrics:
    """One model's children of each family (label lookups done once)."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        labels = (name, _VERSION)
        self._success = metrics.success.labels(*labels)
        self._failure = {
            reason: metrics.failure.labels(*labels, reason)
            for reason in ("REJECTED", "BACKEND", "CANCELED")
        }
        self._count = metrics.count.labels(*labels)
        self._exec_count = metrics.exec_count.labels(*labels)
        self._request_us = metrics.request_us.labels(*labels)
        self._queue_us = metrics.queue_us.labels(*labels)
        self._compute_us = metrics.compute_us.labels(*labels)
        self._pending = metrics.pending.labels(*labels)
        self._in_flight = metrics.in_flight.labels(*labels)
        self._request_seconds = metrics.request_seconds.labels(*labels)
        self._queue_seconds = metrics.queue_seconds.labels(*labels)
        self._compute_seconds = metrics.compute_seconds.labels(*labels)

    def waiting(self, count: int) -> None:
        self._pending.set(count)

    def running(self, count: int) -> None:
        self._in_flight.set(count)

    def succeeded(
        self, batch: int, started: float, queued: float, computed: float, ended: float
    ) -> None:
        """Times from ``time.perf_counter``: arrival, slot taken, run over, answer ready."""
        self._success.inc()
        self._count.inc(batch)
        self._exec_count.inc()
        request, queue, compute = ended - started, queued - started, computed - queued
        self._request_us.inc(request * 1e6)
        self._queue_us.inc(queue * 1e6)
        self._compute_us.inc(compute * 1e6)
        self._request_seconds.observe(request)
        self._queue_seconds.observe(queue)
        self._compute_seconds.observe(compute)

    def failed(self, error: BaseException) -> None:
        if isinstance(error, asyncio.CancelledError):
            reason = "CANCELED"
        elif isinstance(error, (InvalidInputError, ServerBusyError)):
            reason = "REJECTED"
        else:
            reason = "BACKEND"
        self._failure[reason].inc()
