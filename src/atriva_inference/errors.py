"""The exception tree of atriva-inference.

Every error the runtime raises derives from :class:`InferenceRuntimeError`::

    InferenceRuntimeError
    ├── BackendUnavailableError      backend package missing or unusable here
    ├── DeviceUnavailableError       named device absent (never a silent fallback)
    ├── ModelLoadError               missing/corrupt/truncated file, wrong format
    ├── InvalidInputError            (also ValueError) bad names, shapes, dtypes, layouts
    ├── InferenceTimeoutError        (also TimeoutError) wait(timeout=...) ran out
    ├── InferenceFailedError         the backend failed while running a valid request
    ├── RequestBusyError             start() on a request that is still running
    └── ModelClosedError             use after close()

Backend exceptions are translated at one boundary per backend and chained with
``raise ... from exc`` so the original cause is always kept.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "DeviceUnavailableError",
    "InferenceFailedError",
    "InferenceRuntimeError",
    "InferenceTimeoutError",
    "InvalidInputError",
    "ModelClosedError",
    "ModelLoadError",
    "RequestBusyError",
]


class InferenceRuntimeError(Exception):
    """Base class of every error raised by atriva-inference."""


class BackendUnavailableError(InferenceRuntimeError):
    """The requested backend is unknown, not installed, or cannot run here."""


class DeviceUnavailableError(InferenceRuntimeError):
    """The requested device (or precision on it) is not present for this backend."""


class ModelLoadError(InferenceRuntimeError):
    """The model file is missing, incomplete, corrupt or of a format the backend cannot read."""


class InvalidInputError(InferenceRuntimeError, ValueError):
    """Inputs or options do not match what the model or runtime expects."""


class InferenceTimeoutError(InferenceRuntimeError, TimeoutError):
    """An asynchronous request did not complete within the given timeout."""


class InferenceFailedError(InferenceRuntimeError):
    """The backend raised while executing a request whose inputs were valid."""


class RequestBusyError(InferenceRuntimeError):
    """An asynchronous request was started again before it was waited for."""


class ModelClosedError(InferenceRuntimeError):
    """The model or runtime was used after ``close()``."""
