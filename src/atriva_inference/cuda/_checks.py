"""Argument checks of the CUDA layer, made before CUDA is asked anything (so that a wrong
argument says so even on a machine without a GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def device_index(index: Any, what: str = "device") -> int:
    """A CUDA device index (an int >= 0)."""
    if not _is_int(index) or index < 0:
        raise InvalidInputError(
            f"{what} must be a CUDA device index (an int >= 0, 0 for GPU.0), got {index!r}"
        )
    return int(index)


def byte_count(nbytes: Any) -> int:
    """A number of bytes (an int >= 0)."""
    if not _is_int(nbytes) or nbytes < 0:
        raise InvalidInputError(f"expected a byte count (an int >= 0), got {nbytes!r}")
    return int(nbytes)


def pointer(ptr: Any, what: str) -> int:
    """A non-null address."""
    if not _is_int(ptr) or ptr <= 0:
        raise InvalidInputError(f"{what} must be a non-null pointer (an int > 0), got {ptr!r}")
    return int(ptr)


def shape(value: Any) -> tuple[int, ...]:
    """A shape: a sequence of ints >= 0 (or one int)."""
    if _is_int(value):
        value = (value,)
    try:
        dims = tuple(value)
    except TypeError:
        raise InvalidInputError(f"expected a shape (a sequence of ints), got {value!r}") from None
    for dim in dims:
        if not _is_int(dim) or dim < 0:
            raise InvalidInputError(
                f"expected a shape of ints >= 0, got {value!r} (dimension {dim!r})"
            )
    return tuple(int(dim) for dim in dims)


def dtype(value: Any) -> np.dtype:
    """A fixed-size numpy dtype."""
    try:
        result = np.dtype(value)
    except TypeError as exc:
        raise InvalidInputError(f"expected a numpy dtype, got {value!r}") from exc
    if result.hasobject or result.itemsize == 0:
        raise InvalidInputError(f"expected a fixed-size numeric dtype, got {result}")
    return result


def flag(value: Any, name: str) -> bool:
    """True or False (numpy's bools too), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return bool(value)
