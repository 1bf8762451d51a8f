"""How the commands write values: errors on one line, dtypes and shapes, output summaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..dtypes import STRING, kind_of
from ..tensor import format_signature

__all__ = ["array_dtype", "one_line", "port_fields", "summarize"]


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` with its white space folded, or its type's name when empty."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_text(array: np.ndarray) -> bool:
    """Strings, including the object arrays of ``str`` some backends return."""
    if array.dtype.kind == "O":
        return all(isinstance(item, (str, bytes)) for item in array.flat)
    return kind_of(array.dtype) == "T"


def array_dtype(array: np.ndarray) -> np.dtype:
    """The dtype of ``array``, an object array of strings counting as a string one."""
    return STRING if _is_text(array) else array.dtype


def port_fields(dtype: np.dtype, shape: Sequence[int | None] | None) -> str:
    """``dtype=float32  shape=[1,3,?,?]``: :func:`~atriva_inference.tensor.format_signature`
    as two fields."""
    name, _, dims = format_signature(dtype, shape).partition("[")
    return f"dtype={name}  shape=[{dims}"


def summarize(array: np.ndarray) -> str:
    """``min=... max=... mean=...`` for numbers and bools; sample values for strings."""
    kind = kind_of(array_dtype(array))
    if array.size == 0:
        return "(empty)"
    if kind in "biuf":
        values = array.astype(np.float64)
        text = f"min={values.min():.6g}  max={values.max():.6g}  mean={values.mean():.6g}"
        bad = int(np.count_nonzero(~np.isfinite(values)))
        return text + (f"  non-finite={bad}" if bad else "")
    if kind == "c":
        magnitude = np.abs(array.astype(np.complex128))
        return f"|min|={magnitude.min():.6g}  |max|={magnitude.max():.6g}"
    if kind == "T":
        sample = ", ".join(
            repr(item.decode(errors="replace") if isinstance(item, bytes) else str(item))
            for item in array.flat[:3]
        )
        return f"values={sample}{', ...' if array.size > 3 else ''}"
    return ""
