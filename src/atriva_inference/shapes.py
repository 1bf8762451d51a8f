"""Shapes: the shape cache (every input signature prepared once, a bounded LRU) and the
one parser of shapes users give."""

from __future__ import annotations

import functools
import math
import operator
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from .errors import InvalidInputError

__all__ = ["ShapeCache", "ShapeCacheInfo", "check_fits_in_memory", "parse_shape"]

Value = TypeVar("Value")


class ShapeCacheInfo(NamedTuple):
    """Like ``functools.lru_cache``'s: a miss is the first run at a shape (or signature)."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class ShapeCache(Generic[Value]):
    """A thread-safe LRU of prepared executables keyed by input signature."""

    def __init__(self, maxsize: int) -> None:
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Value | None:
        """The entry for ``key`` (counted as a hit), or ``None``."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return value

    def put(self, key: Hashable, value: Value) -> list[tuple[Hashable, Value]]:
        """Remember a newly prepared entry (counted as a miss); evict the least recent and
        return what was evicted (the caller lets it go: no callback, no reference cycle)."""
        evicted = []
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                evicted.append(self._entries.popitem(last=False))
        return evicted

    def values(self) -> list[Value]:
        with self._lock:
            return list(self._entries.values())

    def info(self) -> ShapeCacheInfo:
        with self._lock:
            return ShapeCacheInfo(self.hits, self.misses, self._maxsize, len(self._entries))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def parse_shape(shape: Any, what: str) -> tuple[int, ...]:
    """A shape from a user: a sequence of non-negative integers (``what`` names it in errors)."""
    if isinstance(shape, np.ndarray) and shape.ndim == 1:
        shape = shape.tolist()
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise InvalidInputError(
            f"{what}: expected a sequence of integers such as (1, 3, 224, 224), got {shape!r}"
        )
    try:  # operator.index refuses 1.5 and "2" instead of truncating or parsing them
        target = tuple(operator.index(dim) for dim in shape)
    except TypeError as exc:
        raise InvalidInputError(
            f"{what}: expected a sequence of integers such as (1, 3, 224, 224), got {shape!r}"
        ) from exc
    if any(dim < 0 for dim in target):
        raise InvalidInputError(f"{what}: dimensions must be >= 0, got {target}")
    return target


@functools.cache
def _physical_memory() -> int:
    """Bytes of memory this machine has (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_fits_in_memory(shape: Sequence[int], dtype: np.dtype, what: str) -> None:
    """Refuse, before allocating, an array of ``shape`` that could never fit in memory: numpy
    would raise a bare MemoryError, or the allocation succeed lazily and the process be killed."""
    needed = math.prod(shape) * np.dtype(dtype).itemsize
    limit = _physical_memory()
    if limit and needed > limit:
        raise InvalidInputError(
            f"{what}: {np.dtype(dtype).name}{list(shape)} needs {needed / 2**30:,.1f} GiB "
            f"as one array, more than this machine's memory ({limit / 2**30:,.1f} GiB); "
            f"expected a shape that fits"
        )
