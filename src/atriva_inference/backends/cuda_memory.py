"""CUDA memory for the GPU backends: device and pinned buffers, streams, events, copies,
and zero-copy hand-off of GPU arrays from other libraries (DLPack, CUDA array interface).

Built on cuda-python's runtime bindings (``cuda.bindings.runtime``), imported on first use
so that importing this module never needs cuda-python. A machine without an NVIDIA driver
or GPU is an ordinary case: :func:`device_count` says 0, and anything that needs the GPU
raises :class:`~atriva_inference.errors.DeviceUnavailableError` naming the CUDA error.

Conventions:

* The CUDA runtime acts on the calling thread's current device, so every method that
  allocates, copies or records calls :func:`use_device` first: a buffer made for GPU.1
  works from any thread. (That leaves GPU.1 current in that thread, as any CUDA call would.)
* Everything that holds a CUDA resource frees it exactly once: ``close()`` is idempotent and
  a :func:`weakref.finalize` frees what is dropped without ``close()``. Finalizers never
  raise and restore the thread's current device.
* Buffers are not locked: one user at a time (as a backend request is).
* Memory handed out as views (:meth:`PinnedBuffer.array`, :meth:`DeviceBuffer.array`) keeps
  its allocation alive: ``close()`` or a growing ``ensure()`` only drop the buffer's own
  hold, and the memory is freed when the last view goes.

Stream ordering of foreign arrays (:meth:`DeviceArray.from_object`): with ``stream=`` given,
the producer is asked to order its pending writes before work on that stream (DLPack's
``stream`` argument; for ``__cuda_array_interface__`` an event on the producer's stream that
ours waits on), without blocking the host. Without it, DLPack producers order their writes
on the legacy default stream (the protocol's ``stream=None``) and we synchronize that
stream; for the CUDA array interface we synchronize the producer's stream. (PyTorch takes
``stream=None`` as "no ordering at all": with a non-default current torch stream, pass
``stream=``.)

That orders the writes made *before* the hand-off. An array wrapped once and refilled
every frame is ordered by the stream itself: :class:`Stream` is blocking by default, so
its work waits for what CuPy or PyTorch queued on the legacy default stream (see
:class:`Stream`). Events are created with ``cudaEventBlockingSync`` by default, so a host
thread waiting on one sleeps instead of spinning (see :class:`Event`).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import math
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np

from ..errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InvalidInputError,
    ModelClosedError,
)

__all__ = [
    "EXTRA_HINT",
    "DLPackOwner",
    "DeviceArray",
    "DeviceBuffer",
    "Event",
    "ForeignArray",
    "GpuProperties",
    "PinnedBuffer",
    "Stream",
    "check",
    "copy_on_device",
    "copy_to_device",
    "copy_to_host",
    "cuda_runtime",
    "device_count",
    "device_properties",
    "event_flags",
    "gpu_devices",
    "read_cuda_array_interface",
    "read_dlpack",
    "read_dlpack_capsule",
    "stream_flags",
    "use_device",
]

EXTRA_HINT = "pip install 'atriva-inference[tensorrt]'"

_RUNTIME_MODULE = "cuda.bindings.runtime"

#: CUDA errors that mean "no usable GPU here" rather than a failure of the work asked for.
_NO_GPU_ERRORS = frozenset(
    {
        "cudaErrorInsufficientDriver",
        "cudaErrorNoDevice",
        "cudaErrorInvalidDevice",
        "cudaErrorDevicesUnavailable",
        "cudaErrorStubLibrary",
        "cudaErrorCallRequiresNewerDriver",
        "cudaErrorSystemDriverMismatch",
        "cudaErrorCompatNotSupportedOnDevice",
        "cudaErrorSystemNotReady",
    }
)

# --------------------------------------------------------------------------------------
# The runtime and its errors
# --------------------------------------------------------------------------------------


def cuda_runtime(hint: str = EXTRA_HINT) -> ModuleType:
    """``cuda.bindings.runtime``; :class:`BackendUnavailableError` naming the package if missing.

    ``hint`` is the install command suggested besides ``pip install cuda-python``.
    """
    # sys.modules first: this is on every call's path and a dict lookup is all it costs.
    module = sys.modules.get(_RUNTIME_MODULE)
    if module is not None:
        return module
    try:
        return importlib.import_module(_RUNTIME_MODULE)
    except Exception as exc:  # ImportError, or a broken install failing while it loads
        raise BackendUnavailableError(
            f"CUDA memory needs cuda-python's runtime bindings ({_RUNTIME_MODULE}), which "
            f"cannot be imported here ({type(exc).__name__}: {exc}); install them with "
            f"`pip install cuda-python` or {hint}"
        ) from exc


def _error_name(rt: ModuleType, err: Any) -> str:
    name = getattr(err, "name", None)
    if isinstance(name, str):
        return name
    with contextlib.suppress(Exception):
        status, raw = rt.cudaGetErrorName(err)
        if not status and raw:
            return raw.decode(errors="replace")
    return f"cudaError {int(err)}"


def _error_text(rt: ModuleType, err: Any) -> str:
    with contextlib.suppress(Exception):
        status, raw = rt.cudaGetErrorString(err)
        if not status and raw:
            return raw.decode(errors="replace")
    return "no description"


def check(result: tuple, what: str) -> Any:
    """Unwrap a cuda-python result tuple ``(err, *values)``.

    Returns ``None``, the one value, or a tuple of the values. A failure raises
    :class:`DeviceUnavailableError` when it means there is no usable GPU (no or too old a
    driver, no device, invalid device) and :class:`InferenceFailedError` otherwise, with the
    message ``f"{what}: {name} ({description})"``.
    """
    err = result[0]
    if err == 0:  # cudaSuccess; cuda-python's error enum is an int
        if len(result) == 1:
            return None
        return result[1] if len(result) == 2 else tuple(result[1:])
    rt = cuda_runtime()
    name = _error_name(rt, err)
    message = f"{what}: {name} ({_error_text(rt, err)})"
    if name in _NO_GPU_ERRORS:
        raise DeviceUnavailableError(message)
    raise InferenceFailedError(message)


def _is_error(result: tuple, name: str) -> bool:
    err = result[0]
    return err != 0 and getattr(err, "name", None) == name


# --------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------


def device_count() -> int:
    """How many CUDA GPUs this process sees; 0 without a driver or a GPU (never raises for
    that). :class:`BackendUnavailableError` when cuda-python is missing."""
    rt = cuda_runtime()
    result = rt.cudaGetDeviceCount()
    if result[0] != 0 and _error_name(rt, result[0]) in _NO_GPU_ERRORS:
        return 0
    return int(check(result, "cannot count the CUDA GPUs"))


def gpu_devices() -> list[str]:
    """Canonical names of the CUDA GPUs: ``["GPU.0", "GPU.1", ...]``; ``[]`` without one."""
    return [f"GPU.{index}" for index in range(device_count())]


@dataclass(frozen=True)
class GpuProperties:
    """What :func:`device_properties` reports of one GPU."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int  # bytes
    uuid: str  # as nvidia-smi prints it: "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


def _device_index(index: Any, what: str = "device") -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise InvalidInputError(
            f"{what} must be a CUDA device index (an int >= 0, 0 for GPU.0), got {index!r}"
        )
    return int(index)


def _present_devices() -> str:
    with contextlib.suppress(Exception):
        count = device_count()
        if count == 0:
            return "this machine has no usable CUDA GPU"
        return f"expected one of GPU.0..GPU.{count - 1}"
    return "the GPUs present could not be counted"


def use_device(index: int) -> None:
    """Make GPU ``index`` current for the calling thread (``cudaSetDevice``; cheap)."""
    index = _device_index(index)
    result = cuda_runtime().cudaSetDevice(index)
    if result[0] != 0:
        check(result, f"cannot use GPU.{index} ({_present_devices()})")


def device_properties(index: int) -> GpuProperties:
    """Name, compute capability, memory and UUID of GPU ``index``."""
    index = _device_index(index)
    rt = cuda_runtime()
    result = rt.cudaGetDeviceProperties(index)
    if result[0] != 0:
        check(result, f"cannot read the properties of GPU.{index} ({_present_devices()})")
    props = result[1]
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    raw = bytes(props.uuid.bytes)
    hexed = raw.hex()
    uuid = f"GPU-{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:32]}"
    return GpuProperties(
        index=index,
        name=str(name),
        compute_capability=(int(props.major), int(props.minor)),
        total_memory=int(props.totalGlobalMem),
        uuid=uuid,
    )


# --------------------------------------------------------------------------------------
# Freeing exactly once
# --------------------------------------------------------------------------------------


def _release(free_name: str, handle: int, device: int | None) -> None:
    """Finalizer: free one CUDA resource. Runs from GC in any thread or at exit, so it never
    raises and leaves the thread's current device as it found it."""
    with contextlib.suppress(Exception):
        rt = sys.modules.get(_RUNTIME_MODULE)
        if rt is None:  # interpreter shutdown already dropped the bindings
            return
        previous = None
        if device is not None:
            status, current = rt.cudaGetDevice()
            if status == 0 and current != device:
                previous = current
                rt.cudaSetDevice(device)
        getattr(rt, free_name)(handle)
        if previous is not None:
            rt.cudaSetDevice(previous)


class _Allocation:
    """One CUDA allocation, freed once when nothing refers to it any more (or at exit)."""

    __slots__ = ("__weakref__", "_finalizer", "device", "nbytes", "ptr")

    def __init__(self, ptr: int, nbytes: int, device: int | None, free_name: str) -> None:
        self.ptr = ptr
        self.nbytes = nbytes
        self.device = device
        self._finalizer = weakref.finalize(self, _release, free_name, ptr, device)


def _nbytes(nbytes: Any) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise InvalidInputError(f"expected a byte count (an int >= 0), got {nbytes!r}")
    return int(nbytes)


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise InvalidInputError(f"expected a shape (a sequence of ints), got {shape!r}") from None
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 0:
            raise InvalidInputError(
                f"expected a shape of ints >= 0, got {shape!r} (dimension {dim!r})"
            )
    return tuple(int(dim) for dim in dims)


def _dtype(dtype: Any) -> np.dtype:
    try:
        result = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidInputError(f"expected a numpy dtype, got {dtype!r}") from exc
    if result.hasobject or result.itemsize == 0:
        raise InvalidInputError(f"expected a fixed-size numeric dtype, got {result}")
    return result


# --------------------------------------------------------------------------------------
# Buffers
# --------------------------------------------------------------------------------------


class _Buffer:
    """What device and pinned buffers share: grow-only allocation, checked views, release."""

    _what = "buffer"  # how messages name it

    def __init__(self) -> None:
        self.ptr = 0
        self.nbytes = 0
        self._allocation: _Allocation | None = None
        self._closed = False

    def _allocate(self, nbytes: int) -> None:
        # Drop the old allocation first so the peak stays at the new size.
        self._allocation = None
        self.ptr = 0
        self.nbytes = 0
        if nbytes == 0:
            return
        self._allocation = self._new_allocation(nbytes)
        self.ptr = self._allocation.ptr
        self.nbytes = nbytes

    def _new_allocation(self, nbytes: int) -> _Allocation:
        raise NotImplementedError

    def ensure(self, nbytes: int) -> int:
        """At least ``nbytes`` of capacity; returns ``ptr``. Reallocates only to grow."""
        nbytes = _nbytes(nbytes)
        if self._closed:
            raise ModelClosedError(
                f"this {self._what} was closed; expected an open one to hold {nbytes} bytes"
            )
        if nbytes > self.nbytes:
            self._allocate(nbytes)
        return self.ptr

    def _view_size(self, dtype: Any, shape: Sequence[int]) -> tuple[np.dtype, tuple[int, ...]]:
        """``dtype`` and ``shape`` checked against the capacity, for a view of the buffer."""
        dtype = _dtype(dtype)
        shape = _shape(shape)
        need = math.prod(shape) * dtype.itemsize
        if self._closed:
            raise ModelClosedError(f"this {self._what} was closed")
        if need > self.nbytes:
            raise InvalidInputError(
                f"a {dtype} array of shape {shape} needs {need} bytes; this {self._what} "
                f"holds {self.nbytes} (call ensure({need}) first)"
            )
        return dtype, shape

    def close(self) -> None:
        """Release the memory (idempotent); views made by ``array`` keep theirs."""
        self._closed = True
        self._allocation = None
        self.ptr = 0
        self.nbytes = 0

    def __enter__(self) -> _Buffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.nbytes} bytes at {self.ptr:#x}"
        return f"{type(self).__name__}({state})"


class DeviceBuffer(_Buffer):
    """Device memory on one GPU, allocated once and reused; grown only when asked for more.

    ``nbytes`` is the capacity. Growing does not keep the contents (it is scratch memory).
    """

    def __init__(self, nbytes: int, device: int) -> None:
        super().__init__()
        self.device = _device_index(device)
        self._what = f"device buffer (GPU.{self.device})"
        nbytes = _nbytes(nbytes)
        use_device(self.device)  # DeviceUnavailableError here when there is no such GPU
        self._allocate(nbytes)

    def _new_allocation(self, nbytes: int) -> _Allocation:
        use_device(self.device)
        ptr = int(
            check(
                cuda_runtime().cudaMalloc(nbytes),
                f"cannot allocate {nbytes} bytes of device memory on GPU.{self.device}",
            )
        )
        return _Allocation(ptr, nbytes, self.device, "cudaFree")

    def array(self, dtype: Any, shape: Sequence[int]) -> DeviceArray:
        """A :class:`DeviceArray` over the start of this buffer (no copy); it keeps the
        memory alive even if the buffer grows or is closed."""
        dtype, shape = self._view_size(dtype, shape)
        return DeviceArray(self.ptr, shape, dtype, self.device, owner=self._allocation)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.nbytes} bytes at {self.ptr:#x}"
        return f"DeviceBuffer(GPU.{self.device}, {state})"


class _HostView:
    """Exposes pinned memory to numpy; the array made from it keeps the allocation alive."""

    __slots__ = ("__array_interface__", "allocation")

    def __init__(self, allocation: _Allocation, nbytes: int) -> None:
        self.allocation = allocation
        self.__array_interface__ = {
            "version": 3,
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (allocation.ptr, False),
        }


class PinnedBuffer(_Buffer):
    """Page-locked host memory (portable across GPUs) for fast asynchronous copies."""

    _what = "pinned buffer"

    def __init__(self, nbytes: int) -> None:
        super().__init__()
        nbytes = _nbytes(nbytes)
        if nbytes == 0:
            # Nothing to allocate, but the promise is still CUDA memory: fail as allocating
            # would when there is no GPU.
            check(cuda_runtime().cudaGetDeviceCount(), "cannot use pinned host memory")
        self._allocate(nbytes)

    def _new_allocation(self, nbytes: int) -> _Allocation:
        rt = cuda_runtime()
        ptr = int(
            check(
                rt.cudaHostAlloc(nbytes, rt.cudaHostAllocPortable),
                f"cannot allocate {nbytes} bytes of pinned host memory",
            )
        )
        return _Allocation(ptr, nbytes, None, "cudaFreeHost")

    def array(self, dtype: Any, shape: Sequence[int]) -> np.ndarray:
        """A numpy view over the start of the pinned memory (no copy); it keeps the memory
        alive even if the buffer grows or is closed."""
        dtype, shape = self._view_size(dtype, shape)
        need = math.prod(shape) * dtype.itemsize
        if need == 0:
            return np.empty(shape, dtype)
        assert self._allocation is not None
        raw = np.asarray(_HostView(self._allocation, need))
        return raw.view(dtype).reshape(shape)


# --------------------------------------------------------------------------------------
# Streams and events
# --------------------------------------------------------------------------------------


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def stream_flags(blocking: bool) -> int:
    """The ``cudaStreamCreateWithFlags`` flags of a :class:`Stream`.

    ``cudaStreamDefault`` (0) for a blocking stream, ``cudaStreamNonBlocking`` otherwise.
    """
    blocking = _flag(blocking, "blocking")
    rt = cuda_runtime()
    return int(rt.cudaStreamDefault if blocking else rt.cudaStreamNonBlocking)


def event_flags(*, timing: bool, blocking_sync: bool) -> int:
    """The ``cudaEventCreateWithFlags`` flags of an :class:`Event`.

    ``cudaEventDisableTiming`` unless ``timing`` (cheaper to record and wait on);
    ``cudaEventBlockingSync`` with ``blocking_sync`` (a host waiting in
    ``cudaEventSynchronize`` sleeps instead of spinning a CPU core).
    """
    timing = _flag(timing, "timing")
    blocking_sync = _flag(blocking_sync, "blocking_sync")
    rt = cuda_runtime()
    flags = int(rt.cudaEventDefault if timing else rt.cudaEventDisableTiming)
    if blocking_sync:
        flags |= int(rt.cudaEventBlockingSync)
    return flags


class Stream:
    """A CUDA stream on one GPU.

    ``blocking=True`` (the default, ``cudaStreamDefault``): work on the stream is ordered
    with the *legacy default stream* in both directions -- it starts only after work queued
    there before it and work queued there later waits for it. That is where CuPy and
    PyTorch put their work unless told otherwise, so a GPU array they refill every frame is
    complete before our work reads it, with no synchronization by the caller. TensorRT
    requests use blocking streams for that reason. Blocking streams do not wait for each
    other, so requests still overlap; the cost is that anything queued on the legacy
    default stream (a plain ``cudaMemcpy``, :meth:`DeviceArray.to_numpy` without a
    stream) also waits for them.

    ``blocking=False`` (``cudaStreamNonBlocking``): no implicit ordering with the legacy
    default stream; whoever shares data with it must order the work themselves (an
    event, or ``DeviceArray.from_object(..., stream=)``).

    Neither orders anything with a per-thread default stream or another library's own
    streams (e.g. a non-default ``torch.cuda.Stream``): such producers must synchronize,
    or hand their arrays over with ``DeviceArray.from_object(obj, stream=...)``.
    """

    def __init__(self, device: int, *, blocking: bool = True) -> None:
        self.device = _device_index(device)
        flags = stream_flags(blocking)
        self.blocking = bool(blocking)
        self.handle = 0
        use_device(self.device)
        handle = check(
            cuda_runtime().cudaStreamCreateWithFlags(flags),
            f"cannot create a CUDA stream on GPU.{self.device}",
        )
        self.handle = int(handle)
        self._finalizer = weakref.finalize(
            self, _release, "cudaStreamDestroy", self.handle, self.device
        )

    def synchronize(self) -> None:
        """Block until everything queued on the stream is done (the GIL is released)."""
        check(
            cuda_runtime().cudaStreamSynchronize(_live(self)),
            f"work on a CUDA stream of GPU.{self.device} failed",
        )

    def close(self) -> None:
        """Destroy the stream (idempotent); work already queued still completes."""
        self.handle = 0
        self._finalizer()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "blocking" if self.blocking else "non-blocking"
        return f"Stream(GPU.{self.device}, {self.handle:#x}, {kind})"


def _live(stream: Stream) -> int:
    """The stream's handle; a closed stream must not silently become the default stream 0."""
    handle = stream.handle
    if not handle:
        raise ModelClosedError(
            f"expected an open CUDA stream, got one of GPU.{stream.device} that was closed"
        )
    return handle


class Event:
    """A CUDA event on one GPU: completion queries, waits and (``timing=True``) timings.

    ``blocking_sync=True`` (the default) creates it with ``cudaEventBlockingSync``, so
    :meth:`synchronize` puts the waiting thread to sleep until the GPU signals completion;
    without it ``cudaEventSynchronize`` busy-waits, holding a CPU core at 100% for the
    whole wait (cuda-python's documentation of ``cudaEventSynchronize``). Waking costs a
    little latency, so events that are never waited on by the host (only
    ``cudaStreamWaitEvent`` or :meth:`query`) are cheaper with ``blocking_sync=False``.
    """

    def __init__(self, device: int, timing: bool = False, *, blocking_sync: bool = True) -> None:
        self.device = _device_index(device)
        flags = event_flags(timing=timing, blocking_sync=blocking_sync)
        self.timing = bool(timing)
        self.blocking_sync = bool(blocking_sync)
        self.handle = 0
        use_device(self.device)
        handle = check(
            cuda_runtime().cudaEventCreateWithFlags(flags),
            f"cannot create a CUDA event on GPU.{self.device}",
        )
        self.handle = int(handle)
        self._finalizer = weakref.finalize(
            self, _release, "cudaEventDestroy", self.handle, self.device
        )

    def _live(self) -> int:
        if not self.handle:
            raise ModelClosedError(
                f"expected an open CUDA event, got one of GPU.{self.device} that was closed"
            )
        return self.handle

    def record(self, stream: Stream) -> None:
        """Mark the point reached by the work queued on ``stream`` so far."""
        handle = self._live()
        if stream.device != self.device:
            raise InvalidInputError(
                f"an event of GPU.{self.device} can only be recorded on a stream of the same "
                f"GPU, got a stream of GPU.{stream.device}"
            )
        use_device(self.device)
        check(
            cuda_runtime().cudaEventRecord(handle, _live(stream)),
            f"cannot record a CUDA event on GPU.{self.device}",
        )

    def query(self) -> bool:
        """True when the recorded work is complete (or nothing was recorded)."""
        result = cuda_runtime().cudaEventQuery(self._live())
        if result[0] == 0:
            return True
        if _is_error(result, "cudaErrorNotReady"):
            return False
        check(result, f"work before a CUDA event on GPU.{self.device} failed")
        return False  # pragma: no cover - check raised

    def synchronize(self) -> None:
        """Block until the recorded work is complete (cuda-python releases the GIL); the
        thread sleeps with ``blocking_sync``, else it spins."""
        check(
            cuda_runtime().cudaEventSynchronize(self._live()),
            f"work before a CUDA event on GPU.{self.device} failed",
        )

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds from ``start`` to this event; both recorded, complete, and timing."""
        if not (self.timing and start.timing):
            raise InvalidInputError(
                "elapsed_ms needs two events made with timing=True, got "
                f"start timing={start.timing} and end timing={self.timing}"
            )
        return float(
            check(
                cuda_runtime().cudaEventElapsedTime(start._live(), self._live()),
                f"cannot time two CUDA events on GPU.{self.device}",
            )
        )

    def close(self) -> None:
        """Destroy the event (idempotent)."""
        self.handle = 0
        self._finalizer()

    def __repr__(self) -> str:
        return (
            f"Event(GPU.{self.device}, {self.handle:#x}, timing={self.timing}, "
            f"blocking_sync={self.blocking_sync})"
        )


# --------------------------------------------------------------------------------------
# Copies
# --------------------------------------------------------------------------------------


def _pointer(ptr: Any, what: str) -> int:
    if isinstance(ptr, bool) or not isinstance(ptr, (int, np.integer)) or ptr <= 0:
        raise InvalidInputError(f"{what} must be a non-null pointer (an int > 0), got {ptr!r}")
    return int(ptr)


def copy_to_device(dst_ptr: int, src: np.ndarray, stream: Stream) -> None:
    """Queue a host-to-device copy of ``src`` (C-contiguous) to ``dst_ptr`` on ``stream``.

    From pinned memory the copy is truly asynchronous: keep ``src`` unchanged until the
    stream is synchronized. From pageable memory CUDA stages it and ``src`` may be reused on
    return.
    """
    if not isinstance(src, np.ndarray):
        raise InvalidInputError(f"expected a numpy array to copy, got {type(src).__name__}")
    if not src.flags.c_contiguous:
        raise InvalidInputError(
            f"expected a C-contiguous array to copy, got strides {src.strides} for shape "
            f"{src.shape}; use np.ascontiguousarray first"
        )
    nbytes = src.nbytes
    if nbytes == 0:
        return
    dst_ptr = _pointer(dst_ptr, "dst_ptr")
    handle = _live(stream)
    use_device(stream.device)
    rt = cuda_runtime()
    check(
        rt.cudaMemcpyAsync(
            dst_ptr, src.ctypes.data, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, handle
        ),
        f"cannot copy {nbytes} bytes from the host to GPU.{stream.device} at {dst_ptr:#x}",
    )


def copy_to_host(dst: np.ndarray, src_ptr: int, stream: Stream) -> None:
    """Queue a device-to-host copy of ``dst.nbytes`` bytes at ``src_ptr`` into ``dst``
    (C-contiguous, writable) on ``stream``; ``dst`` is complete once the stream syncs."""
    if not isinstance(dst, np.ndarray):
        raise InvalidInputError(f"expected a numpy array to copy into, got {type(dst).__name__}")
    if not dst.flags.c_contiguous or not dst.flags.writeable:
        raise InvalidInputError(
            "expected a C-contiguous, writable array to copy into, got "
            f"c_contiguous={dst.flags.c_contiguous}, writeable={dst.flags.writeable}"
        )
    nbytes = dst.nbytes
    if nbytes == 0:
        return
    src_ptr = _pointer(src_ptr, "src_ptr")
    handle = _live(stream)
    use_device(stream.device)
    rt = cuda_runtime()
    check(
        rt.cudaMemcpyAsync(
            dst.ctypes.data, src_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, handle
        ),
        f"cannot copy {nbytes} bytes from GPU.{stream.device} at {src_ptr:#x} to the host",
    )


def copy_on_device(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    """Queue a device-to-device copy of ``nbytes`` on ``stream`` (also between GPUs)."""
    nbytes = _nbytes(nbytes)
    if nbytes == 0:
        return
    dst_ptr = _pointer(dst_ptr, "dst_ptr")
    src_ptr = _pointer(src_ptr, "src_ptr")
    handle = _live(stream)
    use_device(stream.device)
    rt = cuda_runtime()
    # cudaMemcpyDefault: unified addressing tells the devices apart, so peer copies work.
    check(
        rt.cudaMemcpyAsync(dst_ptr, src_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDefault, handle),
        f"cannot copy {nbytes} bytes on GPU.{stream.device} from {src_ptr:#x} to {dst_ptr:#x}",
    )


# --------------------------------------------------------------------------------------
# Foreign arrays: DLPack and the CUDA array interface, parsed without a GPU
# --------------------------------------------------------------------------------------

# DLDeviceType values (dlpack.h).
KDL_CPU = 1
KDL_CUDA = 2
KDL_CUDA_HOST = 3
KDL_CUDA_MANAGED = 13
_DEVICE_TYPE_NAMES = {
    1: "kDLCPU",
    2: "kDLCUDA",
    3: "kDLCUDAHost",
    4: "kDLOpenCL",
    7: "kDLVulkan",
    8: "kDLMetal",
    9: "kDLVPI",
    10: "kDLROCM",
    11: "kDLROCMHost",
    12: "kDLExtDev",
    13: "kDLCUDAManaged",
    14: "kDLOneAPI",
    15: "kDLWebGPU",
    16: "kDLHexagon",
    17: "kDLMAIA",
    18: "kDLTrn",
}
_HOST_DEVICE_TYPES = frozenset({KDL_CPU, KDL_CUDA_HOST})
_CUDA_DEVICE_TYPES = frozenset({KDL_CUDA, KDL_CUDA_MANAGED})


def _dlpack_dtypes() -> dict[tuple[int, int], np.dtype]:
    """(DLDataTypeCode, bits) -> numpy dtype, for the byte-sized types numpy can hold."""
    table: dict[tuple[int, int], np.dtype] = {}
    for bits in (8, 16, 32, 64):
        table[(0, bits)] = np.dtype(f"int{bits}")
        table[(1, bits)] = np.dtype(f"uint{bits}")
    for bits in (16, 32, 64):
        table[(2, bits)] = np.dtype(f"float{bits}")
    table[(5, 64)] = np.dtype(np.complex64)
    table[(5, 128)] = np.dtype(np.complex128)
    table[(6, 8)] = np.dtype(np.bool_)
    table[(4, 16)] = np.dtype(ml_dtypes.bfloat16)
    # The FP8 codes; getattr because older ml_dtypes lack some of them.
    for code, name in (
        (7, "float8_e3m4"),
        (8, "float8_e4m3"),
        (9, "float8_e4m3b11fnuz"),
        (10, "float8_e4m3fn"),
        (11, "float8_e4m3fnuz"),
        (12, "float8_e5m2"),
        (13, "float8_e5m2fnuz"),
        (14, "float8_e8m0fnu"),
    ):
        scalar = getattr(ml_dtypes, name, None)
        if scalar is not None:
            table[(code, 8)] = np.dtype(scalar)
    return table


_DLPACK_DTYPES = _dlpack_dtypes()


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", _DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


# Our own prototypes (not ctypes.pythonapi's shared function objects, whose argtypes other
# code may set differently). PYFUNCTYPE: called with the GIL held, Python errors propagate.
_capsule_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi)
)
_capsule_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)
_capsule_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_void_p)(
    ("PyCapsule_SetName", ctypes.pythonapi)
)
_capsule_get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(
    ("PyCapsule_GetName", ctypes.pythonapi)
)
# The deleter is plain C: called without the GIL, as producers expect (they take it
# themselves when they need it).
_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

# PyCapsule_SetName keeps the pointer, not a copy: the name must outlive every capsule
# renamed, so it is made immortal (one small buffer, never freed).
_USED_NAME = ctypes.create_string_buffer(b"used_dltensor")
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_USED_NAME))


def _call_deleter(managed: int, deleter: int) -> None:
    """Finalizer of a consumed DLPack tensor: hand it back to its producer; never raises."""
    with contextlib.suppress(Exception):
        _DELETER(deleter)(managed)


class DLPackOwner:
    """Owns one consumed ``DLManagedTensor``: its producer's deleter runs exactly once,
    on :meth:`release` or when this object is dropped."""

    __slots__ = ("__weakref__", "_finalizer")

    def __init__(self, managed: int, deleter: int | None) -> None:
        self._finalizer = (
            weakref.finalize(self, _call_deleter, managed, deleter) if deleter else None
        )

    @property
    def released(self) -> bool:
        """Whether the producer has been given the tensor back."""
        return self._finalizer is None or not self._finalizer.alive

    def release(self) -> None:
        """Call the producer's deleter now (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()


@dataclass(frozen=True)
class ForeignArray:
    """A plain description of another library's array memory, as DLPack or the CUDA array
    interface gave it. ``owner`` keeps that memory alive (drop it to give it back)."""

    ptr: int  # the first element (DLPack byte_offset applied)
    device_type: int  # DLPack's DLDeviceType: 1 CPU, 2 CUDA, 3 CUDA host, 13 CUDA managed
    device_id: int  # -1 when the source does not say (the CUDA array interface)
    shape: tuple[int, ...]
    strides: tuple[int, ...] | None  # in elements; None: C-contiguous by the source's word
    dtype: np.dtype
    owner: object = None
    readonly: bool = False
    stream: int | None = None  # CUDA array interface v3: the producer's stream, if any

    @property
    def device_name(self) -> str:
        """DLPack's name for the device type (``"kDLCUDA"``)."""
        return _DEVICE_TYPE_NAMES.get(self.device_type, f"DLPack device type {self.device_type}")

    @property
    def c_contiguous(self) -> bool:
        """Whether the elements are laid out densely in C order."""
        return _c_contiguous(self.shape, self.strides)


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


def read_dlpack_capsule(capsule: Any) -> ForeignArray:
    """Consume a legacy ``"dltensor"`` capsule: rename it ``"used_dltensor"`` as the protocol
    requires and describe its tensor. The result's ``owner`` (a :class:`DLPackOwner`) calls
    the producer's deleter exactly once, when it is dropped or released."""
    if not _capsule_is_valid(capsule, b"dltensor"):
        if _capsule_is_valid(capsule, b"used_dltensor"):
            raise InvalidInputError(
                "expected an unconsumed DLPack capsule, got one already consumed "
                "('used_dltensor'); call __dlpack__() again for a fresh one"
            )
        name = _capsule_get_name(capsule) if type(capsule).__name__ == "PyCapsule" else None
        raise InvalidInputError(
            "expected a legacy DLPack capsule named 'dltensor', got "
            + (f"a capsule named {name!r}" if name is not None else type(capsule).__name__)
        )
    address = _capsule_get_pointer(capsule, b"dltensor")
    if not address:
        raise InvalidInputError("expected a DLPack capsule holding a tensor, got a null one")
    # From here we own the tensor: rename first so the capsule's destructor leaves it to us.
    if _capsule_set_name(capsule, ctypes.addressof(_USED_NAME)) != 0:  # pragma: no cover
        raise InvalidInputError("cannot mark the DLPack capsule as consumed")
    managed = _DLManagedTensor.from_address(address)
    owner = DLPackOwner(address, managed.deleter)
    try:
        return _describe_dltensor(managed.dl_tensor, owner)
    except BaseException:
        owner.release()  # a tensor we refuse goes back to its producer now
        raise


def _describe_dltensor(tensor: _DLTensor, owner: DLPackOwner) -> ForeignArray:
    ndim = int(tensor.ndim)
    if ndim < 0:
        raise InvalidInputError(f"expected a DLPack tensor with ndim >= 0, got ndim={ndim}")
    shape = tuple(int(tensor.shape[i]) for i in range(ndim))
    strides = tuple(int(tensor.strides[i]) for i in range(ndim)) if tensor.strides else None
    code, bits, lanes = int(tensor.dtype.code), int(tensor.dtype.bits), int(tensor.dtype.lanes)
    dtype = _DLPACK_DTYPES.get((code, bits))
    if dtype is None or lanes != 1:
        raise InvalidInputError(
            "expected a DLPack element type numpy can hold (int/uint 8-64, float 16-64, "
            f"bfloat16, bool, complex, FP8; one lane), got code={code}, bits={bits}, "
            f"lanes={lanes}"
        )
    device = tensor.device
    return ForeignArray(
        ptr=int(tensor.data or 0) + int(tensor.byte_offset),
        device_type=int(device.device_type),
        device_id=int(device.device_id),
        shape=shape,
        strides=strides,
        dtype=dtype,
        owner=owner,
    )


def _export_dlpack(obj: Any, stream: int | None) -> tuple[Any, bool]:
    """``obj.__dlpack__(stream=stream)``, or ``obj.__dlpack__()`` for producers older than
    the array-API protocol; the flag says whether the producer was given the stream."""
    export = getattr(obj, "__dlpack__", None)
    if export is None:
        raise InvalidInputError(f"expected an object with __dlpack__, got {type(obj).__name__}")
    try:
        try:
            return export(stream=stream), True
        except TypeError:
            return export(), False
    except Exception as exc:
        raise InvalidInputError(
            f"{type(obj).__name__}.__dlpack__() refused to export its data: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def read_dlpack(obj: Any, stream: int | None = None) -> ForeignArray:
    """Export ``obj`` through ``obj.__dlpack__`` and consume the capsule.

    ``stream`` goes to the producer as the protocol's ``stream=`` (None: the legacy default
    stream); a producer that takes no ``stream`` argument is asked without one.
    """
    capsule, _ = _export_dlpack(obj, stream)
    return read_dlpack_capsule(capsule)


_CAI_KINDS = frozenset("biufc")


def read_cuda_array_interface(obj: Any) -> ForeignArray:
    """Describe the memory ``obj.__cuda_array_interface__`` (versions 2 and 3) gives, or a
    dict of that form; ``owner`` is ``obj``. The device is not part of the interface:
    ``device_id`` is -1 (the pointer's attributes tell it, on a GPU)."""
    interface = obj if isinstance(obj, dict) else getattr(obj, "__cuda_array_interface__", None)
    if not isinstance(interface, dict):
        raise InvalidInputError(
            f"expected an object with a __cuda_array_interface__ dict, got {type(obj).__name__}"
        )
    missing = [key for key in ("shape", "typestr", "data") if key not in interface]
    if missing:
        raise InvalidInputError(
            f"expected __cuda_array_interface__ with 'shape', 'typestr' and 'data', got keys "
            f"{sorted(interface)} (missing {missing})"
        )
    if interface.get("mask") is not None:
        raise InvalidInputError(
            "expected __cuda_array_interface__ without a mask, got a masked array"
        )
    shape = _shape(interface["shape"])
    try:
        dtype = np.dtype(interface["typestr"])
    except TypeError as exc:
        raise InvalidInputError(
            f"expected a numpy typestr in __cuda_array_interface__, got {interface['typestr']!r}"
        ) from exc
    if dtype.kind not in _CAI_KINDS or not dtype.isnative:
        raise InvalidInputError(
            "expected a native-endian bool, int, uint, float or complex typestr in "
            f"__cuda_array_interface__, got {interface['typestr']!r}"
        )
    data = interface["data"]
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise InvalidInputError(
            f"expected __cuda_array_interface__ 'data' as (pointer, readonly), got {data!r}"
        )
    ptr, readonly = data
    if isinstance(ptr, bool) or not isinstance(ptr, (int, np.integer)) or ptr < 0:
        raise InvalidInputError(f"expected an int device pointer in 'data', got {ptr!r}")
    strides = interface.get("strides")
    if strides is not None:
        byte_strides = tuple(int(stride) for stride in strides)
        if len(byte_strides) != len(shape) or any(s % dtype.itemsize for s in byte_strides):
            raise InvalidInputError(
                f"expected one byte stride per dimension of {shape}, each a multiple of the "
                f"{dtype.itemsize}-byte element, got strides {tuple(strides)}"
            )
        strides = tuple(stride // dtype.itemsize for stride in byte_strides)
    stream = interface.get("stream")
    if stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream <= 0:
            raise InvalidInputError(
                "expected __cuda_array_interface__ 'stream' to be None or a stream handle "
                f"(1 legacy, 2 per-thread, else a cudaStream_t), got {stream!r}"
            )
        stream = int(stream)
    return ForeignArray(
        ptr=int(ptr),
        device_type=KDL_CUDA,
        device_id=-1,
        shape=shape,
        strides=strides,
        dtype=dtype,
        owner=obj,
        readonly=bool(readonly),
        stream=stream,
    )


def _on_host_error(obj: Any, where: str) -> InvalidInputError:
    return InvalidInputError(
        f"expected GPU data (CuPy, a PyTorch CUDA tensor, ...), got {type(obj).__name__} "
        f"with its data on the CPU ({where}); pass CPU arrays as numpy through "
        "runtime.tensor_from_numpy(array)"
    )


def _check_layout(obj: Any, foreign: ForeignArray) -> None:
    if not foreign.c_contiguous:
        raise InvalidInputError(
            f"expected a C-contiguous GPU array, got {type(obj).__name__} of shape "
            f"{foreign.shape} with strides {foreign.strides} (in elements); make it "
            "contiguous first (e.g. .contiguous() / cupy.ascontiguousarray)"
        )


def _pointer_device(obj: Any, ptr: int) -> int:
    """The GPU holding ``ptr`` (CUDA array interface data carries no device)."""
    rt = cuda_runtime()
    if ptr == 0:  # an empty array: no memory, so the current device will do
        return int(check(rt.cudaGetDevice(), "cannot read the current CUDA device"))
    attributes = check(
        rt.cudaPointerGetAttributes(ptr),
        f"cannot tell which GPU holds the memory of {type(obj).__name__} at {ptr:#x}",
    )
    kind = getattr(attributes.type, "name", str(attributes.type))
    if kind in ("cudaMemoryTypeHost", "cudaMemoryTypeUnregistered"):
        raise _on_host_error(obj, f"__cuda_array_interface__ points at {kind} memory")
    return int(attributes.device)


def _order_after_producer(producer: int, device: int, stream: Stream | None) -> None:
    """Make our work wait for the producer's stream: on ``stream`` without blocking the host
    when given, else by synchronizing the producer's stream."""
    rt = cuda_runtime()
    use_device(device)
    if stream is None:
        check(
            rt.cudaStreamSynchronize(producer),
            f"waiting for the producer's stream {producer:#x} on GPU.{device} failed",
        )
        return
    event = Event(device, blocking_sync=False)  # only a stream waits on it: no host wake-up
    try:
        check(
            rt.cudaEventRecord(event.handle, producer),
            f"cannot record an event on the producer's stream {producer:#x} on GPU.{device}",
        )
        check(
            rt.cudaStreamWaitEvent(_live(stream), event.handle, 0),
            f"cannot order GPU.{device} stream {stream.handle:#x} after the producer's",
        )
    finally:
        event.close()  # safe while the wait is pending: CUDA frees it once it completes


# --------------------------------------------------------------------------------------
# DeviceArray
# --------------------------------------------------------------------------------------


class DeviceArray:
    """A typed, C-contiguous view of device memory on one GPU.

    ``owner`` keeps the memory alive: the source object, the consumed DLPack tensor, or a
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
        self.shape = _shape(shape)
        self.dtype = _dtype(dtype)
        self.device = _device_index(device)
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
    def from_object(cls, obj: Any, *, stream: Stream | None = None) -> DeviceArray:
        """Wrap another library's GPU array without copying.

        ``obj`` has ``__dlpack__`` (CuPy, PyTorch CUDA tensors, JAX, ...) or
        ``__cuda_array_interface__``; the result points at its memory and keeps it alive.
        With ``stream``, the producer's pending writes are ordered before work on that
        stream; without it the host waits for them (see the module docstring). CPU data,
        non-C-contiguous arrays and element types numpy cannot hold raise
        :class:`InvalidInputError`.
        """
        if isinstance(obj, DeviceArray):
            return cls(obj.ptr, obj.shape, obj.dtype, obj.device, obj.owner, readonly=obj.readonly)
        if stream is not None:
            _live(stream)
        where = getattr(obj, "__dlpack_device__", None)
        device_type = None
        if where is not None:
            try:
                device_type, device_id = (int(value) for value in where())
            except Exception as exc:
                raise InvalidInputError(
                    f"expected {type(obj).__name__}.__dlpack_device__() to give (device "
                    f"type, device id), it raised {type(exc).__name__}: {exc}"
                ) from exc
            if device_type in _HOST_DEVICE_TYPES:
                name = _DEVICE_TYPE_NAMES[device_type]
                raise _on_host_error(obj, f"DLPack device {name}")
            if device_type not in _CUDA_DEVICE_TYPES:
                name = _DEVICE_TYPE_NAMES.get(device_type, f"DLPack device type {device_type}")
                raise InvalidInputError(
                    f"expected data on an NVIDIA GPU (DLPack kDLCUDA), got "
                    f"{type(obj).__name__} on {name}"
                )
            if stream is not None and device_type == KDL_CUDA and stream.device != device_id:
                # Checked before exporting: the producer would be handed a foreign stream.
                raise InvalidInputError(
                    f"expected a stream of GPU.{device_id}, where {type(obj).__name__}'s "
                    f"data is, got a stream of GPU.{stream.device}"
                )
        if hasattr(obj, "__dlpack__"):
            return cls._from_dlpack(obj, stream)
        try:
            has_interface = hasattr(obj, "__cuda_array_interface__")
        except Exception:  # e.g. torch raises for CPU tensors; treated as absent
            has_interface = False
        if has_interface:
            return cls._from_cuda_array_interface(obj, stream)
        if isinstance(obj, np.ndarray) or hasattr(obj, "__array_interface__"):
            raise _on_host_error(obj, "a numpy-style host array")
        raise InvalidInputError(
            "expected a GPU array with __dlpack__ or __cuda_array_interface__ (CuPy, a "
            f"PyTorch CUDA tensor, ...), got {type(obj).__name__}"
        )

    @classmethod
    def _from_dlpack(cls, obj: Any, stream: Stream | None) -> DeviceArray:
        capsule, took_stream = _export_dlpack(obj, None if stream is None else stream.handle)
        foreign = read_dlpack_capsule(capsule)
        del capsule  # renamed 'used_dltensor': its destructor leaves the tensor to us
        owner = foreign.owner
        assert isinstance(owner, DLPackOwner)
        try:
            if foreign.device_type in _HOST_DEVICE_TYPES:
                raise _on_host_error(obj, f"DLPack device {foreign.device_name}")
            if foreign.device_type not in _CUDA_DEVICE_TYPES:
                raise InvalidInputError(
                    f"expected data on an NVIDIA GPU (DLPack kDLCUDA), got "
                    f"{type(obj).__name__} on {foreign.device_name}"
                )
            _check_layout(obj, foreign)
            device = foreign.device_id
            if stream is not None and stream.device != device:
                raise InvalidInputError(
                    f"expected a stream of GPU.{device}, where {type(obj).__name__}'s data "
                    f"is, got a stream of GPU.{stream.device}"
                )
            if stream is None or not took_stream:
                # The producer ordered its writes on the legacy default stream (or, asked
                # without a stream, promised nothing). A blocking Stream would wait for that
                # stream, but the array may go anywhere (a non-blocking stream, another
                # library), so the host waits here once.
                use_device(device)
                check(
                    cuda_runtime().cudaStreamSynchronize(cuda_runtime().cudaStreamLegacy),
                    f"waiting for {type(obj).__name__}'s pending work on GPU.{device} failed",
                )
        except BaseException:
            owner.release()
            raise
        return cls(foreign.ptr, foreign.shape, foreign.dtype, device, owner)

    @classmethod
    def _from_cuda_array_interface(cls, obj: Any, stream: Stream | None) -> DeviceArray:
        foreign = read_cuda_array_interface(obj)
        _check_layout(obj, foreign)
        device = _pointer_device(obj, foreign.ptr)
        if stream is not None and stream.device != device:
            raise InvalidInputError(
                f"expected a stream of GPU.{device}, where {type(obj).__name__}'s data is, "
                f"got a stream of GPU.{stream.device}"
            )
        if foreign.stream is not None:
            _order_after_producer(foreign.stream, device, stream)
        return cls(
            foreign.ptr, foreign.shape, foreign.dtype, device, obj, readonly=foreign.readonly
        )

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
        new_shape = _shape(dims)
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
        blocking streams, :class:`Stream`'s default, but not on ``blocking=False`` ones):
        pass the stream that wrote the data to order the copy after it.
        """
        out = np.empty(self.shape, self.dtype)
        if self.nbytes == 0:
            return out
        if stream is not None:
            copy_to_host(out, self.ptr, stream)
            stream.synchronize()
            return out
        use_device(self.device)
        rt = cuda_runtime()
        check(
            rt.cudaMemcpy(
                out.ctypes.data, self.ptr, self.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            ),
            f"cannot copy {self.nbytes} bytes from GPU.{self.device} at {self.ptr:#x} to the host",
        )
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
