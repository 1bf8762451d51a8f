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
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TRANSFER_LAYER_TYPES", "LayerRecord", "Profile", "ShapeRecord"]

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
        execution order: backends report per-layer durations, not start times.
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
        lines = [f"Profile: backend={self.backend} device={self.device} precision={self.precision}"]
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
