"""The CUDA GPUs: how many this process sees, what they are, and which one the calling
thread uses -- the one place GPUs are counted, for every backend.

Through ``cuda.core``'s :class:`~cuda.core.Device` (the CUDA driver's view, so
``CUDA_VISIBLE_DEVICES`` applies). Where ``cuda.core`` cannot count them -- cuda-python not
installed, or built for a newer CUDA than the driver -- the driver library itself is asked,
as ONNX Runtime's CUDA provider only needs the driver.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from typing import Any

from ..errors import DeviceUnavailableError, InferenceRuntimeError
from . import _checks
from ._core import call, cuda_core, driver, translated

__all__ = ["GpuProperties", "device_count", "device_properties", "gpu_devices", "use_device"]


def device_count() -> int:
    """How many CUDA GPUs this process sees; 0 without a driver or a GPU (never raises)."""
    try:
        with translated("cannot count the CUDA GPUs"):
            return len(cuda_core().Device.get_all_devices())
    except InferenceRuntimeError:
        return _driver_device_count()


def _driver_device_count() -> int:
    """``cuDeviceGetCount`` straight from the NVIDIA driver library; 0 where there is none."""
    name = (ctypes.util.find_library("nvcuda") or "nvcuda") if os.name == "nt" else "libcuda.so.1"
    try:
        library = ctypes.CDLL(name)
        count = ctypes.c_int(0)
        if library.cuInit(0) != 0 or library.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
    except (OSError, AttributeError):  # no driver library: no NVIDIA GPU here
        return 0
    return count.value


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


def _present() -> str:
    count = device_count()
    if count == 0:
        return "this machine has no usable CUDA GPU"
    return f"expected one of GPU.0..GPU.{count - 1}"


def _device(index: int, what: str) -> Any:
    """``cuda.core.Device(index)``; an index beyond the GPUs present says which there are."""
    core = cuda_core()
    with translated(what):
        try:
            return core.Device(index)
        except ValueError as exc:  # cuda.core: "device_id must be within [0, n)"
            raise DeviceUnavailableError(f"{what}: no such GPU ({_present()}; {exc})") from exc


def use_device(index: int) -> Any:
    """Make GPU ``index`` current for the calling thread (its primary context, shared with
    the CUDA runtime, TensorRT and other libraries); returns its ``cuda.core.Device``."""
    index = _checks.device_index(index)
    what = f"cannot use GPU.{index}"
    device = _device(index, what)
    with translated(what):
        device.set_current()
    return device


def device_properties(index: int) -> GpuProperties:
    """Name, compute capability, memory and UUID of GPU ``index``."""
    index = _checks.device_index(index)
    what = f"cannot read the properties of GPU.{index}"
    device = _device(index, what)
    with translated(what):
        name = str(device.name)
        major, minor = device.compute_capability
        uuid = f"GPU-{device.uuid}"
    drv = driver()
    # cuda.core reports no memory size: the driver is asked (no context needed).
    total = call(what, drv.cuDeviceTotalMem, drv.CUdevice(index))
    return GpuProperties(
        index=index,
        name=name,
        compute_capability=(int(major), int(minor)),
        total_memory=int(total),
        uuid=uuid,
    )


def current_device() -> int:
    """The GPU of the calling thread's current context; 0 when none is current (as the CUDA
    runtime assumes)."""
    core = cuda_core()
    with translated("cannot tell which GPU is current"):
        return int(core.Device().device_id)


def current_context() -> Any:
    """The calling thread's current CUDA context (a ``CUcontext``; null when none)."""
    return call("cannot read the current CUDA context", driver().cuCtxGetCurrent)


def restore_context(context: Any) -> None:
    """Make ``context`` (from :func:`current_context`) current again; never raises (used
    by finalizers)."""
    with contextlib.suppress(Exception):
        driver().cuCtxSetCurrent(context)
