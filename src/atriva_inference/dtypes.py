"""Element types: one classification and one set of casting rules for every backend.

numpy's own ``dtype.kind`` calls every ``ml_dtypes`` type (bfloat16, float8, int4, ...)
a void ``'V'``; :func:`kind_of` gives them their real kind so the rules below treat
``bfloat16`` as a float and ``int4`` as an integer.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from .errors import InvalidInputError

__all__ = ["STRING", "convert_array", "describe", "kind_of"]

#: The dtype the runtime uses to describe string tensors.
STRING = np.dtype(np.str_)

_TEXT_KINDS = frozenset("USO")


def kind_of(dtype: np.dtype) -> str:
    """Return ``'b'``, ``'i'``, ``'u'``, ``'f'``, ``'c'``, ``'T'`` (text) or ``'O'`` (other)."""
    kind = dtype.kind
    if kind in "biufc":
        return kind
    if kind in "US":
        return "T"
    if kind == "V":
        name = dtype.name
        if name.startswith(("float", "bfloat")):
            return "f"
        if name.startswith("uint"):
            return "u"
        if name.startswith("int"):
            return "i"
    return "O"


def describe(dtype: np.dtype) -> str:
    """A short human name: ``float32``, ``bfloat16``, ``string``."""
    return "string" if dtype.kind in "US" else dtype.name


def _integer_bounds(dtype: np.dtype) -> tuple[int, int]:
    info = ml_dtypes.iinfo(dtype)
    return int(info.min), int(info.max)


def convert_array(array: np.ndarray, target: np.dtype, what: str) -> np.ndarray:
    """Cast ``array`` to ``target`` when the cast is safe, else raise :class:`InvalidInputError`.

    Safe means: the same kind of number (float64 -> float32, bfloat16 -> float32), any
    integer or bool into a float, or an integer into a narrower integer whose range holds
    every value (checked). Lossy-by-kind casts (float -> int, anything -> bool, complex,
    objects, strings into numbers) are refused. ``what`` names the input in the message.
    """
    source = array.dtype
    if source == target:
        return array
    source_kind, target_kind = kind_of(source), kind_of(target)
    if target_kind == "T" and (source_kind == "T" or source.kind == "O"):
        return array  # strings: the backend converts to its own representation
    if target_kind == "f" and source_kind in "biuf":
        return array.astype(target)
    if target_kind in "iu" and source_kind in "biu":
        if source_kind != "b" and array.size and not _fits(source, target):
            lo, hi = _integer_bounds(target)
            found_lo, found_hi = int(array.min()), int(array.max())
            if found_lo < lo or found_hi > hi:
                raise InvalidInputError(
                    f"{what}: expected {describe(target)} values in [{lo}, {hi}], got "
                    f"{describe(source)} values in [{found_lo}, {found_hi}] which do not fit"
                )
        return array.astype(target)
    if target_kind == "c" and source_kind in "biufc":
        return array.astype(target)
    raise InvalidInputError(
        f"{what}: expected {describe(target)} data, got {describe(source)} "
        f"({_why_refused(source_kind, target_kind)})"
    )


def _fits(source: np.dtype, target: np.dtype) -> bool:
    """True when every value of ``source`` is representable in ``target``."""
    source_lo, source_hi = _integer_bounds(source)
    target_lo, target_hi = _integer_bounds(target)
    return target_lo <= source_lo and source_hi <= target_hi


def _why_refused(source_kind: str, target_kind: str) -> str:
    if source_kind == "f" and target_kind in "iu":
        return "float data into an integer input would lose the fraction; round and cast first"
    if target_kind == "b":
        return "only bool data goes into a bool input"
    if source_kind == "c":
        return "complex numbers cannot be cast to a real type without losing the imaginary part"
    if source_kind == "T":
        return "strings are not numbers"
    if target_kind == "T":
        return "the input takes strings"
    return "no safe cast exists"


#: Bits per element of the sub-byte types; backends exchange them packed, element 0 in
#: the lowest bits of byte 0 (the ONNX layout). ml_dtypes stores one element per byte.
SUBBYTE_BITS: dict[str, int] = {
    "int4": 4,
    "uint4": 4,
    "float4_e2m1fn": 4,
    "int2": 2,
    "uint2": 2,
}


def pack_subbyte(array: np.ndarray) -> np.ndarray:
    """Pack an ml_dtypes int4/uint4/float4/int2/uint2 array into bytes (low bits first)."""
    bits = SUBBYTE_BITS[array.dtype.name]
    per_byte = 8 // bits
    codes = np.ascontiguousarray(array).view(np.uint8).ravel() & np.uint8((1 << bits) - 1)
    padded = np.zeros(-(-codes.size // per_byte) * per_byte, np.uint8)
    padded[: codes.size] = codes
    groups = padded.reshape(-1, per_byte)
    packed = groups[:, 0].copy()
    for position in range(1, per_byte):
        packed |= groups[:, position] << np.uint8(position * bits)
    return packed


def unpack_subbyte(packed: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_subbyte`: a new array of ``dtype`` and ``shape``."""
    bits = SUBBYTE_BITS[dtype.name]
    per_byte = 8 // bits
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.ascontiguousarray(packed).view(np.uint8).ravel()
    mask = np.uint8((1 << bits) - 1)
    codes = np.empty((raw.size, per_byte), np.uint8)
    for position in range(per_byte):
        codes[:, position] = (raw >> np.uint8(position * bits)) & mask
    # ml_dtypes keeps the code in the low bits and sign-extends itself when it reads int4.
    return codes.ravel()[:count].view(dtype).reshape(shape)
