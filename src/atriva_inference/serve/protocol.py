"""Tensors on the wire: Open Inference Protocol datatypes, and numpy arrays read from (and
written as) raw little-endian bytes or JSON lists, with every check a client may fail.

Raw bytes become arrays with ``np.frombuffer`` (a view, no copy, no per-element loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dtypes import describe
from ..errors import InvalidInputError

__all__ = [
    "array_from_bytes",
    "array_from_list",
    "check_shape",
    "datatype_of",
    "dtype_of",
    "json_data",
]

_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
try:  # bfloat16 models come with ml_dtypes (openvino and onnx depend on it)
    import ml_dtypes

    _DTYPES["BF16"] = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - without ml_dtypes no model has bfloat16 ports
    pass
_DATATYPES = {dtype: name for name, dtype in _DTYPES.items()}


def dtype_of(datatype: object, what: str) -> np.dtype:
    """The numpy dtype of an OIP datatype (``"FP32"`` -> float32); 400 for others."""
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInputError(
            f"{what}: expected a datatype among {', '.join(_DTYPES)}, got {datatype!r}"
        )
    return dtype


def datatype_of(dtype: np.dtype) -> str:
    """The OIP datatype of a numpy dtype; ``BYTES`` for strings and what has no other name."""
    return _DATATYPES.get(np.dtype(dtype).newbyteorder("="), "BYTES")


def check_shape(shape: object, what: str) -> tuple[int, ...]:
    """A request's shape: a list of non-negative integers."""
    if not isinstance(shape, (list, tuple)) or not all(
        type(dim) is int and dim >= 0 for dim in shape
    ):
        raise InvalidInputError(
            f"{what}: expected a shape as a list of non-negative integers, got {shape!r}"
        )
    return tuple(shape)


def array_from_bytes(
    buffer: bytes | bytearray | memoryview, dtype: np.dtype, shape: tuple[int, ...], what: str
) -> np.ndarray:
    """``buffer`` as an array of ``shape`` (a view of it); its size must be the shape's."""
    expected = math.prod(shape) * dtype.itemsize
    if len(buffer) != expected:
        raise InvalidInputError(
            f"{what}: expected {expected} bytes for {datatype_of(dtype)}{list(shape)}, "
            f"got {len(buffer)}"
        )
    return np.frombuffer(buffer, dtype.newbyteorder("<")).reshape(shape)


def array_from_list(data: object, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
    """JSON ``data`` (flat or nested, row-major) as an array of ``shape``."""
    if not isinstance(data, list):
        raise InvalidInputError(
            f"{what}: expected 'data' as a JSON list, got {type(data).__name__}"
        )
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InvalidInputError(
            f"{what}: 'data' is not a regular (rectangular) list: {exc}"
        ) from exc
    count = math.prod(shape)
    if array.size != count:
        raise InvalidInputError(
            f"{what}: expected {count} values for {datatype_of(dtype)}{list(shape)}, "
            f"got {array.size}"
        )
    if array.size and not _fits_json(array.dtype, dtype):
        raise InvalidInputError(
            f"{what}: expected {describe(dtype)} values in 'data', got {describe(array.dtype)}"
        )
    try:
        return array.astype(dtype, copy=False).reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{what}: 'data' does not fit {describe(dtype)}: {exc}") from exc


def _fits_json(source: np.dtype, target: np.dtype) -> bool:
    """JSON numbers: bools for BOOL, integers for integer types, numbers for floats."""
    if target.kind == "b":
        return source.kind == "b"
    if target.kind in "iu":
        return source.kind in "iu"
    return source.kind in "iuf"


def json_data(array: np.ndarray) -> list[Any]:
    """An output as a flat JSON list, row-major (as Triton answers)."""
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64, np.float16):
        array = array.astype(np.float32)  # bfloat16 and friends: JSON has one number type
    return array.reshape(-1).tolist()


def raw_bytes(array: np.ndarray) -> bytes:
    """An output's bytes, row-major, little-endian."""
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)
