"""Benchmarking: throughput and latency of a loaded model, and side-by-side comparisons.

The timing loop is :meth:`atriva_inference.profiling.CallTimes.measure` (lean, so that what
it reports is the runtime, not the harness); the async mode feeds the model's async queue.
Used by ``atriva-infer bench``; every function here also works from Python::

    result = measure(model, inputs, "async", iterations=200, requests=4)
    print(result.throughput_fps, result.latency_ms()["p99"])
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from ..errors import InferenceRuntimeError, InvalidInputError, ModelLoadError
from ..execution import AsyncQueue
from ..model import Model
from ..profiling import CallTimes, Profile
from ..quantization.compare import (
    cosine_similarity,
    max_differences,
    metric_summary,
    output_difference,
    top1_agreement,
)
from ..runtime import InferenceRuntime
from ..tensor import TensorInfo
from .text import one_line

__all__ = [
    "DEFAULT_REQUESTS",
    "DEFAULT_ROUNDS",
    "DEFAULT_SECONDS",
    "DEFAULT_WARMUP",
    "METRICS",
    "MODES",
    "AgainstRow",
    "BenchResult",
    "CompareRow",
    "Config",
    "ProgressFn",
    "against",
    "compare",
    "cosine_similarity",
    "feed_list",
    "max_differences",
    "measure",
    "merge_profiles",
    "output_difference",
    "quantization_text",
    "run_outputs",
    "top1_agreement",
]

#: ``sync``: ``model.run``; ``stream``: one ``model.create_stream()``; ``async``: the model's
#: async queue with ``requests`` frames in flight.
MODES = ("sync", "stream", "async")
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 5
DEFAULT_REQUESTS: int | None = None  # the backend's optimal number of requests in flight
#: Interleaved rounds of :func:`against`: each model runs a block per round, in turn.
DEFAULT_ROUNDS = 10
#: Summaries :func:`against` computes on the outputs besides the max abs / rel difference
#: (:func:`atriva_inference.quantization.compare.metric_summary`, as ``quantize`` reports them).
METRICS = ("top1", "cosine")

#: ``progress(iterations_done, seconds_elapsed)``, called every
#: ``CallTimes.PROGRESS_INTERVAL_S`` and once at the end.
ProgressFn = Callable[[int, float], None]

#: One input dict, or several that the measurement cycles through (frame after frame).
Feeds = Mapping[str, Any] | Sequence[Mapping[str, Any]]

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
    #: ``model.get_profiling()`` taken before the stream or queue closed: a closed request
    #: keeps its counts in the profile but not its timeline (the trace's runs).
    profile: Profile | None = None

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
    inputs: Feeds,
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
    ``inputs`` is one input dict, or a sequence of them that the iterations cycle through.
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

    feeds = feed_list(inputs)
    if mode == "async":
        with model.create_async_queue(depth=requests) as queue:
            requests = queue.depth
            _feed_queue(queue, feeds, iterations=warmup)
            model.reset_profiling()
            times = _feed_queue(
                queue, feeds, iterations=iterations, seconds=seconds, progress=progress
            )
            profile = model.get_profiling()
    else:
        requests = 1
        with contextlib.ExitStack() as closing:
            stream = None if mode == "sync" else closing.enter_context(model.create_stream())
            run = model.run if stream is None else stream.run
            if len(feeds) == 1:
                call: Callable[[], Any] = partial(run, feeds[0])
            else:  # one next() more per call: ~0.1 us, nothing beside a model run
                call = partial(lambda nxt: run(nxt()), itertools.cycle(feeds).__next__)
            CallTimes.measure(call, iterations=warmup)
            model.reset_profiling()
            times = CallTimes.measure(
                call, iterations=iterations, seconds=seconds, progress=progress
            )
            profile = model.get_profiling()
    return BenchResult(
        mode=mode,
        iterations=len(times.latencies_ns),
        seconds=times.wall_ns / 1e9,
        latencies_ns=np.asarray(times.latencies_ns, dtype=np.int64),
        requests=requests,
        warmup=warmup,
        profile=profile,
    )


def feed_list(inputs: Feeds) -> list[Mapping[str, Any]]:
    """``inputs`` as a non-empty list of input dicts (a single dict is a list of one)."""
    feeds = [inputs] if isinstance(inputs, Mapping) else list(inputs)
    if not feeds:
        raise InvalidInputError("inputs: expected an input dict or a non-empty list, got none")
    return feeds


def _feed_queue(
    queue: AsyncQueue,
    feeds: Sequence[Mapping[str, Any]],
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

            queue.submit(
                feeds[index % len(feeds)], callback=finished
            )  # blocks while depth frames are in flight
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
    quantization: str | None = None  # str(model.quantization); None: a float model
    result: BenchResult | None = None
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)  # per feed
    profile: Any = None
    error: str | None = None
    skipped: bool = False
    reference: bool = False
    speed_ratio: float | None = None
    differences: dict[str, tuple[float, float]] = field(default_factory=dict)
    difference_notes: list[str] = field(default_factory=list)

    def max_difference(self) -> tuple[float, float] | None:
        """The largest ``(abs, rel)`` over every output, or ``None`` when none was compared."""
        return _largest(self.differences)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "backend": self.config.backend,
            "requested_precision": self.config.precision,
            "device": self.device or None,
            "precision": self.precision or None,
            "quantization": self.quantization,
            "reference": self.reference,
            "skipped": self.skipped,
            "error": self.error,
        }
        if self.result is not None:
            data.update(self.result.to_dict())
            data["speed_ratio"] = self.speed_ratio
            data.update(_differences_json(self.differences, self.difference_notes))
            if self.profile is not None:
                data["profile"] = self.profile.to_dict()
        return data


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _largest(differences: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    if not differences:
        return None
    values = list(differences.values())
    return max(v[0] for v in values), max(v[1] for v in values)


def _differences_json(
    differences: Mapping[str, tuple[float, float]], notes: Sequence[str]
) -> dict[str, Any]:
    """``outputs`` (and ``output_notes`` when there are any) of a row's JSON."""
    data: dict[str, Any] = {
        "outputs": {
            name: {"max_abs": _json_float(pair[0]), "max_rel": _json_float(pair[1])}
            for name, pair in differences.items()
        }
    }
    if notes:
        data["output_notes"] = list(notes)
    return data


InputsArg = Feeds | Callable[[Sequence[TensorInfo]], Feeds]


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
    load_options: Mapping[str, Any] | None = None,
) -> list[CompareRow]:
    """Load and measure ``model_path`` under each config, one after another, on the same inputs.

    ``inputs`` is a dict (or a list of them, cycled through), or a function called once
    with the first loaded model's inputs that returns one. The first measured row is the
    reference: every other gets its throughput ratio to it and the max abs / rel difference
    of each output (the largest over the feeds). A load that
    fails on the file (:class:`ModelLoadError`) marks the row ``skipped``; any other
    runtime error is kept in the row's ``error`` and the comparison goes on.
    ``load_options``: more ``load_model`` keywords (``layout``, ``mean``, ``scale`` ...).
    """
    rows: list[CompareRow] = []
    shared: list[Mapping[str, Any]] | None = None if callable(inputs) else feed_list(inputs)
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
                    **(load_options or {}),
                )
            except InferenceRuntimeError as exc:
                row.skipped = isinstance(exc, ModelLoadError)
                row.error = one_line(exc)
                continue
            row.device, row.precision = model.device, model.precision
            row.quantization = quantization_text(model, none="") or None
            if shared is None:  # errors here (a bad --shape) are the caller's: not caught
                shared = feed_list(inputs(model.inputs))  # type: ignore[operator]
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
                row.profile = row.result.profile
                row.outputs = run_outputs(model, shared)
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
        row.differences, row.difference_notes = max_differences(row.outputs, first.outputs)


# -- outputs on the same feeds ---------------------------------------------------------------
def run_outputs(model: Model, feeds: Sequence[Mapping[str, Any]]) -> list[dict[str, np.ndarray]]:
    """``model``'s outputs (numpy) for each feed, in order (not timed)."""
    return [{name: t.to_numpy() for name, t in model.run(feed).items()} for feed in feeds]


def quantization_text(model: Any, none: str = "none (float model)") -> str:
    """What ``model.quantization`` says (how much runs in INT8), or ``none`` for a float
    model (or a runtime without the attribute)."""
    quantization = getattr(model, "quantization", None)
    return none if quantization is None else str(quantization)


# -- one model against another ---------------------------------------------------------------
@dataclass
class AgainstRow:
    """One model of :func:`against`: what it ran as, its merged timing, and how far its
    outputs are from the first model's on the same feeds."""

    path: str
    precision: str
    quantization: str | None
    result: BenchResult
    round_fps: list[float] = field(default_factory=list)
    reference: bool = False
    speed_ratio: float | None = None
    differences: dict[str, tuple[float, float]] = field(default_factory=dict)
    difference_notes: list[str] = field(default_factory=list)
    metric: dict[str, Any] = field(default_factory=dict)
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)

    def max_difference(self) -> tuple[float, float] | None:
        """The largest ``(abs, rel)`` over every output, or ``None`` when none was compared."""
        return _largest(self.differences)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.path,
            "precision": self.precision,
            "quantization": self.quantization,
            "reference": self.reference,
            **self.result.to_dict(),
            "rounds_fps": list(self.round_fps),
            "speed_ratio": self.speed_ratio,
        }
        if not self.reference:
            data.update(_differences_json(self.differences, self.difference_notes))
            if self.metric:
                data["metric"] = {
                    key: _json_float(value) if isinstance(value, float) else value
                    for key, value in self.metric.items()
                }
        return data


def _merge(results: Sequence[BenchResult]) -> BenchResult:
    """One result of several rounds: their latencies, wall times and profiles added up."""
    return BenchResult(
        mode=results[0].mode,
        iterations=sum(r.iterations for r in results),
        seconds=sum(r.seconds for r in results),
        latencies_ns=np.concatenate([r.latencies_ns for r in results]),
        requests=results[-1].requests,
        warmup=results[0].warmup,
        profile=merge_profiles([r.profile for r in results if r.profile is not None]),
    )


def merge_profiles(profiles: Sequence[Profile]) -> Profile | None:
    """One profile of several measured rounds (each :func:`measure` resets the model's
    profiling first): runs, times and each layer's time and count added up, the runs'
    timelines joined; shapes, compile time and quantization from the last."""
    if not profiles:
        return None
    layers: dict[tuple[str, str], Any] = {}
    for profile in profiles:
        for layer in profile.layers:
            key = (layer.name, layer.type)
            if key in layers:
                total = layers[key]
                total.time_ms += layer.time_ms
                total.count += layer.count
            else:
                layers[key] = replace(layer)
    return replace(
        profiles[-1],
        runs=sum(p.runs for p in profiles),
        wall_time_ms=sum(p.wall_time_ms for p in profiles),
        device_time_ms=sum(p.device_time_ms for p in profiles),
        layers=list(layers.values()),
        timeline=[event for p in profiles for event in p.timeline],
    )


def _offset(progress: ProgressFn | None, done: int, elapsed: float) -> ProgressFn | None:
    """``progress`` of a round, continuing from what the earlier rounds did."""
    if progress is None:
        return None
    return lambda count, seconds: progress(done + count, elapsed + seconds)


def against(
    models: Sequence[Model],
    inputs: Feeds,
    mode: str = "sync",
    *,
    seconds: float | None = None,
    iterations: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    requests: int | None = DEFAULT_REQUESTS,
    rounds: int = DEFAULT_ROUNDS,
    metric: str | None = None,
    progress: Callable[[int], ProgressFn | None] | None = None,
) -> list[AgainstRow]:
    """Measure loaded ``models`` side by side on the same feeds, interleaved, and compare
    each one's outputs with the first's.

    Each model gets ``seconds`` (or ``iterations``) in all, split into ``rounds`` blocks;
    every round runs one block of every model, the starting model rotating, so drift of the
    machine (turbo, a noisy neighbour) hits them alike. ``speed_ratio`` is the median over
    rounds of the per-round throughput ratio to the first model. Then every feed runs once
    more through each model (not timed): the max abs / rel difference of each output (the
    largest over the feeds) and, with ``metric`` (one of :data:`METRICS`), its summary.
    ``progress(index)`` gives the progress callback of ``models[index]``.
    """
    if metric is not None and metric not in METRICS:
        raise InvalidInputError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    if not models:
        raise InvalidInputError("models: expected at least one loaded model, got none")
    if seconds is None and iterations is None:
        seconds = DEFAULT_SECONDS
    rounds = max(1, min(rounds, iterations or rounds))
    feeds = feed_list(inputs)
    blocks: list[list[BenchResult]] = [[] for _ in models]
    callbacks = [progress(index) if progress is not None else None for index in range(len(models))]
    for number in range(rounds):
        shift = number % len(models)
        for index in [*range(shift, len(models)), *range(shift)]:
            done = blocks[index]
            count = None
            if iterations is not None:  # iterations split over the rounds, the rest in the first
                count = iterations // rounds + (1 if number < iterations % rounds else 0)
            # A fresh stream or async queue per round: its first call is warm-up too.
            warm = warmup if number == 0 else (0 if mode == "sync" else 1)
            done.append(
                measure(
                    models[index],
                    feeds,
                    mode,
                    seconds=None if seconds is None else seconds / rounds,
                    iterations=count,
                    warmup=warm,
                    requests=requests,
                    progress=_offset(
                        callbacks[index],
                        sum(r.iterations for r in done),
                        sum(r.seconds for r in done),
                    ),
                )
            )
    rows = []
    for model, results in zip(models, blocks):
        rows.append(
            AgainstRow(
                path=str(model.path),
                precision=model.precision,
                quantization=quantization_text(model, none="") or None,
                result=_merge(results),
                round_fps=[r.throughput_fps for r in results],
                outputs=run_outputs(model, feeds),
            )
        )
    first = rows[0]
    first.reference = True
    for row in rows:
        ratios = [a / b for a, b in zip(row.round_fps, first.round_fps) if b > 0]
        row.speed_ratio = float(np.median(ratios)) if ratios else None
        if row is not first:
            row.differences, row.difference_notes = max_differences(row.outputs, first.outputs)
            if metric is not None:
                try:
                    row.metric = metric_summary(metric, row.outputs, first.outputs)
                except InvalidInputError as exc:
                    row.metric = {"error": one_line(exc).removeprefix(f"metric '{metric}': ")}
    return rows
