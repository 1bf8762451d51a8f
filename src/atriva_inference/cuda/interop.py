"""GPU arrays between libraries: :class:`DeviceArray`, the one type the rest of the runtime
sees GPU memory through.

What the core relies on is small: ``DeviceArray.from_object(obj)`` (another library's GPU
array, zero-copy), and of the result ``shape``, ``dtype``, ``device`` (the index n of
"GPU.n"), ``ptr``, ``reshape`` (a view), ``to_numpy()`` and ``__cuda_array_interface__``.

Import goes through ``cuda.core``'s ``StridedMemoryView``, which reads DLPack (up to 1.0,
versioned or legacy capsules) and the CUDA array interface (version 3) and gives the
producer's tensor back exactly once, when the view is dropped. We add the checks the
runtime needs (a GPU, C-contiguous, an element type numpy can hold) and the stream order:
with ``stream=`` the producer orders its pending writes before work on that stream
(DLPack's ``stream`` argument; for the CUDA array interface an event on the producer's
stream that ours waits on), without blocking the host. Without it the producer orders them
before the legacy default stream (DLPack ``stream=1``, which PyTorch honours where it
ignores ``None``) and the host waits for that stream once.

That orders the writes made *before* the hand-off. An array wrapped once and refilled
every frame is ordered by the stream that reads it: :class:`~.streams.Stream` is blocking
by default, so its work waits for what CuPy or PyTorch queued on the legacy default
stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from . import _checks
from ._core import call, driver, strided_memory_view, translated
from .devices import current_device, use_device
from .streams import LEGACY_STREAM, Stream, copy_to_host, synchronize_stream

__all__ = ["DeviceArray"]

# DLDeviceType values (dlpack.h) this layer names in its refusals.
_DEVICE_TYPE_NAMES = {
    1: "kDLCPU",
    2: "kDLCUDA",
    3: "kDLCUDAHost",
    4: "kDLOpenCL",
    7: "kDLVulkan",
    8: "kDLMetal",
    10: "kDLROCM",
    13: "kDLCUDAManaged",
    14: "kDLOneAPI",
}
_HOST_DEVICE_TYPES = frozenset({1, 3})  # CPU, CUDA pinned host memory
_CUDA_DEVICE_TYPES = frozenset({2, 13})  # CUDA device, CUDA managed memory

#: Element kinds the CUDA array interface describes: bool, int, uint, float, complex.
_CAI_KINDS = frozenset("biufc")


def _on_host_error(source: str, where: str) -> InvalidInputError:
    return InvalidInputError(
        f"expected GPU data (CuPy, a PyTorch CUDA tensor, ...), got {source} "
        f"with its data on the CPU ({where}); pass CPU arrays as numpy through "
        "runtime.tensor_from_numpy(array)"
    )


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...] | None) -> bool:
    if strides is None or 0 in shape:
        return True
    expected = 1
    for dim, stride in zip(reversed(shape), reversed(strides)):
        # A stride along a length-1 dimension is never used (producers put anything there).
        if dim != 1 and stride != expected:
            return False
        expected *= dim
    return True


def _refusal(view: Any, source: str) -> str | None:
    """Why ``view`` (a ``StridedMemoryView``) cannot be a DeviceArray, or None. Never
    raises, so that the caller can drop the view (giving the producer its tensor back)
    before it raises."""
    if not view.is_device_accessible or view.device_id < 0:
        return str(_on_host_error(source, "cuda.core sees host memory"))
    try:
        dtype = view.dtype
    except Exception as exc:  # cuda.core maps the types it knows when asked
        return (
            f"expected an element type numpy can hold (int/uint 8-64, float 16-64, bfloat16, "
            f"bool, complex; one lane), got {source} whose type cuda.core cannot read "
            f"({type(exc).__name__}: {exc})"
        )
    if dtype is None or dtype.hasobject or dtype.itemsize == 0:
        return f"expected a numeric element type, got {source} of type {dtype}"
    shape = tuple(view.shape)
    strides = None if view.strides is None else tuple(view.strides)
    if not _c_contiguous(shape, strides):
        return (
            f"expected a C-contiguous GPU array, got {source} of shape {shape} with strides "
            f"{strides} (in elements); make it contiguous first (e.g. .contiguous() / "
            "cupy.ascontiguousarray)"
        )
    return None


class DeviceArray:
    """A typed, C-contiguous view of device memory on one GPU.

    ``owner`` keeps the memory alive: the source object, the ``cuda.core`` view of it, or a
    buffer's allocation. Exported to other libraries through ``__cuda_array_interface__``
    (version 3, zero-copy for CuPy, PyTorch and Numba); there is no stream in that export,
    so whoever wrote the contents must have synchronized before handing it on.
    """

    def __init__(
        self,
        ptr: int,
        shape: Sequence[int],
        dtype: Any,
        device: int,
        owner: object = None,
        *,
        readonly: bool = False,
    ) -> None:
        if isinstance(ptr, bool) or not isinstance(ptr, (int, np.integer)) or ptr < 0:
            raise InvalidInputError(f"expected a device pointer (an int >= 0), got {ptr!r}")
        self.ptr = int(ptr)
        self.shape = _checks.shape(shape)
        self.dtype = _checks.dtype(dtype)
        self.device = _checks.device_index(device)
        self.owner = owner
        self.readonly = bool(readonly)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @classmethod
    def from_view(cls, view: Any, source: str = "the array") -> DeviceArray:
        """A DeviceArray over a ``cuda.core.utils.StridedMemoryView`` (no copy, no
        synchronization: ordering the producer's writes was the view's business). The
        result keeps the view, and with it the producer's memory, alive. Host memory,
        non-C-contiguous layouts and element types numpy cannot hold raise
        :class:`InvalidInputError`; ``source`` names the array in that message."""
        problem = _refusal(view, source)
        if problem is not None:
            del view  # not kept by this frame while the error travels
            raise InvalidInputError(problem)
        return cls(
            int(view.ptr),
            tuple(view.shape),
            view.dtype,
            int(view.device_id),
            view,
            readonly=bool(view.readonly),
        )

    @classmethod
    def from_object(cls, obj: Any, *, stream: Stream | None = None) -> DeviceArray:
        """Wrap another library's GPU array without copying.

        ``obj`` has ``__dlpack__`` and ``__dlpack_device__`` (CuPy, PyTorch CUDA tensors,
        JAX, ...) or ``__cuda_array_interface__`` (version 3); the result points at its
        memory and keeps it alive. With ``stream``, the producer's pending writes are
        ordered before work on that stream; without it the host waits for them (see the
        module docstring). CPU data, non-C-contiguous arrays and element types numpy cannot
        hold raise :class:`InvalidInputError`.
        """
        if isinstance(obj, DeviceArray):
            return cls(obj.ptr, obj.shape, obj.dtype, obj.device, obj.owner, readonly=obj.readonly)
        source = type(obj).__name__
        view, wait_on = _view(obj, stream)
        try:
            array = cls.from_view(view, source)
            if stream is not None and array.device != stream.device:
                raise InvalidInputError(
                    f"expected a stream of GPU.{array.device}, where {source}'s data is, "
                    f"got a stream of GPU.{stream.device}"
                )
            if wait_on is not None:
                # The array may go anywhere (a non-blocking stream, another library), so
                # the host waits once for the writes the producer ordered on that stream.
                synchronize_stream(
                    array.device,
                    wait_on,
                    f"waiting for {source}'s pending work on GPU.{array.device}",
                )
        except BaseException:
            # Dropped here, not kept by the traceback: the producer gets its tensor back now.
            del view
            array = None
            raise
        return array

    def reshape(self, shape: Sequence[int] | int) -> DeviceArray:
        """The same memory under a new shape with the same number of elements (one ``-1``
        is inferred, as in numpy)."""
        dims = [shape] if isinstance(shape, (int, np.integer)) else list(shape)
        if sum(1 for dim in dims if dim == -1) > 1:
            raise InvalidInputError(f"expected at most one -1 in the new shape, got {shape!r}")
        if -1 in dims:
            known = math.prod(dim for dim in dims if dim != -1)
            if known == 0 or self.size % known:
                raise InvalidInputError(
                    f"cannot reshape {self.shape} ({self.size} elements) to {tuple(dims)}"
                )
            dims[dims.index(-1)] = self.size // known
        new_shape = _checks.shape(dims)
        if math.prod(new_shape) != self.size:
            raise InvalidInputError(
                f"expected a shape with {self.size} elements to reshape {self.shape}, got "
                f"{new_shape} ({math.prod(new_shape)} elements)"
            )
        return DeviceArray(
            self.ptr, new_shape, self.dtype, self.device, self.owner, readonly=self.readonly
        )

    def to_numpy(self, stream: Stream | None = None) -> np.ndarray:
        """A host copy; returns when it is complete.

        Without ``stream`` the copy runs on the legacy default stream (it waits for work on
        blocking streams, :class:`~.streams.Stream`'s default, but not on
        ``blocking=False`` ones): pass the stream that wrote the data to order the copy
        after it.
        """
        out = np.empty(self.shape, self.dtype)
        if self.nbytes == 0:
            return out
        if stream is not None:
            copy_to_host(out, self.ptr, stream)
            stream.synchronize()
            return out
        what = f"cannot copy {self.nbytes} bytes from GPU.{self.device} at {self.ptr:#x} to host"
        use_device(self.device)
        call(what, driver().cuMemcpyDtoH, out.ctypes.data, self.ptr, self.nbytes)
        return out

    @property
    def __cuda_array_interface__(self) -> dict:
        """Version 3 of the CUDA array interface (C-contiguous: strides None; no stream)."""
        if self.dtype.kind not in _CAI_KINDS:
            raise InvalidInputError(
                "the CUDA array interface describes bool, int, uint, float and complex "
                f"elements, got {self.dtype}; hand this array over another way"
            )
        return {
            "version": 3,
            "shape": self.shape,
            "typestr": self.dtype.str,
            "descr": [("", self.dtype.str)],
            "data": (self.ptr, self.readonly),
            "strides": None,
        }

    def __repr__(self) -> str:
        return (
            f"DeviceArray(GPU.{self.device}, shape={self.shape}, dtype={self.dtype}, "
            f"ptr={self.ptr:#x})"
        )


def _protocol(obj: Any) -> str:
    """Which protocol ``obj`` is read through: ``"dlpack"`` or ``"cai"``; refusals here,
    before anything is exported."""
    if hasattr(obj, "__dlpack__"):
        if not hasattr(obj, "__dlpack_device__"):
            raise InvalidInputError(
                f"expected a DLPack producer of the array API standard (__dlpack__ with "
                f"stream= and __dlpack_device__), got {type(obj).__name__} without "
                "__dlpack_device__; export it with a newer version of its library"
            )
        return "dlpack"
    try:
        has_interface = hasattr(obj, "__cuda_array_interface__")
    except Exception:  # e.g. torch raises for CPU tensors; treated as absent
        has_interface = False
    if has_interface:
        return "cai"
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array_interface__"):
        raise _on_host_error(type(obj).__name__, "a numpy-style host array")
    raise InvalidInputError(
        "expected a GPU array with __dlpack__ or __cuda_array_interface__ (CuPy, a "
        f"PyTorch CUDA tensor, ...), got {type(obj).__name__}"
    )


def _check_dlpack_device(obj: Any, stream: Stream | None) -> None:
    """Refuse what ``__dlpack_device__`` already rules out, before the producer exports."""
    try:
        device_type, device_id = (int(value) for value in obj.__dlpack_device__())
    except Exception as exc:
        raise InvalidInputError(
            f"expected {type(obj).__name__}.__dlpack_device__() to give (device type, "
            f"device id), it raised {type(exc).__name__}: {exc}"
        ) from exc
    name = _DEVICE_TYPE_NAMES.get(device_type, f"DLPack device type {device_type}")
    if device_type in _HOST_DEVICE_TYPES:
        raise _on_host_error(type(obj).__name__, f"DLPack device {name}")
    if device_type not in _CUDA_DEVICE_TYPES:
        raise InvalidInputError(
            f"expected data on an NVIDIA GPU (DLPack kDLCUDA), got {type(obj).__name__} on {name}"
        )
    if stream is not None and device_id != stream.device:
        # Checked before exporting: the producer would be handed a foreign stream.
        raise InvalidInputError(
            f"expected a stream of GPU.{device_id}, where {type(obj).__name__}'s data is, "
            f"got a stream of GPU.{stream.device}"
        )


def _producer_stream(obj: Any) -> int | None:
    """The stream a CUDA-array-interface producer wrote on (None: nothing pending)."""
    interface = obj.__cuda_array_interface__
    if not isinstance(interface, dict):
        raise InvalidInputError(
            f"expected __cuda_array_interface__ to be a dict, got {type(interface).__name__}"
        )
    stream = interface.get("stream")
    if stream is None:
        return None
    if isinstance(stream, bool) or not isinstance(stream, int) or stream < 1:
        raise InvalidInputError(
            "expected __cuda_array_interface__ 'stream' to be None or a stream handle "
            f"(1 legacy, 2 per-thread, else a cudaStream_t), got {stream!r}"
        )
    return stream


def _view(obj: Any, stream: Stream | None) -> tuple[Any, int | None]:
    """``cuda.core``'s view of ``obj`` and the stream the host must still wait for (None
    when ``stream`` was given: the producer's writes are ordered before it on the GPU)."""
    protocol = _protocol(obj)
    view_type = strided_memory_view()
    if protocol == "dlpack":
        _check_dlpack_device(obj, stream)
        read = view_type.from_dlpack
        # Without a stream the producer orders its writes before the legacy default stream.
        consumer = LEGACY_STREAM if stream is None else stream.live()
        wait_on = LEGACY_STREAM if stream is None else None
    else:
        read = view_type.from_cuda_array_interface
        # cuda.core asks the driver where the memory is, and for a consumer stream records an
        # event on the producer's: both need a current context.
        if stream is None:
            wait_on = _producer_stream(obj)
            consumer = -1  # no ordering by cuda.core: the host waits on the producer's stream
            use_device(current_device())
        else:
            wait_on = None
            consumer = stream.live()
            use_device(stream.device)
    what = f"cannot read {type(obj).__name__}'s GPU memory"
    with translated(what):
        try:
            return read(obj, stream_ptr=consumer), wait_on
        except (BufferError, TypeError, ValueError, NotImplementedError) as exc:
            # The producer refused to export, or cuda.core refused what it exported.
            raise InvalidInputError(f"{what}: {type(exc).__name__}: {exc}") from exc
