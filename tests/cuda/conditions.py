"""What the machine running the tests has: cuda-python (``cuda.core``), a driver, a GPU.

Tests of the no-GPU behaviour run where cuda-python is installed and no GPU is usable (the
development machine); the ``gpu`` tests where one is.
"""

from __future__ import annotations

import pytest

try:  # the parsing and argument tests need no cuda-python; the rest do
    import cuda.core as core
except ImportError:
    core = None


def _gpu_status() -> tuple[bool, str]:
    """(a GPU is usable, why not)."""
    if core is None:
        return False, "needs cuda-python (cuda.core), which is not installed"
    try:
        count = len(core.Device.get_all_devices())
    except Exception as exc:  # no driver library, no device, ...
        return False, f"needs an NVIDIA GPU: cuda.core says {type(exc).__name__}: {exc}"
    if count == 0:
        return False, "needs an NVIDIA GPU: cuda.core counts none"
    return True, ""


HAS_GPU, NO_GPU_REASON = _gpu_status()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason=NO_GPU_REASON)
needs_cuda_core = pytest.mark.skipif(
    core is None, reason="needs cuda-python (cuda.core), which is not installed"
)
no_gpu_only = pytest.mark.skipif(
    HAS_GPU or core is None,
    reason="checks the no-GPU behaviour of cuda-python: "
    + ("a GPU is present" if HAS_GPU else "cuda-python is not installed"),
)

#: What a DeviceUnavailableError says on a machine without the NVIDIA driver or a GPU.
NO_GPU_MESSAGE = r"no NVIDIA driver here|CUDA_ERROR_NO_DEVICE|CUDA_ERROR_\w+"
