"""One profile schema for every backend.

Aggregates (run count, wall time, device time, host overhead, compile time) are always
kept as cheap per-request counters. Per-layer records need ``load_model(...,
profiling=True)`` because collecting them slows every run down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LayerRecord", "Profile"]


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


@dataclass
class Profile:
    """What ``model.get_profiling()`` returns; ``print(profile)`` shows a table."""

    backend: str
    device: str
    precision: str
    runs: int = 0
    wall_time_ms: float = 0.0
    device_time_ms: float = 0.0
    transfer_ms: float = 0.0
    compile_ms: float = 0.0
    layers: list[LayerRecord] = field(default_factory=list)
    layer_detail: bool = False

    @property
    def host_overhead_ms(self) -> float:
        """Wall time not accounted for by the device (Python, validation, copies)."""
        if not self.device_time_ms:
            return 0.0
        return max(self.wall_time_ms - self.device_time_ms, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; ``layers`` heaviest first."""
        data = asdict(self)
        data["host_overhead_ms"] = self.host_overhead_ms
        data["layers"] = [asdict(layer) for layer in self._sorted_layers()]
        return data

    def _sorted_layers(self) -> list[LayerRecord]:
        return sorted(self.layers, key=lambda layer: layer.time_ms, reverse=True)

    def __str__(self) -> str:
        lines = [f"Profile: backend={self.backend} device={self.device} precision={self.precision}"]
        layers = self._sorted_layers()
        if layers:
            total = sum(layer.time_ms for layer in layers) or 1.0
            lines.append(
                f"{'layer':<40} {'type':<18} {'implementation':<24} "
                f"{'ms':>9} {'share':>7} {'runs':>6}"
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
            f"transfers       {self.transfer_ms:.3f} ms",
            f"compile         {self.compile_ms:.3f} ms",
        ]
        return "\n".join(lines)
