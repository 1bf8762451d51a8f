"""CuPy and PyTorch for the GPU tests, imported so that an unusable one skips with the reason.

pytest turns warnings into errors here, and CuPy or PyTorch warn on import or first use when
they cannot use the GPU (no CUDA path, an old driver): they are imported and tried with
warnings caught.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

import pytest


def import_quietly(name: str, why: str, probe: Callable[[Any], str | None]) -> Any:
    """Import ``name`` and ``probe`` it (a problem as text, or None); skip when unusable."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            module = importlib.import_module(name)
            problem = probe(module)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        said = "; ".join(str(warning.message) for warning in caught)
    if problem:
        pytest.skip(f"needs a usable {why}: {problem}" + (f" (warned: {said})" if said else ""))
    return module


def _cupy_problem(cupy: Any) -> str | None:
    if not cupy.cuda.runtime.getDeviceCount():
        return "CuPy sees no GPU"
    int(cupy.arange(4, dtype=cupy.float32).sum().item())  # compiles a kernel
    return None


def _torch_problem(torch: Any) -> str | None:
    if not torch.cuda.is_available():
        return "a CUDA build of PyTorch (torch.cuda.is_available() is False)"
    return None


def usable_cupy() -> Any:
    return import_quietly("cupy", "CuPy", _cupy_problem)


def usable_torch() -> Any:
    return import_quietly("torch", "PyTorch with CUDA", _torch_problem)
