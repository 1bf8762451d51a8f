"""Streams, events and the copies queued on them (:mod:`atriva_inference.cuda.streams`).

Without a GPU: the defaults inference needs (blocking streams, events waited on asleep) as
the options handed to cuda.core, the argument checks, the no-GPU refusals. With a GPU:
ordering after the legacy default stream, waiting without spinning, timings, copies.
"""

from __future__ import annotations

import inspect
import threading
import time

import numpy as np
import pytest

from atriva_inference import cuda
from atriva_inference.cuda import streams
from atriva_inference.errors import DeviceUnavailableError, InvalidInputError, ModelClosedError
from tests.cuda.conditions import NO_GPU_MESSAGE, needs_cuda_core, needs_gpu, no_gpu_only


@needs_cuda_core
def test_streams_are_blocking_unless_asked_otherwise():
    # Blocking: ordered after CuPy's and PyTorch's legacy-default-stream work, which is what
    # a request reading their arrays needs; cuda.core's own default is non-blocking.
    assert inspect.signature(cuda.Stream).parameters["blocking"].default is True
    assert streams.stream_options(True).nonblocking is False
    assert streams.stream_options(False).nonblocking is True


@needs_cuda_core
@pytest.mark.parametrize("timing", [False, True])
@pytest.mark.parametrize("blocking_sync", [False, True])
def test_event_options_follow_timing_and_blocking_sync(timing, blocking_sync):
    options = streams.event_options(timing=timing, blocking_sync=blocking_sync)
    assert (options.timing_enabled, options.blocking_sync) == (timing, blocking_sync)
    assert options.ipc_enabled is False


def test_events_wait_asleep_and_skip_timing_unless_asked_otherwise():
    parameters = inspect.signature(cuda.Event).parameters
    assert parameters["blocking_sync"].default is True
    assert parameters["timing"].default is False


def test_arguments_are_checked_before_cuda_is_asked():
    with pytest.raises(InvalidInputError, match=r"device index.*True"):
        cuda.Stream(True)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"blocking must be True or False, got None"):
        cuda.Stream(0, blocking=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"blocking_sync must be True or False.*'yes'"):
        cuda.Event(0, blocking_sync="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"timing must be True or False, got 1"):
        cuda.Event(0, timing=1)  # type: ignore[arg-type]


@no_gpu_only
@pytest.mark.parametrize(
    "make",
    [
        lambda: cuda.Stream(0),
        lambda: cuda.Stream(0, blocking=False),
        lambda: cuda.Event(0),
        lambda: cuda.Event(0, timing=True),
        lambda: cuda.Event(0, blocking_sync=False),
    ],
    ids=["stream", "non_blocking_stream", "event", "timing_event", "spinning_event"],
)
def test_without_a_driver_streams_and_events_are_device_unavailable(make):
    with pytest.raises(DeviceUnavailableError, match=NO_GPU_MESSAGE):
        make()


# ---------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------


def _driver():
    from cuda.bindings import driver

    return driver


def _busy(nbytes: int):
    """A stream, device memory and a pinned target for long device-to-pinned copies."""
    stream = cuda.Stream(0)
    device = cuda.DeviceBuffer(nbytes, 0)
    pinned = cuda.PinnedBuffer(nbytes)
    target = pinned.array(np.uint8, (nbytes,))
    return stream, device, target


@pytest.mark.gpu
@needs_gpu
def test_gpu_streams_have_the_ordering_asked_for():
    for blocking in (True, False):
        stream = cuda.Stream(0, blocking=blocking)
        assert stream.core.is_nonblocking is not blocking
        assert stream.blocking is blocking
        assert stream.handle == int(stream.core.handle) != 0
        stream.close()
        stream.close()  # idempotent
        assert stream.handle == 0
        with pytest.raises(ModelClosedError):
            stream.synchronize()


@pytest.mark.gpu
@needs_gpu
def test_gpu_blocking_stream_waits_for_legacy_default_stream_work():
    # What CuPy/PyTorch do by default: long work, then the write we read, both on the legacy
    # default stream; our blocking stream must read only after the write, with no sync.
    driver = _driver()
    legacy = driver.CUstream(streams.LEGACY_STREAM)
    nbytes = 1 << 29
    big_src, big_dst = cuda.DeviceBuffer(nbytes, 0), cuda.DeviceBuffer(nbytes, 0)
    target = cuda.DeviceBuffer(4096, 0)
    stream = cuda.Stream(0)
    for frame in range(1, 4):
        for _ in range(8):  # several milliseconds of device work ahead of the write
            (err,) = driver.cuMemcpyAsync(big_dst.ptr, big_src.ptr, nbytes, legacy)
            assert err == 0
        (err,) = driver.cuMemsetD8Async(target.ptr, frame, 4096, legacy)
        assert err == 0
        out = cuda.PinnedBuffer(4096).array(np.uint8, (4096,))
        cuda.copy_to_host(out, target.ptr, stream)
        stream.synchronize()
        assert np.all(out == frame), f"frame {frame}: read before the legacy stream wrote it"


@pytest.mark.gpu
@needs_gpu
def test_gpu_waiting_on_a_default_event_does_not_spin_a_core():
    stream, device, target = _busy(1 << 30)
    event = cuda.Event(0)  # blocking_sync by default
    assert event.blocking_sync is True and event.core.is_blocking_sync is True
    for _ in range(8):  # 8 GiB device-to-pinned: well over 50 ms on any PCIe
        cuda.copy_to_host(target, device.ptr, stream)
    event.record(stream)
    cpu_before, wall_before = time.thread_time(), time.perf_counter()
    event.synchronize()
    cpu, wall = time.thread_time() - cpu_before, time.perf_counter() - wall_before
    assert event.query() is True
    assert wall > 0.02, f"the copies finished too fast ({wall * 1e3:.1f} ms) to tell"
    # Spinning would cost about as much CPU time as the wall time waited.
    assert cpu < 0.25 * wall, (
        f"the waiting thread used {cpu * 1e3:.1f} ms CPU in {wall * 1e3:.1f} ms"
    )


@pytest.mark.gpu
@needs_gpu
def test_gpu_event_query_turns_true_and_synchronize_releases_the_gil():
    stream, device, target = _busy(1 << 30)
    start, end = cuda.Event(0, timing=True), cuda.Event(0, timing=True)
    start.record(stream)
    cuda.copy_to_host(target, device.ptr, stream)  # 2 GiB over PCIe: tens of milliseconds
    cuda.copy_to_host(target, device.ptr, stream)
    end.record(stream)
    assert end.query() is False
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1

    worker = threading.Thread(target=count)
    worker.start()
    try:
        began = time.perf_counter()
        before = counter[0]
        end.synchronize()
        during = counter[0] - before
        waited = time.perf_counter() - began
    finally:
        stop.set()
        worker.join()
    assert end.query() is True
    if waited > 0.005:  # it really waited: the other thread must have run meanwhile
        assert during > 0, "synchronize() held the GIL while it waited"
    assert end.elapsed_ms(start) > 1.0
    with pytest.raises(InvalidInputError, match="timing=True"):
        end.elapsed_ms(cuda.Event(0))
    stream.close()
    with pytest.raises(ModelClosedError):
        stream.synchronize()
    with pytest.raises(ModelClosedError):
        end.record(stream)
    end.close()
    with pytest.raises(ModelClosedError):
        end.query()


@pytest.mark.gpu
@needs_gpu
def test_gpu_copies_round_trip_and_check_their_arrays():
    rng = np.random.default_rng(7)
    source = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    stream = cuda.Stream(0)
    device = cuda.DeviceBuffer(source.nbytes, 0)
    other = cuda.DeviceBuffer(source.nbytes, 0)
    cuda.copy_to_device(device.ptr, source, stream)  # pageable
    cuda.copy_on_device(other.ptr, device.ptr, source.nbytes, stream)
    back = np.empty_like(source)
    cuda.copy_to_host(back, other.ptr, stream)
    stream.synchronize()
    np.testing.assert_array_equal(back, source)
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        cuda.copy_to_device(device.ptr, source[:, :, ::2], stream)
    with pytest.raises(InvalidInputError, match="writable"):
        cuda.copy_to_host(np.zeros(4, np.float32)[::2], device.ptr, stream)
    with pytest.raises(InvalidInputError, match="non-null pointer"):
        cuda.copy_on_device(0, device.ptr, 4, stream)
    stream.close()
    with pytest.raises(ModelClosedError):
        cuda.copy_to_device(device.ptr, source, stream)


@pytest.mark.gpu
@needs_gpu
def test_gpu_streams_work_from_another_thread():
    buffer = cuda.DeviceBuffer(64, 0)
    stream = cuda.Stream(0)  # made here, used there
    results = []

    def work() -> None:
        cuda.copy_to_device(buffer.ptr, np.arange(16, dtype=np.int32), stream)
        out = np.empty(16, np.int32)
        cuda.copy_to_host(out, buffer.ptr, stream)
        stream.synchronize()
        results.append(out)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    np.testing.assert_array_equal(results[0], np.arange(16))
