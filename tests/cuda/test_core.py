"""Importing cuda.core on first use, and CUDA's errors becoming ours
(:mod:`atriva_inference.cuda._core`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from atriva_inference import cuda
from atriva_inference.cuda import _core
from atriva_inference.errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
)
from tests.cuda.conditions import needs_cuda_core


def test_importing_the_package_needs_no_cuda_python():
    code = (
        "import sys; sys.modules['cuda'] = None; "
        "import atriva_inference.cuda as c; "
        "assert not [m for m in sys.modules if m.startswith('cuda.')]; "
        "print(c.DeviceArray(0x1000, (2, 3), 'float32', 0).nbytes)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "24"


def test_missing_cuda_python_is_backend_unavailable_naming_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.core", None)  # as if not installed
    calls = (
        cuda.cuda_core,
        lambda: cuda.DeviceBuffer(8, 0),
        lambda: cuda.PinnedBuffer(8),
        lambda: cuda.Stream(0),
        lambda: cuda.Event(0),
        lambda: cuda.use_device(0),
    )
    for call in calls:
        with pytest.raises(BackendUnavailableError) as info:
            call()
        assert "cuda.core" in str(info.value) and "pip install cuda-python" in str(info.value)
        assert isinstance(info.value.__cause__, ImportError)
    # A backend names its own extra.
    with pytest.raises(BackendUnavailableError, match=r"atriva-inference\[tensorrt\]"):
        cuda.cuda_core(hint="pip install 'atriva-inference[tensorrt]'")


@needs_cuda_core
def test_check_unwraps_driver_results():
    from cuda.bindings import driver

    ok = driver.CUresult.CUDA_SUCCESS
    assert _core.check((ok,), "nothing") is None
    assert _core.check((ok, 5), "one") == 5
    assert _core.check((ok, 1, 2), "two") == (1, 2)


@needs_cuda_core
def test_check_raises_by_kind_naming_the_error():
    from cuda.bindings import driver

    with pytest.raises(InferenceFailedError) as info:
        _core.check((driver.CUresult.CUDA_ERROR_OUT_OF_MEMORY, None), "cannot allocate 4 bytes")
    assert str(info.value).startswith("cannot allocate 4 bytes: CUDA_ERROR_OUT_OF_MEMORY (")
    assert not isinstance(info.value, DeviceUnavailableError)
    for name in ("CUDA_ERROR_NO_DEVICE", "CUDA_ERROR_INVALID_DEVICE", "CUDA_ERROR_STUB_LIBRARY"):
        with pytest.raises(DeviceUnavailableError, match=f"^use: {name} \\("):
            _core.check((getattr(driver.CUresult, name),), "use")


@needs_cuda_core
def test_cuda_core_errors_become_ours_by_name():
    from cuda.core._utils.cuda_utils import CUDAError
    from cuda.pathfinder import DynamicLibNotFoundError

    cases = [
        (CUDAError("CUDA_ERROR_NO_DEVICE: no CUDA-capable device"), DeviceUnavailableError),
        (CUDAError("CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure"), InferenceFailedError),
        (DynamicLibNotFoundError('"cuda" is an NVIDIA driver library'), DeviceUnavailableError),
        (RuntimeError("anything else"), InferenceFailedError),
    ]
    for raised, expected in cases:
        with pytest.raises(expected) as info, _core.translated("cannot work"):
            raise raised
        assert type(info.value) is expected
        assert info.value.__cause__ is raised
        assert str(info.value).startswith("cannot work: ")
    with pytest.raises(DeviceUnavailableError) as info, _core.translated("use GPU.0"):
        raise CUDAError("CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected")
    assert str(info.value) == "use GPU.0: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)"
    with (
        pytest.raises(DeviceUnavailableError, match=r"^load: no NVIDIA driver here \("),
        _core.translated("load"),
    ):
        raise DynamicLibNotFoundError("libcuda not found")
