"""Tensors on the wire: Open Inference Protocol datatypes, and numpy arrays read from (and
written as) raw little-endian bytes or JSON lists, with every check a client may fail.

Raw bytes become arrays with ``np.frombuffer`` (a view, no copy, no per-element loop).
``BYTES`` tensors (strings) are the exception: each element is its own length-prefixed
string, read (and written) one by one, and they reach the model as numpy strings.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dtypes import describe
from ..errors import InvalidInputError

__all__ = [
    "BYTES",
    "array_from_bytes",
    "array_from_list",
    "check_shape",
    "datatype_of",
    "dtype_of",
    "json_data",
    "raw_bytes",
    "strings_from_items",
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
#: Strings: UTF-8 on the wire, numpy strings for the model.
BYTES = "BYTES"
_STRING = np.dtype(np.str_)


def dtype_of(datatype: object, what: str) -> np.dtype:
    """The numpy dtype of an OIP datatype (``"FP32"`` -> float32, ``"BYTES"`` -> numpy
    strings); 400 for others."""
    if datatype == BYTES:
        return _STRING
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInputError(
            f"{what}: expected a datatype among {', '.join([*_DTYPES, BYTES])}, got {datatype!r}"
        )
    return dtype


def datatype_of(dtype: np.dtype) -> str:
    """The OIP datatype of a numpy dtype; ``BYTES`` for strings and what has no other name."""
    return _DATATYPES.get(np.dtype(dtype).newbyteorder("="), BYTES)


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
    if dtype.kind == "U":
        return _strings_from_bytes(buffer, shape, what)
    expected = math.prod(shape) * dtype.itemsize
    if len(buffer) != expected:
        raise InvalidInputError(
            f"{what}: expected {expected} bytes for {datatype_of(dtype)}{list(shape)}, "
            f"got {len(buffer)}"
        )
    return np.frombuffer(buffer, dtype.newbyteorder("<")).reshape(shape)


def _strings_from_bytes(
    buffer: bytes | bytearray | memoryview, shape: tuple[int, ...], what: str
) -> np.ndarray:
    """Elements as 4-byte little-endian lengths, each followed by that many UTF-8 bytes."""
    count = math.prod(shape)
    view = memoryview(buffer)
    items = []
    offset = 0
    for index in range(count):
        if offset + 4 > len(view):
            raise InvalidInputError(
                f"{what}: expected {count} length-prefixed strings for BYTES{list(shape)}, "
                f"the data ends after {index}"
            )
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise InvalidInputError(
                f"{what}: string {index} says {length} bytes, {len(view) - offset} are left"
            )
        try:
            items.append(str(view[offset : offset + length], "utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{what}: string {index} is not UTF-8: {exc}") from exc
        offset += length
    if offset != len(view):
        raise InvalidInputError(
            f"{what}: expected {count} strings for BYTES{list(shape)}, "
            f"{len(view) - offset} bytes are left after them"
        )
    return np.array(items, dtype=np.str_).reshape(shape)


def strings_from_items(items: Sequence[bytes], shape: tuple[int, ...], what: str) -> np.ndarray:
    """gRPC's ``bytes_contents``: one UTF-8 string per element."""
    try:
        texts = [str(item, "utf-8") for item in items]
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what}: a string is not UTF-8: {exc}") from exc
    return np.array(texts, dtype=np.str_).reshape(shape)


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
    if dtype.kind == "U":
        return array.reshape(shape)
    try:
        return array.astype(dtype, copy=False).reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{what}: 'data' does not fit {describe(dtype)}: {exc}") from exc


def _fits_json(source: np.dtype, target: np.dtype) -> bool:
    """JSON numbers: bools for BOOL, integers for integer types, numbers for floats, strings
    for BYTES."""
    if target.kind == "U":
        return source.kind == "U"
    if source.kind == "U":
        return False
    if target.kind == "b":
        return source.kind == "b"
    if target.kind in "iu":
        return source.kind in "iu"
    return source.kind in "iuf"


def json_data(array: np.ndarray) -> list[Any]:
    """An output as a flat JSON list, row-major (as Triton answers)."""
    if array.dtype.kind in "SO":
        return [
            item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            for item in array.reshape(-1).tolist()
        ]
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64, np.float16):
        array = array.astype(np.float32)  # bfloat16 and friends: JSON has one number type
    return array.reshape(-1).tolist()


def raw_bytes(array: np.ndarray) -> bytes:
    """An output's bytes, row-major, little-endian (strings length-prefixed, UTF-8)."""
    if array.dtype.kind in "USO":
        items = [
            item if isinstance(item, bytes) else str(item).encode()
            for item in array.reshape(-1).tolist()
        ]
        return b"".join(struct.pack("<I", len(item)) + item for item in items)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()
