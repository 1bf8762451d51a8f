"""Benchmarking: throughput and latency of a loaded model, and side-by-side comparisons.

The measuring loops are lean (``time.perf_counter_ns``, latencies kept in a preallocated
``array('q')`` growing in place) so that what they report is the runtime, not the harness.
Used by ``atriva-infer bench``; every function here also works from Python::

    result = measure(model, inputs, "async", iterations=200, requests=4)
    print(result.throughput_fps, result.latency_ms()["p99"])
"""

from __future__ import annotations

import contextlib
import math
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .dtypes import kind_of
from .errors import InferenceRuntimeError, InvalidInputError, ModelLoadError
from .model import Model
from .runtime import InferenceRuntime
from .shapes import parse_shape
from .tensor import TensorInfo, format_signature

__all__ = [
    "DEFAULT_REQUESTS",
    "DEFAULT_SECONDS",
    "DEFAULT_WARMUP",
    "MODES",
    "BenchResult",
    "CompareRow",
    "Config",
    "compare",
    "compare_backends",
    "compare_precisions",
    "measure",
    "output_difference",
    "parse_shapes",
]

#: ``sync``: ``model.run``; ``stream``: one ``model.create_stream()``; ``async``: a round-robin
#: of ``requests`` async requests kept busy.
MODES = ("sync", "stream", "async")
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 5
DEFAULT_REQUESTS: int | None = None  # the backend's optimal number of requests in flight

#: Seconds between two calls of the progress callback.
PROGRESS_INTERVAL_S = 0.1

#: ``progress(iterations_done, seconds_elapsed)``, called at most every PROGRESS_INTERVAL_S.
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


# -- shapes --------------------------------------------------------------------------------
def parse_shapes(specs: Sequence[str], infos: Sequence[TensorInfo]) -> list[TensorInfo]:
    """Apply ``name=AxBxC`` (or a bare ``AxBxC`` for a one-input model) to ``infos``.

    Returns the infos with the given concrete shapes; a shape whose rank or static
    dimensions do not fit the model raises :class:`InvalidInputError`.
    """
    by_name = {info.name: info for info in infos}
    listing = ", ".join(
        f"'{info.name}' {format_signature(info.dtype, info.shape)}" for info in infos
    )
    chosen: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, text = spec.rpartition("=")
        if not sep:
            if len(infos) != 1:
                raise InvalidInputError(
                    f"--shape {spec}: the model has {len(infos)} inputs ({listing}); use NAME=AxBxC"
                )
            name = infos[0].name
        elif name not in by_name:
            raise InvalidInputError(
                f"--shape {spec}: the model has no input '{name}'; its inputs: {listing}"
            )
        if name in chosen:
            raise InvalidInputError(f"--shape {spec}: input '{name}' is given more than once")
        shape = _parse_dims(spec, text)
        info = by_name[name]
        if info.shape is not None:
            fits = len(shape) == len(info.shape) and all(
                dim is None or dim == got for dim, got in zip(info.shape, shape)
            )
            if not fits:
                raise InvalidInputError(
                    f"--shape {spec}: input '{name}' takes "
                    f"{format_signature(info.dtype, info.shape)}, which shape "
                    f"{'x'.join(map(str, shape))} does not fit"
                )
        chosen[name] = shape
    return [
        replace(info, shape=chosen[info.name]) if info.name in chosen else info for info in infos
    ]


def _parse_dims(spec: str, text: str) -> tuple[int, ...]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError as exc:
        raise InvalidInputError(
            f"--shape {spec}: expected dimensions like 1x3x480x640, got {text!r}"
        ) from exc
    return parse_shape(dims, f"--shape {spec}")  # the runtime's own shape checks


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
    limit = iterations if iterations is not None else _NEVER
    budget_ns = int(seconds * 1e9) if seconds is not None else _NEVER

    latencies = array("q", bytes(8 * min(limit, 1 << 16)))  # preallocated, then reused
    if mode == "async":
        queue = model.create_async_queue(depth=requests)
        requests = queue.depth
        _loop_queue(queue, inputs, warmup, _NEVER, latencies, None)
    else:
        requests = 1
        call = model.run if mode == "sync" else model.create_stream().run
        _loop(call, inputs, warmup, _NEVER, latencies, None)
    model.reset_profiling()

    started = time.perf_counter_ns()
    deadline = started + budget_ns if budget_ns != _NEVER else _NEVER
    if mode == "async":
        done = _loop_queue(queue, inputs, limit, deadline, latencies, progress, started)
    else:
        done = _loop(call, inputs, limit, deadline, latencies, progress, started)
    wall_ns = time.perf_counter_ns() - started
    if progress is not None:
        progress(done, wall_ns / 1e9)
    return BenchResult(
        mode=mode,
        iterations=done,
        seconds=wall_ns / 1e9,
        latencies_ns=np.frombuffer(latencies, dtype=np.int64, count=done).copy(),
        requests=requests,
        warmup=warmup,
    )


def _store(latencies: array, index: int, value: int) -> None:
    if index < len(latencies):
        latencies[index] = value
    else:
        latencies.append(value)


def _loop(
    call: Callable[[Any], Any],
    inputs: Mapping[str, Any],
    limit: int,
    deadline: int,
    latencies: array,
    progress: ProgressFn | None,
    started: int = 0,
) -> int:
    """``call(inputs)`` until ``limit`` iterations or ``deadline``; returns the count."""
    clock = time.perf_counter_ns
    size = len(latencies)
    interval = int(PROGRESS_INTERVAL_S * 1e9)
    next_tick = clock() + interval if progress is not None else _NEVER
    done = 0
    while done < limit:
        begin = clock()
        call(inputs)
        end = clock()
        if done < size:  # _store inlined: this loop is what is being timed
            latencies[done] = end - begin
        else:
            latencies.append(end - begin)
        done += 1
        if end >= deadline:
            break
        if end >= next_tick:
            progress(done, (end - started) / 1e9)  # type: ignore[misc]
            next_tick = end + interval
    return done


def _loop_queue(
    queue: Any,
    inputs: Mapping[str, Any],
    limit: int,
    deadline: int,
    latencies: array,
    progress: ProgressFn | None,
    started: int = 0,
) -> int:
    """Feed the model's async queue (its THROUGHPUT executable, ``depth`` frames in flight)
    until ``limit`` frames or ``deadline``; a frame's latency is submit -> its callback.
    Frames in flight at the end are waited for and counted."""
    clock = time.perf_counter_ns
    starts: list[int] = []
    ends: list[int] = []
    interval = int(PROGRESS_INTERVAL_S * 1e9)
    next_tick = clock() + interval if progress is not None else _NEVER
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
    for index, (begun, ended) in enumerate(zip(starts, ends)):
        _store(latencies, index, ended - begun)
    return len(starts)


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

    @property
    def ok(self) -> bool:
        return self.result is not None

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
    requests: int = DEFAULT_REQUESTS,
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
            row.error = _one_line(exc)
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
                row.error = _one_line(exc)
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
                row.error = _one_line(exc)
    _relate(rows)
    return rows


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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


def compare_backends(
    model_path: str,
    backends: Sequence[str],
    inputs: InputsArg,
    *,
    precision: str | None = None,
    **options: Any,
) -> list[CompareRow]:
    """:func:`compare` of the same model on each backend (the first is the reference)."""
    return compare(model_path, [Config(name, precision) for name in backends], inputs, **options)


def compare_precisions(
    model_path: str,
    backend: str,
    precisions: Sequence[str | None],
    inputs: InputsArg,
    **options: Any,
) -> list[CompareRow]:
    """:func:`compare` of precisions on one backend (the first is the reference)."""
    return compare(model_path, [Config(backend, p) for p in precisions], inputs, **options)
