"""Device and pinned host buffers: allocated once, reused, grown only when asked for more.

The memory is held as ``cuda.core`` :class:`~cuda.core.Buffer` objects, which free it
exactly once, on ``close()`` of the last holder or when dropped. The allocation itself is
synchronous (``cuMemAlloc``/``cuMemHostAlloc``), through a small memory resource of ours:
``cuda.core``'s device resource is a stream-ordered pool whose frees do not wait for work
on other streams, and these buffers are long-lived and handed to other libraries (their
views outlive growth and ``close()``), so a free must wait as ``cudaFree`` does; the
synchronous resource ``cuda.core`` has is private.

Buffers are not locked: one user at a time (as a backend request is).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelClosedError
from . import _checks
from ._core import call, cuda_core, driver, translated
from .devices import current_context, current_device, restore_context, use_device
from .interop import DeviceArray

__all__ = ["DeviceBuffer", "PinnedBuffer"]


def _free(ptr: int, device: int, pinned: bool) -> None:
    """Free one allocation with its GPU's context current, leaving the thread's context as it
    found it. Runs from garbage collection in any thread or at exit: never raises."""
    with contextlib.suppress(Exception):
        previous = current_context()
        try:
            use_device(device)
            drv = driver()
            (drv.cuMemFreeHost if pinned else drv.cuMemFree)(ptr)
        finally:
            restore_context(previous)


@functools.cache
def _resource_type() -> type:
    """The memory resource class; made on first use because it subclasses ``cuda.core``'s."""
    core = cuda_core()

    class SynchronousMemory(core.MemoryResource):  # type: ignore[misc,name-defined]
        """Device memory of one GPU, or page-locked host memory (portable across GPUs),
        allocated and freed synchronously."""

        def __init__(self, device: int, pinned: bool) -> None:
            self._device = device
            self._pinned = pinned

        def allocate(self, size: int, *, stream: Any = None) -> Any:
            drv = driver()
            use_device(self._device)  # also what the buffer's deallocation stream needs
            if self._pinned:
                what = f"cannot allocate {size} bytes of pinned host memory"
                ptr = call(what, drv.cuMemHostAlloc, size, drv.CU_MEMHOSTALLOC_PORTABLE)
            else:
                what = f"cannot allocate {size} bytes of device memory on GPU.{self._device}"
                ptr = call(what, drv.cuMemAlloc, size)
            try:
                with translated(what):
                    return core.Buffer.from_handle(int(ptr), size, mr=self)
            except BaseException:
                _free(int(ptr), self._device, self._pinned)
                raise

        def deallocate(self, ptr: Any, size: int, *, stream: Any = None) -> None:
            _free(int(ptr), self._device, self._pinned)

        @property
        def is_device_accessible(self) -> bool:
            return True

        @property
        def is_host_accessible(self) -> bool:
            return self._pinned

        @property
        def device_id(self) -> int:
            return -1 if self._pinned else self._device

    return SynchronousMemory


class _Buffer:
    """What device and pinned buffers share: grow-only allocation, checked views, release."""

    _what = "buffer"  # how messages name it

    def __init__(self, device: int, pinned: bool) -> None:
        self.ptr = 0
        self.nbytes = 0
        #: The ``cuda.core.Buffer`` holding the memory (None when empty or closed).
        self.allocation: Any = None
        self._resource = _resource_type()(device, pinned)
        self._closed = False

    def _allocate(self, nbytes: int) -> None:
        # Drop the old allocation first so the peak stays at the new size (views keep theirs).
        self.allocation = None
        self.ptr = 0
        self.nbytes = 0
        if nbytes == 0:
            return
        self.allocation = self._resource.allocate(nbytes)
        self.ptr = int(self.allocation.handle)
        self.nbytes = nbytes

    def ensure(self, nbytes: int) -> int:
        """At least ``nbytes`` of capacity; returns ``ptr``. Reallocates only to grow."""
        nbytes = _checks.byte_count(nbytes)
        if self._closed:
            raise ModelClosedError(
                f"this {self._what} was closed; expected an open one to hold {nbytes} bytes"
            )
        if nbytes > self.nbytes:
            self._allocate(nbytes)
        return self.ptr

    def _view_size(self, dtype: Any, shape: Sequence[int]) -> tuple[np.dtype, tuple[int, ...]]:
        """``dtype`` and ``shape`` checked against the capacity, for a view of the buffer."""
        dtype = _checks.dtype(dtype)
        shape = _checks.shape(shape)
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
        self.allocation = None
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
        self.device = _checks.device_index(device)
        nbytes = _checks.byte_count(nbytes)
        super().__init__(self.device, pinned=False)
        self._what = f"device buffer (GPU.{self.device})"
        use_device(self.device)  # DeviceUnavailableError here when there is no such GPU
        self._allocate(nbytes)

    def array(self, dtype: Any, shape: Sequence[int]) -> DeviceArray:
        """A :class:`DeviceArray` over the start of this buffer (no copy); it keeps the
        memory alive even if the buffer grows or is closed."""
        dtype, shape = self._view_size(dtype, shape)
        return DeviceArray(self.ptr, shape, dtype, self.device, owner=self.allocation)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.nbytes} bytes at {self.ptr:#x}"
        return f"DeviceBuffer(GPU.{self.device}, {state})"


class _HostView:
    """Exposes pinned memory to numpy; the array made from it keeps the allocation alive."""

    __slots__ = ("__array_interface__", "allocation")

    def __init__(self, allocation: Any, nbytes: int) -> None:
        self.allocation = allocation
        self.__array_interface__ = {
            "version": 3,
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (int(allocation.handle), False),
        }


class PinnedBuffer(_Buffer):
    """Page-locked host memory (portable across GPUs) for fast asynchronous copies."""

    _what = "pinned buffer"

    def __init__(self, nbytes: int) -> None:
        nbytes = _checks.byte_count(nbytes)
        # Made with the calling thread's GPU current (GPU.0 when none is), as the CUDA
        # runtime would: this fails as allocating would where there is no GPU, even for 0.
        device = current_device()
        super().__init__(device, pinned=True)
        use_device(device)
        self._allocate(nbytes)

    def array(self, dtype: Any, shape: Sequence[int]) -> np.ndarray:
        """A numpy view over the start of the pinned memory (no copy); it keeps the memory
        alive even if the buffer grows or is closed."""
        dtype, shape = self._view_size(dtype, shape)
        need = math.prod(shape) * dtype.itemsize
        if need == 0:
            return np.empty(shape, dtype)
        raw = np.asarray(_HostView(self.allocation, need))
        return raw.view(dtype).reshape(shape)
