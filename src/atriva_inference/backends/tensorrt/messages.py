"""TensorRT's words: the process-wide logger that keeps each thread's errors, and the one
boundary where TensorRT's and CUDA's exceptions become ours."""

from __future__ import annotations

import ctypes
import functools
import threading
from collections import deque
from types import ModuleType
from typing import Any

from ..base import ErrorTranslator

__all__ = ["ErrorLog", "process_logger", "translate"]


def _trt_message(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


#: The one boundary where TensorRT's and CUDA's exceptions become ours (chained).
translate = ErrorTranslator(describe=_trt_message)


class ErrorLog:
    """TensorRT's error messages, kept per thread so that concurrent builds and requests
    each read their own.

    The logic of the process-wide logger (:func:`process_logger`), which borrows
    :meth:`log` and :meth:`take`; plain Python so that it is tested without TensorRT.
    ``keep_max``: the highest severity kept (TensorRT's ``ILogger.Severity``:
    0 INTERNAL_ERROR, 1 ERROR, 2 WARNING, 3 INFO, 4 VERBOSE).

    A message logged by a thread that never called :meth:`take` (a worker thread of
    TensorRT's own, if it has any) cannot be attributed: it is kept apart and handed to
    the next :meth:`take` that has nothing of its own -- best effort, better than losing
    the only explanation of a failed build.
    """

    def __init__(self, keep_max: int = 1, limit: int = 32) -> None:
        self._keep_max = int(keep_max)
        self._limit = int(limit)
        self._local = threading.local()
        self._unattributed: deque[str] = deque(maxlen=self._limit)

    def log(self, severity: Any, msg: Any) -> None:
        """TensorRT's callback, for every message at every severity (VERBOSE and INFO by
        the thousand during a build, each taking the GIL): below what is kept it returns
        before doing anything else."""
        if int(severity) > self._keep_max:
            return
        errors = getattr(self._local, "errors", None)
        (self._unattributed if errors is None else errors).append(str(msg).strip())

    def take(self) -> str:
        """This thread's errors logged since its last take, joined, then forgotten (call
        it before a TensorRT call to drop stale ones)."""
        errors = getattr(self._local, "errors", None)
        if errors is None:
            errors = self._local.errors = deque(maxlen=self._limit)
        taken = list(errors)
        errors.clear()  # only this thread appends to it
        if not taken:
            while True:  # popleft is atomic: other threads may append meanwhile
                try:
                    taken.append(self._unattributed.popleft())
                except IndexError:
                    break
        return "; ".join(taken)


@functools.cache
def _logger_class(trt: ModuleType) -> type:
    """The ILogger subclass, made once per tensorrt module (it subclasses a pybind class,
    so it cannot exist before tensorrt is imported)."""

    class ProcessLogger(trt.ILogger):  # type: ignore[misc,name-defined]
        """TensorRT's logger for this process: keeps the ERROR messages (per thread) so a
        failure (a None engine, a False from execute_async_v3) is raised with TensorRT's
        own words instead of printed."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            ErrorLog.__init__(self, keep_max=int(trt.ILogger.ERROR))  # type: ignore[arg-type]

        # ErrorLog's functions, not a second base: pybind11 classes and Python mixins.
        log = ErrorLog.log
        take = ErrorLog.take

    return ProcessLogger


_loggers_lock = threading.Lock()
_loggers: dict[int, Any] = {}


def process_logger(trt: ModuleType) -> Any:
    """The one TensorRT logger of this process, created on first use and never freed.

    TensorRT keeps a single logger pointer per process: the first ``Runtime``/``Builder``
    sets it and later ones with another logger are ignored ("the existing value will be
    used instead", NVIDIA/TensorRT#1475). One logger per backend would hide the errors of
    every backend but the first from their callers, and freeing the first while another
    lives would leave TensorRT calling a freed Python object. So every backend shares this
    one, and it is made immortal (its reference count is raised and never lowered), which
    also keeps it valid for TensorRT objects still alive at interpreter exit.
    """
    key = id(trt)
    with _loggers_lock:
        logger = _loggers.get(key)
        if logger is None:
            logger = _logger_class(trt)()
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(logger))  # never freed
            _loggers[key] = logger
        return logger
