"""NVIDIA's ``cuda.core`` and ``cuda.bindings.driver``, imported on first use, and the one
boundary where their exceptions become ours.

A machine without an NVIDIA driver or GPU is an ordinary case: the errors that mean "no
usable GPU here" become :class:`~atriva_inference.errors.DeviceUnavailableError`, every
other CUDA failure :class:`~atriva_inference.errors.InferenceFailedError`, both naming
CUDA's error and chaining the original.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from ..errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceRuntimeError,
)

__all__ = ["call", "check", "cuda_core", "driver", "error", "strided_memory_view", "translated"]

#: CUDA driver errors that mean "no usable GPU here" rather than a failure of the work asked.
NO_GPU_ERRORS = frozenset(
    {
        "CUDA_ERROR_NO_DEVICE",
        "CUDA_ERROR_INVALID_DEVICE",
        "CUDA_ERROR_DEVICE_UNAVAILABLE",
        "CUDA_ERROR_DEVICE_NOT_LICENSED",
        "CUDA_ERROR_NOT_INITIALIZED",
        "CUDA_ERROR_STUB_LIBRARY",
        "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER",
        "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
        "CUDA_ERROR_SYSTEM_NOT_READY",
    }
)


#: What to install when the caller names no extra of its own.
DEFAULT_HINT = "`pip install cuda-python`"


def _imported(name: str, hint: str | None) -> ModuleType:
    # sys.modules first: this is on every call's path and a dict lookup is all it costs.
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install failing while it loads
        raise BackendUnavailableError(
            f"the CUDA layer needs NVIDIA's cuda-python ({name}), which cannot be imported here "
            f"({type(exc).__name__}: {exc}); install it with {hint or DEFAULT_HINT}"
        ) from exc


def cuda_core(hint: str | None = None) -> ModuleType:
    """``cuda.core``; :class:`BackendUnavailableError` saying how to install it if missing.

    ``hint`` is the install command to suggest (a backend passes its extra's,
    ``backends.install_hint``); by default cuda-python itself.
    """
    return _imported("cuda.core", hint)


def driver() -> ModuleType:
    """``cuda.bindings.driver`` (installed with ``cuda.core``), for what ``cuda.core`` lacks."""
    return _imported("cuda.bindings.driver", None)


def strided_memory_view() -> type:
    """``cuda.core.utils.StridedMemoryView``: DLPack and CUDA-array-interface import."""
    cuda_core()
    return _imported("cuda.core.utils", None).StridedMemoryView


def _split(text: str) -> tuple[str, str]:
    """``"CUDA_ERROR_X: what it means"`` -> (name, meaning), as cuda.core words its errors."""
    name, _, meaning = text.partition(":")
    return name.strip(), meaning.strip()


def error(exc: BaseException, what: str) -> InferenceRuntimeError:
    """Ours for an exception raised by ``cuda.core``, ``cuda.bindings`` or the loader of the
    driver library (``cuda.pathfinder``)."""
    if isinstance(exc, InferenceRuntimeError):
        return exc
    text = str(exc).strip() or type(exc).__name__
    if type(exc).__module__.startswith("cuda.pathfinder"):  # libcuda could not be loaded
        return DeviceUnavailableError(f"{what}: no NVIDIA driver here ({text})")
    name, meaning = _split(text)
    message = f"{what}: {name} ({meaning})" if meaning else f"{what}: {text}"
    if name in NO_GPU_ERRORS:
        return DeviceUnavailableError(message)
    return InferenceFailedError(message)


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """``with translated("cannot create a stream"):`` -- CUDA's exceptions become ours."""
    try:
        yield
    except InferenceRuntimeError:
        raise
    except Exception as exc:
        raise error(exc, what) from exc


def _description(err: Any) -> str:
    with contextlib.suppress(Exception):
        status, raw = driver().cuGetErrorString(err)
        if not status and raw:
            return raw.decode(errors="replace")
    return "no description"


def check(result: tuple, what: str) -> Any:
    """Unwrap a ``cuda.bindings.driver`` result ``(CUresult, *values)``: ``None``, the one
    value, or a tuple of them; a failure raises as :func:`error` says, worded
    ``f"{what}: {name} ({description})"``."""
    err = result[0]
    if err == 0:  # CUDA_SUCCESS; the bindings' result enum compares as an int
        if len(result) == 1:
            return None
        return result[1] if len(result) == 2 else tuple(result[1:])
    name = getattr(err, "name", None) or f"CUresult {int(err)}"
    message = f"{what}: {name} ({_description(err)})"
    if name in NO_GPU_ERRORS:
        raise DeviceUnavailableError(message)
    raise InferenceFailedError(message)


def call(what: str, function: Callable[..., tuple], *args: Any) -> Any:
    """``function(*args)`` of ``cuda.bindings.driver``, its result checked and its
    exceptions (no driver library) translated."""
    with translated(what):
        result = function(*args)
    return check(result, what)
