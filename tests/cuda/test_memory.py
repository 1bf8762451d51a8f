"""Device and pinned buffers (:mod:`atriva_inference.cuda.memory`).

Without a GPU: the argument checks and the no-GPU refusals. With a GPU: reuse and growth,
views outliving their buffer, the pinned round trip, use from another thread, no leak.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from atriva_inference import cuda
from atriva_inference.errors import DeviceUnavailableError, InvalidInputError, ModelClosedError
from tests.cuda.conditions import NO_GPU_MESSAGE, needs_gpu, no_gpu_only


def test_arguments_are_checked_before_cuda_is_asked():
    with pytest.raises(InvalidInputError, match=r"device index.*-1"):
        cuda.DeviceBuffer(16, -1)
    with pytest.raises(InvalidInputError, match=r"byte count.*-16"):
        cuda.DeviceBuffer(-16, 0)
    with pytest.raises(InvalidInputError, match="byte count"):
        cuda.PinnedBuffer(1.5)  # type: ignore[arg-type]


@no_gpu_only
@pytest.mark.parametrize(
    "make",
    [
        lambda: cuda.DeviceBuffer(16, 0),
        lambda: cuda.DeviceBuffer(0, 0),
        lambda: cuda.PinnedBuffer(16),
        lambda: cuda.PinnedBuffer(0),
    ],
    ids=["device", "device0", "pinned", "pinned0"],
)
def test_without_a_driver_buffers_are_device_unavailable_saying_why(make):
    with pytest.raises(DeviceUnavailableError, match=NO_GPU_MESSAGE):
        make()


# ---------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------


def _free_device_memory() -> int:
    from cuda.bindings import driver

    err, free, _ = driver.cuMemGetInfo()
    assert err == 0
    return int(free)


@pytest.mark.gpu
@needs_gpu
def test_gpu_device_buffer_reuses_its_allocation_until_it_must_grow():
    buffer = cuda.DeviceBuffer(1024, 0)
    ptr = buffer.ptr
    assert ptr and buffer.nbytes == 1024 and buffer.device == 0
    assert int(buffer.allocation.handle) == ptr and buffer.allocation.size == 1024
    assert buffer.ensure(512) == ptr
    assert buffer.ensure(1024) == ptr
    assert buffer.ensure(1 << 20) == buffer.ptr
    assert buffer.nbytes == 1 << 20
    grown = buffer.ptr
    assert buffer.ensure(4096) == grown
    buffer.close()
    buffer.close()  # idempotent
    assert buffer.ptr == 0
    with pytest.raises(ModelClosedError):
        buffer.ensure(16)


@pytest.mark.gpu
@needs_gpu
def test_gpu_pinned_round_trip_equals_the_source():
    rng = np.random.default_rng(7)
    source = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    stream = cuda.Stream(0)
    staging = cuda.PinnedBuffer(source.nbytes)
    device = cuda.DeviceBuffer(source.nbytes, 0)
    host_in = staging.array(np.float32, source.shape)
    host_in[...] = source
    cuda.copy_to_device(device.ptr, host_in, stream)
    back = cuda.PinnedBuffer(source.nbytes).array(np.float32, source.shape)
    back[...] = 0
    cuda.copy_to_host(back, device.ptr, stream)
    stream.synchronize()
    np.testing.assert_array_equal(back, source)
    view = device.array(np.float32, source.shape)
    np.testing.assert_array_equal(view.to_numpy(stream), source)
    np.testing.assert_array_equal(view.to_numpy(), source)  # on the legacy default stream
    with pytest.raises(InvalidInputError, match="call ensure"):
        device.array(np.float64, source.shape)


@pytest.mark.gpu
@needs_gpu
def test_gpu_views_outlive_close_and_growth():
    pinned = cuda.PinnedBuffer(64)
    view = pinned.array(np.int32, (16,))
    view[...] = np.arange(16)
    pinned.ensure(1 << 20)  # grows: the old memory stays for the view
    pinned.close()
    gc.collect()
    np.testing.assert_array_equal(view, np.arange(16))
    device = cuda.DeviceBuffer(64, 0)
    stream = cuda.Stream(0)
    cuda.copy_to_device(device.ptr, np.arange(16, dtype=np.int32), stream)
    stream.synchronize()
    on_gpu = device.array(np.int32, (16,))
    device.ensure(1 << 20)
    device.close()
    gc.collect()
    np.testing.assert_array_equal(on_gpu.to_numpy(), np.arange(16))


@pytest.mark.gpu
@needs_gpu
def test_gpu_buffers_are_freed_from_another_thread_with_its_context_left_alone():
    import threading

    from cuda.bindings import driver

    buffers = [cuda.DeviceBuffer(1 << 20, 0), cuda.PinnedBuffer(1 << 20)]
    contexts = []

    def drop() -> None:
        buffers.clear()  # freed here, in a thread with no CUDA context
        gc.collect()
        contexts.append(driver.cuCtxGetCurrent()[1])

    thread = threading.Thread(target=drop)
    thread.start()
    thread.join()
    assert int(contexts[0]) == 0  # the free made GPU.0 current only while it freed


@pytest.mark.gpu
@needs_gpu
def test_gpu_no_leak_over_ten_thousand_cycles():
    stream = cuda.Stream(0)
    host = np.arange(1 << 16, dtype=np.uint8)
    warm = cuda.DeviceBuffer(1 << 20, 0)  # first-use costs of the context are not leaks
    cuda.copy_to_device(warm.ptr, host, stream)
    stream.synchronize()
    warm.close()
    gc.collect()
    free_before = _free_device_memory()
    for i in range(10_000):
        buffer = cuda.DeviceBuffer(1 << 20, 0)
        cuda.copy_to_device(buffer.ptr, host, stream)
        event = cuda.Event(0)
        event.record(stream)
        if i % 2:
            buffer.close()  # half closed explicitly, half left to cuda.core
            event.close()
        del buffer, event
    stream.synchronize()
    gc.collect()
    assert free_before - _free_device_memory() < 8 << 20  # 10,000 MiB allocated in all
