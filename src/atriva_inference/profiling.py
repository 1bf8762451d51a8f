"""One profile schema for every backend.

Aggregates (run count, wall time, device time, host overhead, compile time) are always
kept as cheap per-request counters. Per-layer records need ``load_model(...,
profiling=True)`` because collecting them slows every run down. With layer detail,
``transfer_ms`` sums the layers that only move or convert data (reorders, converts,
host/device copies), tagged ``transfer`` in their record.
"""

from __future__ import annotations

import json
import os
import statistics
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from time import perf_counter_ns
from typing import Any

from .errors import InvalidInputError
from .precision import Quantization

__all__ = [
    "TIMELINE_LENGTH",
    "TRANSFER_LAYER_TYPES",
    "CallTimes",
    "LayerRecord",
    "Profile",
    "ProfileTotals",
    "RequestStats",
    "ShapeRecord",
]

#: How many recent runs each request remembers for the trace timeline.
TIMELINE_LENGTH = 1024

#: Layer types that move or convert data rather than compute (OpenVINO, ONNX Runtime and
#: TensorRT names; TensorRT's engine inspector calls its copy/format layers "Reformat").
TRANSFER_LAYER_TYPES = frozenset(
    {
        "Reorder",
        "Convert",
        "MemcpyToHost",
        "MemcpyFromHost",
        "ReorderInput",
        "ReorderOutput",
        "Reformat",
    }
)


@dataclass
class LayerRecord:
    """Time spent in one layer (node) summed over the runs that were profiled."""

    name: str
    type: str
    implementation: str = ""
    device: str = ""
    time_ms: float = 0.0
    count: int = 0
    executed: bool = True
    #: Added by the runtime to convert frames in the graph (layout, dtype, mean/scale).
    preprocessing: bool = False

    @property
    def transfer(self) -> bool:
        """True for layers that only move or convert data, the runtime's own included."""
        return self.preprocessing or self.type in TRANSFER_LAYER_TYPES


@dataclass
class ShapeRecord:
    """One input signature the model was prepared for, and what its first run cost."""

    shapes: list[list[int]]
    signature: str
    compile_ms: float = 0.0  # preparing it: a specialized compile, or just validation
    first_call_ms: float = 0.0  # the whole first run at it
    specialized: bool = False  # a compile of its own (static shape) rather than a shared one


@dataclass
class RequestStats:
    """Cheap counters a request keeps; only its current user touches them (no lock)."""

    runs: int = 0
    wall_ns: int = 0
    device_ns: int = 0  # 0 when the backend has no measure of its own
    layers: dict[tuple[str, str], LayerRecord] = field(default_factory=dict)
    timeline: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=TIMELINE_LENGTH))

    def record(self, started_ns: int, ended_ns: int) -> None:
        """Count one run that took from ``started_ns`` to ``ended_ns`` (perf_counter_ns)."""
        self.runs += 1
        self.wall_ns += ended_ns - started_ns
        self.timeline.append((started_ns, ended_ns))


class ProfileTotals:
    """Sums of many requests' counters and layer records: what a profile adds up."""

    def __init__(self) -> None:
        self.runs = 0
        self.wall_ns = 0
        self.device_ns = 0
        self.layers: dict[tuple[str, str], LayerRecord] = {}
        self.timeline: list[tuple[int, int, int]] = []

    def add(self, stats: RequestStats, index: int) -> None:
        """Add one request's counters; ``index`` tags its runs in the timeline."""
        self.runs += stats.runs
        self.wall_ns += stats.wall_ns
        self.device_ns += stats.device_ns
        self.timeline.extend((start, end, index) for start, end in list(stats.timeline))
        for layer in list(stats.layers.values()):
            self.add_layer(layer)

    def merge(self, other: ProfileTotals) -> None:
        """Add totals kept for requests that are gone (their timelines are not kept)."""
        self.runs += other.runs
        self.wall_ns += other.wall_ns
        self.device_ns += other.device_ns
        for layer in other.layers.values():
            self.add_layer(layer)

    def add_layer(self, layer: LayerRecord) -> None:
        key = (layer.name, layer.type)
        total = self.layers.get(key)
        if total is None:
            self.layers[key] = replace(layer)
        else:
            total.time_ms += layer.time_ms
            total.count += layer.count


@dataclass
class Profile:
    """What ``model.get_profiling()`` returns; ``print(profile)`` shows a table."""

    backend: str
    device: str
    precision: str
    runs: int = 0
    wall_time_ms: float = 0.0
    device_time_ms: float = 0.0
    compile_ms: float = 0.0
    layers: list[LayerRecord] = field(default_factory=list)
    layer_detail: bool = False
    #: (start_ns, end_ns, request index) of recent runs, perf_counter clock; for traces.
    timeline: list[tuple[int, int, int]] = field(default_factory=list, repr=False)
    #: The input signatures in the shape cache, with their preparation and first-call times.
    shapes: list[ShapeRecord] = field(default_factory=list)
    #: How much of a quantized model runs in INT8 (``precision`` is then "INT8").
    quantization: Quantization | None = None

    @property
    def host_overhead_ms(self) -> float:
        """Wall time not accounted for by the device (Python, validation, copies)."""
        if not self.device_time_ms:
            return 0.0
        return max(self.wall_time_ms - self.device_time_ms, 0.0)

    @property
    def transfer_ms(self) -> float:
        """Time in data-movement and conversion layers (needs layer detail)."""
        return float(sum(layer.time_ms for layer in self.layers if layer.transfer))

    def sorted_layers(self) -> list[LayerRecord]:
        """Layers, heaviest first."""
        return sorted(self.layers, key=lambda layer: layer.time_ms, reverse=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; ``layers`` heaviest first."""
        data = asdict(self)
        del data["timeline"]
        data["host_overhead_ms"] = self.host_overhead_ms
        data["transfer_ms"] = self.transfer_ms
        data["layers"] = [
            {**asdict(layer), "transfer": layer.transfer} for layer in self.sorted_layers()
        ]
        return data

    def to_chrome_trace(self, path: str | os.PathLike[str]) -> None:
        """Write a Chrome/Perfetto trace (``{"traceEvents": [...]}``).

        Process 1 holds the recent runs, one track per request, on their real timeline.
        Process 2 (with layer detail) holds the layers of one mean run laid end to end in
        execution order: backends report per-layer durations, not start times. Layers with no
        measured time (inputs, constants, fused nodes) are left out of the trace.
        """
        events: list[dict[str, Any]] = [
            _metadata(1, f"{self.backend} {self.device} {self.precision}: runs"),
        ]
        origin = self.timeline[0][0] if self.timeline else 0
        for start, end, request in self.timeline:
            events.append(
                {
                    "name": "run",
                    "cat": "run",
                    "ph": "X",
                    "pid": 1,
                    "tid": request,
                    "ts": (start - origin) / 1e3,
                    "dur": (end - start) / 1e3,
                }
            )
        if self.layers:
            events.append(_metadata(2, "layers (mean per run, end to end)"))
            cursor = 0.0
            for layer in self.layers:
                mean_us = layer.time_ms * 1e3 / max(layer.count, 1)
                if mean_us <= 0:
                    # Inputs, constants and fused nodes report 0 ms: as 0-length events at the
                    # next layer's timestamp they make viewers (speedscope) nest every later
                    # layer one level deeper. They stay in ``layers`` and ``to_dict()``.
                    continue
                events.append(
                    {
                        "name": layer.name,
                        "cat": "transfer" if layer.transfer else "layer",
                        "ph": "X",
                        "pid": 2,
                        "tid": 0,
                        "ts": cursor,
                        "dur": mean_us,
                        "args": {
                            "type": layer.type,
                            "implementation": layer.implementation,
                            "count": layer.count,
                            "total_ms": layer.time_ms,
                        },
                    }
                )
                cursor += mean_us
        with open(path, "w", encoding="utf-8") as trace:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, trace)

    def __str__(self) -> str:
        header = f"Profile: backend={self.backend} device={self.device} precision={self.precision}"
        if self.quantization is not None:
            header += f" ({self.quantization})"
        lines = [header]
        layers = self.sorted_layers()
        if layers:
            total = sum(layer.time_ms for layer in layers) or 1.0
            lines.append(
                f"{'layer':<40} {'type':<18} {'implementation':<24} "
                f"{'ms':>9} {'share':>7} {'count':>6}"
            )
            for layer in layers:
                lines.append(
                    f"{layer.name[:40]:<40} {layer.type[:18]:<18} {layer.implementation[:24]:<24} "
                    f"{layer.time_ms:>9.3f} {100 * layer.time_ms / total:>6.1f}% {layer.count:>6}"
                )
        elif not self.layer_detail:
            lines.append("(layer detail off: load_model(..., profiling=True) to record layers)")
        mean = self.wall_time_ms / self.runs if self.runs else 0.0
        lines += [
            f"runs            {self.runs}",
            f"wall time       {self.wall_time_ms:.3f} ms (mean {mean:.3f} ms/run)",
            f"device time     {self.device_time_ms:.3f} ms",
            f"host overhead   {self.host_overhead_ms:.3f} ms",
            f"transfers       {self.transfer_ms:.3f} ms"
            + ("" if self.layer_detail else " (needs layer detail)"),
            f"compile         {self.compile_ms:.3f} ms",
        ]
        for record in self.shapes:
            lines.append(
                f"  signature {record.signature}: prepared in {record.compile_ms:.1f} ms"
                f"{' (own compile)' if record.specialized else ''}, "
                f"first run {record.first_call_ms:.1f} ms"
            )
        return "\n".join(lines)


def _metadata(pid: int, name: str) -> dict[str, Any]:
    return {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}}


@dataclass
class CallTimes:
    """The wall time of each call of a series. :meth:`measure` is the one timing loop of
    ``atriva-infer bench`` and ``run`` and of the examples::

        CallTimes.measure(lambda: model.run(inputs), iterations=20).median_ms
    """

    #: Each call's wall time in nanoseconds (``perf_counter_ns``), in call order.
    latencies_ns: list[int]
    #: From the start of the first call to the end of the last, the loop's own time included.
    wall_ns: int

    #: Seconds between two calls of :meth:`measure`'s ``progress`` callback.
    PROGRESS_INTERVAL_S = 0.1

    @property
    def median_ms(self) -> float:
        """The median call in milliseconds (0 when there was no call)."""
        return statistics.median(self.latencies_ns) / 1e6 if self.latencies_ns else 0.0

    @classmethod
    def measure(
        cls,
        call: Callable[[], object],
        *,
        iterations: int | None = None,
        seconds: float | None = None,
        progress: Callable[[int, float], None] | None = None,
    ) -> CallTimes:
        """Call ``call()`` (a function of no arguments) ``iterations`` times or until
        ``seconds`` have passed, whichever comes first; at least one must be given.

        ``progress(calls_done, seconds_elapsed)``, when given, is called every
        :attr:`PROGRESS_INTERVAL_S` and once at the end. The loop is lean (a preallocated
        ``array('q')`` filled in place, no allocation per call) so that it times ``call``,
        not itself.
        """
        clock = perf_counter_ns  # a local name: one lookup less per call
        never = 1 << 62
        if iterations is None and seconds is None:
            raise InvalidInputError("CallTimes.measure: expected iterations or seconds, got none")
        limit = never if iterations is None else iterations
        latencies = array("q", bytes(8 * max(0, min(limit, 1 << 16))))
        size = len(latencies)
        interval = int(cls.PROGRESS_INTERVAL_S * 1e9)
        started = clock()
        deadline = never if seconds is None else started + int(seconds * 1e9)
        next_tick = started + interval if progress is not None else never
        done = 0
        while done < limit:
            begin = clock()
            call()
            end = clock()
            if done < size:
                latencies[done] = end - begin
            else:
                latencies.append(end - begin)
            done += 1
            if end >= deadline:
                break
            if end >= next_tick:
                progress(done, (end - started) / 1e9)
                next_tick = end + interval
        wall_ns = clock() - started
        if progress is not None:
            progress(done, wall_ns / 1e9)
        return cls(latencies[:done].tolist(), wall_ns)
