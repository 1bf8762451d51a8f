"""Benchmarking: throughput and latency of a loaded model, and side-by-side comparisons.

The timing loop is :meth:`atriva_inference.profiling.CallTimes.measure` (lean, so that what
it reports is the runtime, not the harness); the async mode feeds the model's async queue.
Used by ``atriva-infer bench``; every function here also works from Python::

    result = measure(model, inputs, "async", iterations=200, requests=4)
    print(result.throughput_fps, result.latency_ms()["p99"])
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..dtypes import kind_of
from ..errors import InferenceRuntimeError, InvalidInputError, ModelLoadError
from ..execution import AsyncQueue
from ..model import Model
from ..profiling import CallTimes
from ..runtime import InferenceRuntime
from ..tensor import TensorInfo
from .text import one_line

__all__ = [
    "DEFAULT_REQUESTS",
    "DEFAULT_SECONDS",
    "DEFAULT_WARMUP",
    "MODES",
    "BenchResult",
    "CompareRow",
    "Config",
    "ProgressFn",
    "compare",
    "measure",
    "output_difference",
]

#: ``sync``: ``model.run``; ``stream``: one ``model.create_stream()``; ``async``: the model's
#: async queue with ``requests`` frames in flight.
MODES = ("sync", "stream", "async")
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 5
DEFAULT_REQUESTS: int | None = None  # the backend's optimal number of requests in flight

#: ``progress(iterations_done, seconds_elapsed)``, called every
#: ``CallTimes.PROGRESS_INTERVAL_S`` and once at the end.
ProgressFn = Callable[[int, float], None]

_NEVER = 1 << 62  # a deadline / iteration limit that is never reached


# -- results -------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """What :func:`measure` returns: counts, wall time and per-iteration latencies (ns)."""

    mode: str
    iterations: int
    seconds: float
    latencies_ns: np.ndarray
    requests: int = 1
    warmup: int = 0

    @property
    def throughput_fps(self) -> float:
        """Completed iterations per wall-clock second."""
        return self.iterations / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self) -> dict[str, float]:
        """``median``, ``p90``, ``p99``, ``min``, ``max``, ``mean`` of the latencies in ms."""
        values = self.latencies_ns.astype(np.float64) / 1e6
        if values.size == 0:
            return dict.fromkeys(("median", "p90", "p99", "min", "max", "mean"), 0.0)
        p50, p90, p99 = np.percentile(values, (50, 90, 99))
        return {
            "median": float(p50),
            "p90": float(p90),
            "p99": float(p99),
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields of a run (without model, backend, device, precision)."""
        return {
            "mode": self.mode,
            "requests": self.requests,
            "warmup": self.warmup,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "throughput_fps": self.throughput_fps,
            "latency_ms": self.latency_ms(),
        }


# -- measuring -----------------------------------------------------------------------------
def measure(
    model: Model,
    inputs: Mapping[str, Any],
    mode: str = "sync",
    *,
    seconds: float | None = None,
    iterations: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    requests: int | None = DEFAULT_REQUESTS,
    progress: ProgressFn | None = None,
) -> BenchResult:
    """Warm up (``warmup`` iterations, not counted), reset the profile, then measure.

    Stops after ``iterations`` or ``seconds`` (whichever comes first when both are given;
    :data:`DEFAULT_SECONDS` when neither is). ``mode`` is one of :data:`MODES`. For
    ``async`` feeds ``model.create_async_queue(depth=requests)`` (``requests=None``: the
    backend's optimal depth) and an iteration's latency is its submit -> completion.
    """
    if mode not in MODES:
        raise InvalidInputError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if seconds is None and iterations is None:
        seconds = DEFAULT_SECONDS
    if seconds is not None and not seconds > 0:
        raise InvalidInputError(f"seconds: expected a positive number, got {seconds!r}")
    if iterations is not None and iterations < 1:
        raise InvalidInputError(f"iterations: expected a positive integer, got {iterations!r}")
    if warmup < 0:
        raise InvalidInputError(f"warmup: expected an integer >= 0, got {warmup!r}")
    if requests is not None and requests < 1:
        raise InvalidInputError(f"requests: expected a positive integer, got {requests!r}")

    if mode == "async":
        queue = model.create_async_queue(depth=requests)
        requests = queue.depth
        _feed_queue(queue, inputs, iterations=warmup)
        model.reset_profiling()
        times = _feed_queue(
            queue, inputs, iterations=iterations, seconds=seconds, progress=progress
        )
    else:
        requests = 1
        call = partial(model.run if mode == "sync" else model.create_stream().run, inputs)
        CallTimes.measure(call, iterations=warmup)
        model.reset_profiling()
        times = CallTimes.measure(call, iterations=iterations, seconds=seconds, progress=progress)
    return BenchResult(
        mode=mode,
        iterations=len(times.latencies_ns),
        seconds=times.wall_ns / 1e9,
        latencies_ns=np.asarray(times.latencies_ns, dtype=np.int64),
        requests=requests,
        warmup=warmup,
    )


def _feed_queue(
    queue: AsyncQueue,
    inputs: Mapping[str, Any],
    *,
    iterations: int | None,
    seconds: float | None = None,
    progress: ProgressFn | None = None,
) -> CallTimes:
    """Feed the model's async queue (its THROUGHPUT executable, ``depth`` frames in flight)
    until ``iterations`` frames or ``seconds``; a frame's latency is submit -> its callback.
    Frames in flight at the end are waited for and counted. The async counterpart of
    :meth:`CallTimes.measure`, with the same progress reports."""
    clock = time.perf_counter_ns
    limit = _NEVER if iterations is None else iterations
    starts: list[int] = []
    ends: list[int] = []
    interval = int(CallTimes.PROGRESS_INTERVAL_S * 1e9)
    started = clock()
    deadline = _NEVER if seconds is None else started + int(seconds * 1e9)
    next_tick = started + interval if progress is not None else _NEVER
    try:
        while len(starts) < limit:
            now = clock()
            if now >= deadline:
                break
            index = len(starts)
            starts.append(now)
            ends.append(0)

            def finished(_outputs: Any, index: int = index) -> None:
                ends[index] = clock()

            queue.submit(inputs, callback=finished)  # blocks while depth frames are in flight
            if now >= next_tick:
                progress(index, (now - started) / 1e9)  # type: ignore[misc]
                next_tick = now + interval
        queue.wait_all()
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one raised
            queue.wait_all()
        raise
    wall_ns = clock() - started
    if progress is not None:
        progress(len(starts), wall_ns / 1e9)
    return CallTimes([end - begin for begin, end in zip(starts, ends)], wall_ns)


# -- comparing -----------------------------------------------------------------------------
def output_difference(a: Any, b: Any) -> tuple[float, float]:
    """``(max abs, max rel)`` difference of ``a`` from the reference ``b`` (same shape).

    Elementwise ``|a - b|`` and ``|a - b| / |b|``; where ``b`` is 0 the relative difference
    is 0 if ``a`` is 0 too, else ``inf``. Equal infinities and NaN against NaN count as
    equal. Non-numeric outputs (strings) give ``(0, 0)`` when equal, else ``(inf, inf)``.
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
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        equal = (x == y) | (np.isnan(x) & np.isnan(y))
        absolute = np.where(equal, 0.0, np.abs(x - y))
        absolute = np.where(np.isnan(absolute), math.inf, absolute)  # NaN against a number
        scale = np.abs(y)
        relative = np.where(
            equal, 0.0, np.where(scale > 0, absolute / np.where(scale > 0, scale, 1.0), math.inf)
        )
    return float(absolute.max()), float(relative.max())


@dataclass(frozen=True)
class Config:
    """One column of a comparison: a backend and a requested precision (``None``: own)."""

    backend: str
    precision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision or 'default'}"


@dataclass
class CompareRow:
    """One configuration's outcome: measured, failed (``error``) or ``skipped``."""

    config: Config
    device: str = ""
    precision: str = ""
    result: BenchResult | None = None
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    profile: Any = None
    error: str | None = None
    skipped: bool = False
    reference: bool = False
    speed_ratio: float | None = None
    differences: dict[str, tuple[float, float]] = field(default_factory=dict)
    difference_notes: list[str] = field(default_factory=list)

    def max_difference(self) -> tuple[float, float] | None:
        """The largest ``(abs, rel)`` over every output, or ``None`` when none was compared."""
        if not self.differences:
            return None
        values = list(self.differences.values())
        return max(v[0] for v in values), max(v[1] for v in values)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "backend": self.config.backend,
            "requested_precision": self.config.precision,
            "device": self.device or None,
            "precision": self.precision or None,
            "reference": self.reference,
            "skipped": self.skipped,
            "error": self.error,
        }
        if self.result is not None:
            data.update(self.result.to_dict())
            data["speed_ratio"] = self.speed_ratio
            data["outputs"] = {
                name: {"max_abs": _json_float(pair[0]), "max_rel": _json_float(pair[1])}
                for name, pair in self.differences.items()
            }
            if self.difference_notes:
                data["output_notes"] = list(self.difference_notes)
            if self.profile is not None:
                data["profile"] = self.profile.to_dict()
        return data


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


InputsArg = Mapping[str, Any] | Callable[[Sequence[TensorInfo]], Mapping[str, Any]]


def compare(
    model_path: str,
    configs: Sequence[Config],
    inputs: InputsArg,
    *,
    device: str = "AUTO",
    mode: str = "sync",
    seconds: float | None = None,
    iterations: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    requests: int | None = DEFAULT_REQUESTS,
    profiling: bool = False,
    dynamic: bool = False,
    cache_dir: str | None = None,
    progress: Callable[[Config], ProgressFn | None] | None = None,
) -> list[CompareRow]:
    """Load and measure ``model_path`` under each config, one after another, on the same inputs.

    ``inputs`` is a dict, or a function called once with the first loaded model's inputs
    that returns one. The first measured row is the reference: every other gets its
    throughput ratio to it and the max abs / rel difference of each output. A load that
    fails on the file (:class:`ModelLoadError`) marks the row ``skipped``; any other
    runtime error is kept in the row's ``error`` and the comparison goes on.
    """
    rows: list[CompareRow] = []
    shared: Mapping[str, Any] | None = inputs if isinstance(inputs, Mapping) else None
    for config in configs:
        row = CompareRow(config)
        rows.append(row)
        try:
            runtime = InferenceRuntime(config.backend, cache_dir=cache_dir)
        except InferenceRuntimeError as exc:
            row.error = one_line(exc)
            continue
        with runtime:
            try:
                model = runtime.load_model(
                    model_path,
                    device,
                    precision=config.precision,
                    profiling=profiling,
                    dynamic=dynamic,
                )
            except InferenceRuntimeError as exc:
                row.skipped = isinstance(exc, ModelLoadError)
                row.error = one_line(exc)
                continue
            row.device, row.precision = model.device, model.precision
            if shared is None:  # errors here (a bad --shape) are the caller's: not caught
                shared = inputs(model.inputs)  # type: ignore[operator]
            try:
                row.result = measure(
                    model,
                    shared,
                    mode,
                    seconds=seconds,
                    iterations=iterations,
                    warmup=warmup,
                    requests=requests,
                    progress=progress(config) if progress is not None else None,
                )
                row.profile = model.get_profiling()
                row.outputs = {name: t.to_numpy() for name, t in model.run(shared).items()}
            except InferenceRuntimeError as exc:
                row.result = None
                row.error = one_line(exc)
    _relate(rows)
    return rows


def _relate(rows: list[CompareRow]) -> None:
    """Speed ratio and output differences of every measured row against the first one."""
    measured = [row for row in rows if row.result is not None]
    if not measured:
        return
    first = measured[0]
    first.reference = True
    assert first.result is not None
    for row in measured:
        assert row.result is not None
        base = first.result.throughput_fps
        row.speed_ratio = row.result.throughput_fps / base if base else None
        for name, expected in first.outputs.items():
            if name not in row.outputs:
                row.difference_notes.append(f"output '{name}' missing")
                continue
            try:
                row.differences[name] = output_difference(row.outputs[name], expected)
            except ValueError as exc:
                row.difference_notes.append(f"output '{name}': {exc}")
