"""Counting GPUs, their properties, the current device (:mod:`atriva_inference.cuda.devices`)."""

from __future__ import annotations

import re
import sys

import pytest

from atriva_inference import cuda
from atriva_inference.cuda import devices
from atriva_inference.errors import DeviceUnavailableError, InvalidInputError
from tests.cuda.conditions import NO_GPU_MESSAGE, needs_gpu, no_gpu_only


@no_gpu_only
def test_without_a_driver_there_are_no_gpus():
    assert cuda.device_count() == 0
    assert cuda.gpu_devices() == []


def test_without_cuda_python_the_driver_library_is_asked(monkeypatch):
    """ONNX Runtime's CUDA provider needs only the driver: its GPUs are counted without
    cuda-python too, through the driver library (none here, so 0, and never an error)."""
    monkeypatch.setitem(sys.modules, "cuda.core", None)
    assert cuda.device_count() == devices._driver_device_count()
    assert cuda.gpu_devices() == [f"GPU.{i}" for i in range(cuda.device_count())]


@no_gpu_only
@pytest.mark.parametrize(
    "call",
    [lambda: cuda.use_device(0), lambda: cuda.device_properties(0), devices.current_device],
    ids=["use", "properties", "current"],
)
def test_without_a_driver_using_a_gpu_is_device_unavailable_saying_why(call):
    with pytest.raises(DeviceUnavailableError, match=NO_GPU_MESSAGE):
        call()


@pytest.mark.parametrize("index", [-1, True, 1.0, "0", None])
def test_device_indices_are_checked_before_cuda_is_asked(index):
    with pytest.raises(InvalidInputError, match=r"device index \(an int >= 0"):
        cuda.use_device(index)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="device index"):
        cuda.device_properties(index)  # type: ignore[arg-type]


@pytest.mark.gpu
@needs_gpu
def test_gpu_listing_and_properties():
    count = cuda.device_count()
    assert count >= 1
    assert cuda.gpu_devices() == [f"GPU.{i}" for i in range(count)]
    props = cuda.device_properties(0)
    assert props.index == 0 and props.name
    assert props.compute_capability >= (5, 0)
    assert props.total_memory > 1 << 30
    assert re.fullmatch(
        r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", props.uuid
    )
    with pytest.raises(DeviceUnavailableError, match=rf"GPU\.{count}.*no such GPU"):
        cuda.use_device(count)
    cuda.use_device(0)
    assert devices.current_device() == 0
