"""The CUDA platform layer, used by the core (GPU tensors), the GPU backends and the
benchmarks; built on NVIDIA's ``cuda.core`` (cuda-python).

* :mod:`~.devices` -- how many GPUs, what they are, which one a thread uses (the one place
  GPUs are counted);
* :mod:`~.memory` -- device and pinned host buffers, grown only when asked;
* :mod:`~.streams` -- blocking streams, events waited on asleep, copies queued on a stream;
* :mod:`~.interop` -- :class:`DeviceArray`: GPU arrays from and to other libraries (DLPack,
  ``__cuda_array_interface__``) without a copy.

Importing it needs no cuda-python: ``cuda.core`` is imported on first use, and its absence
is a :class:`~atriva_inference.errors.BackendUnavailableError` naming the extra to install.
A machine without an NVIDIA driver or GPU is an ordinary case: :func:`device_count` says 0
and anything that needs a GPU raises
:class:`~atriva_inference.errors.DeviceUnavailableError` naming why.
"""

from __future__ import annotations

from ._core import cuda_core
from .devices import GpuProperties, device_count, device_properties, gpu_devices, use_device
from .interop import DeviceArray
from .memory import DeviceBuffer, PinnedBuffer
from .streams import Event, Stream, copy_on_device, copy_to_device, copy_to_host

__all__ = [
    "DeviceArray",
    "DeviceBuffer",
    "Event",
    "GpuProperties",
    "PinnedBuffer",
    "Stream",
    "copy_on_device",
    "copy_to_device",
    "copy_to_host",
    "cuda_core",
    "device_count",
    "device_properties",
    "gpu_devices",
    "use_device",
]
