"""Tensors: host data plus the layout it is declared in, and model port descriptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dtypes import describe
from .errors import InvalidInputError

__all__ = ["DeviceTensor", "Tensor", "TensorInfo", "format_signature", "validate_layout"]


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as the backend really takes or gives it.

    ``shape`` has ``None`` for dynamic dimensions (``None`` as a whole when even the rank
    is unknown); ``dtype`` is a numpy dtype (``ml_dtypes`` types for bfloat16, float8,
    int4, ...; ``numpy.str_`` for strings); ``layout`` is e.g. ``"NCHW"`` when known.

    ONNX ports that are not plain tensors (ONNX Runtime only) say so: ``sequence`` -- a list
    of tensors of ``dtype`` (``shape`` is then ``None``: the items' shapes are free);
    ``optional`` -- the value may be absent (``None``). Both for an optional sequence.
    """

    name: str
    shape: tuple[int | None, ...] | None
    dtype: np.dtype
    layout: str | None = None
    sequence: bool = False
    optional: bool = False

    @property
    def is_tensor(self) -> bool:
        """True for a plain tensor port (neither a sequence nor optional)."""
        return not (self.sequence or self.optional)

    def __str__(self) -> str:
        text = format_signature(self.dtype, self.shape, self.sequence, self.optional)
        return f"{self.name}: {text}" + (f" ({self.layout})" if self.layout else "")


def format_signature(
    dtype: np.dtype,
    shape: Sequence[int | None] | None,
    sequence: bool = False,
    optional: bool = False,
) -> str:
    """``float32[1,3,?,?]`` -- the form every error message uses; ``sequence<float32[...]>``
    and ``optional<float32[2]>`` for the ONNX ports that are not plain tensors."""
    if shape is None:
        text = f"{describe(dtype)}[...]"
    else:
        dims = ",".join("?" if dim is None else str(dim) for dim in shape)
        text = f"{describe(dtype)}[{dims}]"
    if sequence:
        text = f"sequence<{text}>"
    return f"optional<{text}>" if optional else text


def validate_layout(layout: str | None, ndim: int, what: str) -> str | None:
    """Check a layout string against the data's rank; return it upper-cased.

    A layout is one letter per dimension (``N``, ``C``, ``H``, ``W``, ``D`` or any other
    letter, ``?`` for "don't care"), each letter at most once.
    """
    if layout is None:
        return None
    if not isinstance(layout, str):
        raise InvalidInputError(f"{what}: layout must be a string such as 'NCHW', got {layout!r}")
    text = layout.strip().upper()
    letters = [c for c in text if c != "?"]
    if (
        not text
        or not all(c.isalpha() or c == "?" for c in text)
        or len(set(letters)) != len(letters)
    ):
        raise InvalidInputError(
            f"{what}: expected a layout of distinct letters such as 'NCHW', 'NHWC', 'HWC', "
            f"got {layout!r}"
        )
    if len(text) != ndim:
        raise InvalidInputError(
            f"{what}: layout '{text}' names {len(text)} dimensions, the data has {ndim}"
        )
    return text


class Tensor:
    """Host data handed to or returned by a model.

    A tensor wraps a numpy array without copying it and keeps it alive (it owns a
    reference to whatever owns the memory). :meth:`to_numpy` returns that array itself,
    not a copy, so ``np.shares_memory(tensor.to_numpy(), array)`` holds for tensors made
    from C-contiguous arrays. Casting to the dtype a model takes happens at run time and
    only when needed.
    """

    __slots__ = ("_data", "_layout")

    def __init__(self, data: np.ndarray, layout: str | None = None) -> None:
        self._data = data
        self._layout = layout

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def layout(self) -> str | None:
        """The layout the data is declared in, or ``None`` when not declared."""
        return self._layout

    @property
    def device(self) -> str:
        """Where the data lives; host tensors say ``"CPU"``."""
        return "CPU"

    def to_numpy(self, copy: bool = False) -> np.ndarray:
        """The data as a numpy array: the tensor's own buffer unless ``copy=True``."""
        return self._data.copy() if copy else self._data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        data = self._data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            if copy is False:  # numpy >= 2 protocol: refuse rather than copy silently
                raise ValueError(f"converting {data.dtype} to {np.dtype(dtype)} needs a copy")
            return data.astype(dtype)
        return data.copy() if copy else data

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        layout = f", layout={self._layout!r}" if self._layout else ""
        return f"Tensor({format_signature(self.dtype, self.shape)}{layout})"


class DeviceTensor(Tensor):
    """Data in GPU memory, used in place: made by ``runtime.tensor_from_dlpack`` from a CuPy or
    PyTorch CUDA array (zero-copy), or returned by a GPU model's stream (a view of the
    stream's device buffer, valid until its next run).

    It goes into a model on the same GPU without a copy; the model's dtype and layout must
    already be the data's (no conversion happens on the device). ``to_numpy()`` copies to
    the host; CuPy, PyTorch and Numba take it without a copy through
    ``__cuda_array_interface__`` (``cupy.asarray(t)``, ``torch.as_tensor(t, device="cuda")``).
    """

    __slots__ = ()

    @property
    def device(self) -> str:
        return f"GPU.{self._data.device}"

    def __len__(self) -> int:
        if not self._data.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def data_ptr(self) -> int:
        """The device address of the first element."""
        return int(self._data.ptr)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return self._data.__cuda_array_interface__

    def to_numpy(self, copy: bool = True) -> np.ndarray:
        """A host copy of the data (device memory cannot be viewed from the host)."""
        return self._data.to_numpy()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a GPU tensor cannot be viewed from the host without a copy")
        data = self._data.to_numpy()
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        layout = f", layout={self._layout!r}" if self._layout else ""
        return f"DeviceTensor({format_signature(self.dtype, self.shape)}, {self.device}{layout})"
