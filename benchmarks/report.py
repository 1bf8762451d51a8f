"""What the benchmark reports besides its figures: the machine, versions, the tables."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

PACKAGES = ("atriva-inference", "numpy", "openvino", "onnxruntime", "onnx")


def machine() -> dict[str, Any]:
    """CPU model, core counts and the instruction-set flags that decide bf16/AMX paths."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    amx = sorted(flag for flag in flags if flag.startswith("amx"))
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "amx": bool(amx),
        "amx_flags": amx,
        "avx512_bf16": "avx512_bf16" in flags,
        "avx512f": "avx512f" in flags,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def rss_kib() -> int | None:
    """This process's resident set size (VmRSS) in KiB; None where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_times() -> list[int] | None:
    """The machine-wide CPU time counters of /proc/stat (user nice system idle iowait irq
    softirq steal ...), in clock ticks; None where /proc is absent."""
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    return [int(value) for value in fields[1:]]


def steal_percent(before: list[int] | None, after: list[int] | None) -> float | None:
    """How much of the CPU time between two :func:`cpu_times` the hypervisor took away."""
    if before is None or after is None or len(before) < 8 or len(after) < 8:
        return None
    # guest time (fields 9, 10) is already counted in user/nice
    total = sum(after[:8]) - sum(before[:8])
    return 100.0 * (after[7] - before[7]) / total if total > 0 else None


class LoadMeter:
    """How much CPU other processes used while we measured (they skew every figure).

    Machine-wide busy time from /proc/stat minus this process's own CPU time, as a percent
    of the machine's capacity over the wall time since :meth:`start`.
    """

    def __init__(self) -> None:
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._cpus = os.cpu_count() or 1
        self.start()

    def start(self) -> None:
        self._times = cpu_times()
        self._own = _own_cpu_s()
        self._wall = time.perf_counter()

    def foreign_percent(self) -> float | None:
        now = cpu_times()
        if now is None or self._times is None or len(now) < 8:
            return None
        busy_s = (_busy(now) - _busy(self._times)) / self._hz
        own_s = _own_cpu_s() - self._own
        capacity_s = (time.perf_counter() - self._wall) * self._cpus
        if capacity_s <= 0:
            return None
        return max(0.0, 100.0 * (busy_s - own_s) / capacity_s)


def _busy(times: list[int]) -> int:
    """Ticks spent on anything but idle and iowait (stolen time included)."""
    return sum(times[:8]) - times[3] - times[4]


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """A plain text table: columns of text left-aligned, the others right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    left = [
        all(isinstance(row[i], str) or row[i] is None for row in rows) for i in range(len(headers))
    ]
    widths = [
        max(len(headers[i]), *(len(row[i]) for row in cells)) if cells else len(headers[i])
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.ljust(widths[i]) if left[i] else value.rjust(widths[i])
            for i, value in enumerate(values)
        ]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        if magnitude >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)
