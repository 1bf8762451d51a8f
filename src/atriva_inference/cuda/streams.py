"""CUDA streams and events on one GPU (``cuda.core``'s, with the defaults inference needs),
and the copies queued on a stream.

Every call that creates, records or copies first makes the object's GPU current
(:func:`~atriva_inference.cuda.devices.use_device`), so a stream made for GPU.1 works from
any thread. ``close()`` is idempotent and ``cuda.core`` frees what is dropped without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelClosedError
from . import _checks
from ._core import call, cuda_core, driver, translated
from .devices import use_device

__all__ = [
    "Event",
    "Stream",
    "copy_on_device",
    "copy_to_device",
    "copy_to_host",
    "event_options",
    "stream_options",
    "synchronize_stream",
]

#: The legacy default stream's handle in the CUDA API and in DLPack's ``stream=``.
LEGACY_STREAM = 1


def stream_options(blocking: bool) -> Any:
    """The ``cuda.core.StreamOptions`` of a :class:`Stream`: ``nonblocking=not blocking``."""
    blocking = _checks.flag(blocking, "blocking")
    return cuda_core().StreamOptions(nonblocking=not blocking)


def event_options(*, timing: bool, blocking_sync: bool) -> Any:
    """The ``cuda.core.EventOptions`` of an :class:`Event`.

    Timing off unless ``timing`` (cheaper to record and wait on); ``blocking_sync``: a host
    waiting on the event sleeps instead of spinning a CPU core.
    """
    timing = _checks.flag(timing, "timing")
    blocking_sync = _checks.flag(blocking_sync, "blocking_sync")
    return cuda_core().EventOptions(timing_enabled=timing, blocking_sync=blocking_sync)


class Stream:
    """A CUDA stream on one GPU (a ``cuda.core.Stream``, as :attr:`core`).

    ``blocking=True`` (the default; ``cuda.core`` makes non-blocking streams unless told):
    work on the stream is ordered with the *legacy default stream* in both directions -- it
    starts only after work queued there before it, and work queued there later waits for
    it. That is where CuPy and PyTorch put their work unless told otherwise, so a GPU array
    they refill every frame is complete before our work reads it, with no synchronization
    by the caller. TensorRT requests use blocking streams for that reason. Blocking streams
    do not wait for each other, so requests still overlap; the cost is that anything queued
    on the legacy default stream (:meth:`DeviceArray.to_numpy` without a stream) also waits
    for them.

    ``blocking=False``: no implicit ordering with the legacy default stream; whoever shares
    data with it must order the work themselves (an event, or
    ``DeviceArray.from_object(..., stream=)``). Neither orders anything with a per-thread
    default stream or another library's own streams (e.g. a non-default
    ``torch.cuda.Stream``): hand such arrays over with ``DeviceArray.from_object(obj,
    stream=...)``.
    """

    def __init__(self, device: int, *, blocking: bool = True) -> None:
        self.device = _checks.device_index(device)
        options = stream_options(blocking)
        self.blocking = bool(blocking)
        self.handle = 0
        gpu = use_device(self.device)
        with translated(f"cannot create a CUDA stream on GPU.{self.device}"):
            self.core = gpu.create_stream(options=options)
            #: The ``cudaStream_t`` as an int, what TensorRT and the copies take; 0 once closed.
            self.handle = int(self.core.handle)

    def live(self) -> int:
        """The handle; a closed stream must not silently become the default stream 0."""
        if not self.handle:
            raise ModelClosedError(
                f"expected an open CUDA stream, got one of GPU.{self.device} that was closed"
            )
        return self.handle

    def synchronize(self) -> None:
        """Block until everything queued on the stream is done (the GIL is released)."""
        self.live()
        use_device(self.device)  # a thread may have no context yet (a pool's, a GC's)
        with translated(f"work on a CUDA stream of GPU.{self.device} failed"):
            self.core.sync()

    def close(self) -> None:
        """Destroy the stream (idempotent); work already queued still completes."""
        if self.handle:
            self.handle = 0
            with translated(f"cannot destroy a CUDA stream of GPU.{self.device}"):
                self.core.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "blocking" if self.blocking else "non-blocking"
        return f"Stream(GPU.{self.device}, {self.handle:#x}, {kind})"


class Event:
    """A CUDA event on one GPU (a ``cuda.core.Event``, as :attr:`core`): completion
    queries, waits and (``timing=True``) timings.

    ``blocking_sync=True`` (the default; ``cuda.core``'s is to spin) makes a host thread in
    :meth:`synchronize` sleep until the GPU signals completion; without it the wait
    busy-loops, holding a CPU core at 100% for the whole wait. Waking costs a little
    latency, so events the host never waits on (only queried, or waited on by a stream)
    are cheaper with ``blocking_sync=False``.
    """

    def __init__(self, device: int, timing: bool = False, *, blocking_sync: bool = True) -> None:
        self.device = _checks.device_index(device)
        options = event_options(timing=timing, blocking_sync=blocking_sync)
        self.timing = bool(timing)
        self.blocking_sync = bool(blocking_sync)
        self._open = False
        gpu = use_device(self.device)
        with translated(f"cannot create a CUDA event on GPU.{self.device}"):
            self.core = gpu.create_event(options=options)
        self._open = True

    def _live(self) -> Any:
        if not self._open:
            raise ModelClosedError(
                f"expected an open CUDA event, got one of GPU.{self.device} that was closed"
            )
        return self.core

    def record(self, stream: Stream) -> None:
        """Mark the point reached by the work queued on ``stream`` so far."""
        event = self._live()
        if stream.device != self.device:
            raise InvalidInputError(
                f"an event of GPU.{self.device} can only be recorded on a stream of the same "
                f"GPU, got a stream of GPU.{stream.device}"
            )
        stream.live()
        use_device(self.device)
        with translated(f"cannot record a CUDA event on GPU.{self.device}"):
            stream.core.record(event)

    def query(self) -> bool:
        """True when the recorded work is complete (or nothing was recorded)."""
        event = self._live()
        use_device(self.device)
        with translated(f"work before a CUDA event on GPU.{self.device} failed"):
            return bool(event.is_done)

    def synchronize(self) -> None:
        """Block until the recorded work is complete (the GIL is released); the thread
        sleeps with ``blocking_sync``, else it spins."""
        event = self._live()
        use_device(self.device)
        with translated(f"work before a CUDA event on GPU.{self.device} failed"):
            event.sync()

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds from ``start`` to this event; both recorded, complete, and timing."""
        if not (self.timing and start.timing):
            raise InvalidInputError(
                "elapsed_ms needs two events made with timing=True, got "
                f"start timing={start.timing} and end timing={self.timing}"
            )
        end, begin = self._live(), start._live()
        with translated(f"cannot time two CUDA events on GPU.{self.device}"):
            return float(end - begin)

    def close(self) -> None:
        """Destroy the event (idempotent)."""
        if self._open:
            self._open = False
            with translated(f"cannot destroy a CUDA event of GPU.{self.device}"):
                self.core.close()

    def __repr__(self) -> str:
        state = "" if self._open else ", closed"
        return (
            f"Event(GPU.{self.device}, timing={self.timing}, "
            f"blocking_sync={self.blocking_sync}{state})"
        )


def synchronize_stream(device: int, handle: int, what: str) -> None:
    """Wait on the host for stream ``handle`` of GPU ``device`` (another library's, or the
    legacy default stream: :data:`LEGACY_STREAM`)."""
    use_device(device)
    drv = driver()
    call(what, drv.cuStreamSynchronize, drv.CUstream(handle))


# cuda.core copies only between its Buffer objects; our callers hold addresses (TensorRT's
# bindings, offsets into buffers, numpy arrays), so the driver's unified-addressing copy is
# called directly: it tells host, device and peer memory apart by the pointers.
def _copy(dst: int, src: int, nbytes: int, stream: Stream, what: str) -> None:
    handle = stream.live()
    use_device(stream.device)
    drv = driver()
    call(what, drv.cuMemcpyAsync, dst, src, nbytes, drv.CUstream(handle))


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
    if src.nbytes == 0:
        return
    dst_ptr = _checks.pointer(dst_ptr, "dst_ptr")
    what = f"cannot copy {src.nbytes} bytes from the host to GPU.{stream.device} at {dst_ptr:#x}"
    _copy(dst_ptr, src.ctypes.data, src.nbytes, stream, what)


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
    if dst.nbytes == 0:
        return
    src_ptr = _checks.pointer(src_ptr, "src_ptr")
    what = f"cannot copy {dst.nbytes} bytes from GPU.{stream.device} at {src_ptr:#x} to the host"
    _copy(dst.ctypes.data, src_ptr, dst.nbytes, stream, what)


def copy_on_device(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    """Queue a device-to-device copy of ``nbytes`` on ``stream`` (also between GPUs)."""
    nbytes = _checks.byte_count(nbytes)
    if nbytes == 0:
        return
    dst_ptr = _checks.pointer(dst_ptr, "dst_ptr")
    src_ptr = _checks.pointer(src_ptr, "src_ptr")
    what = f"cannot copy {nbytes} bytes on GPU.{stream.device} from {src_ptr:#x} to {dst_ptr:#x}"
    _copy(dst_ptr, src_ptr, nbytes, stream, what)
