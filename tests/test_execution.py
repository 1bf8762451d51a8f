"""Async requests, the in-order async queue and streams, on every usable backend."""

from __future__ import annotations

import gc
import itertools
import threading
import time
import tracemalloc

import numpy as np
import pytest

from atriva_inference import InferenceTimeoutError, InvalidInputError, ModelClosedError
from atriva_inference.profiling import TIMELINE_LENGTH

ATOL = 1e-4


def frames_of(count):
    return [np.full((1, 3, 16, 16), index / count, np.float32) for index in range(count)]


def load(runtime, zoo_model, backend, **options):
    return runtime.load_model(zoo_model.path_for(backend), device="CPU", **options)


def test_queue_map_yields_in_submission_order(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    frames = frames_of(24)
    with model.create_async_queue() as queue:
        outputs = list(queue.map(frames))
    assert len(outputs) == len(frames)
    for frame, out in zip(frames, outputs):
        np.testing.assert_allclose(
            out["output"].to_numpy(), conv_net.reference({"input": frame})["output"], atol=ATOL
        )


def test_queue_submit_callbacks_once_each(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    frames = frames_of(12)
    calls: list[float] = []
    lock = threading.Lock()

    def callback(outputs):
        with lock:
            calls.append(float(outputs["output"].to_numpy()[0, 0, 8, 8]))

    with model.create_async_queue(depth=3) as queue:
        results = [queue.submit({"input": frame}, callback=callback) for frame in frames]
    assert all(result.done for result in results)  # leaving the block waited for all
    expected = [float(r.wait()["output"].to_numpy()[0, 0, 8, 8]) for r in results]
    assert sorted(calls) == sorted(expected) and len(calls) == len(frames)


def test_queue_default_depth_is_the_backends_optimum(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    compile_before = model.get_profiling().compile_ms
    queue = model.create_async_queue()
    if backend == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(
            str(conv_net.onnx_path), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"}
        )
        assert queue.depth == compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        assert model.get_profiling().compile_ms > compile_before  # the lazy compile is counted
    else:  # two frames in flight per core: measured to reach raw threads' throughput
        import os

        assert queue.depth == 2 * len(os.sched_getaffinity(0))
    assert model.create_async_queue(depth=5).depth == 5


@pytest.mark.parametrize("depth", [0, -1, 1.5, "2"])
def test_queue_bad_depth(runtime, backend, conv_net, depth):
    with pytest.raises(InvalidInputError, match="depth"):
        load(runtime, conv_net, backend).create_async_queue(depth=depth)


def test_queue_keeps_at_most_depth_in_flight(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    release = threading.Event()
    queue = model.create_async_queue(depth=2)
    first = [queue.submit(frames_of(1)[0], callback=lambda _: release.wait(10)) for _ in range(2)]
    third: list = []
    submitter = threading.Thread(target=lambda: third.append(queue.submit(frames_of(1)[0])))
    submitter.start()
    submitter.join(0.3)
    assert submitter.is_alive() and not third  # blocked: both requests are busy
    release.set()
    submitter.join(10)
    assert third and "output" in third[0].wait(10)
    assert all("output" in result.wait(10) for result in first)


def test_queue_errors_surface_at_wait_and_in_map(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    queue = model.create_async_queue(depth=2)

    def broken(_outputs):
        raise RuntimeError("callback broke")

    result = queue.submit(frames_of(1)[0], callback=broken)
    with pytest.raises(RuntimeError, match="callback broke"):
        result.wait(10)
    with pytest.raises(InvalidInputError):
        queue.submit({"input": np.zeros((2, 2), np.float32)})
    frames = [*frames_of(2), {"input": np.zeros((9,), np.float32)}, *frames_of(2)]
    yielded = []
    with pytest.raises(InvalidInputError):
        for outputs in queue.map(frames):  # the frames before the bad one come out first
            yielded.append(outputs)
    assert len(yielded) == 2 and all("output" in outputs for outputs in yielded)
    assert len(list(queue.map(frames_of(4)))) == 4  # still usable


def test_queue_map_reads_at_most_depth_frames_ahead_of_its_caller(runtime, backend, conv_net):
    """Frames are pulled lazily: a camera is never read further ahead than ``depth``."""
    model = load(runtime, conv_net, backend)
    taken: list[int] = []

    def camera():
        for index, frame in enumerate(frames_of(40)):
            taken.append(index)
            yield frame

    with model.create_async_queue(depth=3) as queue:
        produced = queue.map(camera())
        for yielded in range(1, 11):
            next(produced)
            time.sleep(0.01)  # time for workers to run ahead, if they could
            assert len(taken) <= yielded + 3
        produced.close()
    assert len(taken) < 40


def test_queue_map_raises_the_iterables_error_in_its_turn(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)

    def camera():
        yield from frames_of(3)
        raise OSError("camera unplugged")

    with model.create_async_queue(depth=2) as queue:
        produced = queue.map(camera())
        assert [sorted(next(produced)) for _ in range(3)] == [["output"]] * 3
        with pytest.raises(OSError, match="unplugged"):
            next(produced)
        assert len(list(queue.map(frames_of(5)))) == 5  # the queue is still usable


def test_queue_map_stopped_early_leaves_nothing_running(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    before = set(threading.enumerate())
    with model.create_async_queue(depth=3) as queue:
        for index, _outputs in enumerate(queue.map(frames_of(50))):
            if index == 4:
                break
        queue.wait_all(10)  # nothing left in flight once the loop has stopped
        assert [t for t in set(threading.enumerate()) - before if t.name == "atriva-map"] == []
        runs = model.get_profiling().runs
        assert 5 <= runs <= 5 + queue.depth  # the frames in flight finished, no more
        assert len(list(queue.map(frames_of(6)))) == 6


def test_closing_the_queue_stops_a_running_map_and_leaks_no_request(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    model.run(frames_of(1)[0])
    model.get_profiling()
    before = len(model._engine._requests)
    queue = model.create_async_queue(depth=2)
    produced = queue.map(itertools.repeat(frames_of(1)[0]))  # an endless camera
    assert "output" in next(produced)
    closer = threading.Thread(target=queue.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    with pytest.raises(ModelClosedError):
        for _ in range(10_000):  # what was in flight may still come out, then it stops
            next(produced)
    model.get_profiling()  # gives back what the map's workers returned late
    assert len(model._engine._requests) == before


def test_queue_map_reuses_its_requests(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    with model.create_async_queue(depth=2) as queue:
        list(queue.map(frames_of(8)))
        before = len(model._engine._requests)
        for _ in range(5):
            list(queue.map(frames_of(8)))
        assert len(model._engine._requests) == before


def test_async_wait_timeout_on_a_slow_model(runtime, backend, slow, rng):
    model = load(runtime, slow, backend)
    request = model.create_async_request()
    feed = slow.make_inputs(rng)
    request.start(feed)
    with pytest.raises(InferenceTimeoutError):
        request.wait(timeout=0.0005)
    out = request.wait(timeout=60)["y"].to_numpy()
    np.testing.assert_allclose(out, slow.reference(feed)["y"], rtol=1e-3, atol=1e-3)
    queue = model.create_async_queue(depth=1)
    result = queue.submit(feed)
    with pytest.raises(InferenceTimeoutError):
        result.wait(timeout=0.0005)
    assert "y" in result.wait(timeout=60)


def test_stream_binds_the_frame_without_copy_and_reuses_outputs(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    stream = model.create_stream()
    buffer = np.empty((1, 3, 16, 16), np.float32)  # a camera decoding into one buffer
    outputs = []
    for _ in range(3):
        buffer[...] = rng.random(buffer.shape, dtype=np.float32)
        out = stream.run({"input": runtime.tensor_from_numpy(buffer)})["output"].to_numpy()
        np.testing.assert_allclose(out, conv_net.reference({"input": buffer})["output"], atol=ATOL)
        outputs.append(out)
    assert np.shares_memory(outputs[0], outputs[-1])  # documented: valid until the next run


def test_no_growth_over_2000_runs(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)["input"]
    stream = model.create_stream()
    request = model.create_async_request()
    queue = model.create_async_queue(depth=2)

    def cycle(count):
        for _ in range(count):
            model.run(frame)
            stream.run(frame)
            request.start(frame)
            request.wait(10)
        list(queue.map([frame] * count))

    cycle(TIMELINE_LENGTH + 50)  # fill the bounded run timelines the profile keeps
    gc.collect()
    objects_before = len(gc.get_objects())
    tracemalloc.start()
    snapshot_before = tracemalloc.take_snapshot()
    cycle(500)
    gc.collect()
    growth = sum(
        stat.size_diff
        for stat in tracemalloc.take_snapshot().compare_to(snapshot_before, "filename")
    )
    tracemalloc.stop()
    assert len(gc.get_objects()) - objects_before < 100
    assert growth < 256 * 1024, growth  # 2,000 runs; a leak of even 128 bytes a run shows


def test_many_threads_each_with_a_stream(runtime, backend, conv_net):
    model = load(runtime, conv_net, backend)
    frames = frames_of(8)
    expected = [conv_net.reference({"input": f})["output"] for f in frames]
    errors: list[str] = []

    def camera(index):
        stream = model.create_stream()
        for _ in range(20):
            out = stream.run(frames[index])["output"].to_numpy()
            if not np.allclose(out, expected[index], atol=ATOL):
                errors.append(f"camera {index}")
        time.sleep(0)

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


BROKEN = {"a": np.ones(3, np.float32), "b": np.ones(4, np.float32)}  # fails in the backend
GOOD = {"a": np.ones(3, np.float32), "b": np.ones(3, np.float32)}


def test_a_failure_inside_the_backend_surfaces_everywhere(runtime, backend, mismatch):
    from atriva_inference import InferenceFailedError

    model = load(runtime, mismatch, backend)
    with pytest.raises(InferenceFailedError) as caught:
        model.run(BROKEN)
    assert caught.value.__cause__ is not None
    np.testing.assert_array_equal(model.run(GOOD)["y"].to_numpy(), [2, 2, 2])

    request = model.create_async_request()
    request.start(BROKEN)
    with pytest.raises(InferenceFailedError):  # at wait, never a hang
        request.wait(timeout=10)
    request.start(GOOD)  # reusable after the error
    np.testing.assert_array_equal(request.wait(timeout=10)["y"].to_numpy(), [2, 2, 2])

    with model.create_async_queue(depth=1) as queue:
        with pytest.raises(InferenceFailedError):
            queue.submit(BROKEN).wait(timeout=10)
        assert "y" in queue.submit(GOOD).wait(timeout=10)  # the slot came back
        queue.submit(BROKEN)  # nobody waits on this one: the next submit must not hang
        assert "y" in queue.submit(GOOD).wait(timeout=10)
        with pytest.raises(InferenceFailedError):
            list(queue.map([GOOD, BROKEN, GOOD]))
    stream = model.create_stream()
    with pytest.raises(InferenceFailedError):
        stream.run(BROKEN)
    np.testing.assert_array_equal(stream.run(GOOD)["y"].to_numpy(), [2, 2, 2])


def test_a_failed_start_leaves_no_stale_result(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    request = model.create_async_request()
    request.start(conv_net.make_inputs(rng))
    request.wait(timeout=30)
    with pytest.raises(InvalidInputError):
        request.start({"input": np.zeros(2, np.float32)})
    assert not request.done
    with pytest.raises(Exception, match="never started"):
        request.wait(timeout=1)


def test_dropped_streams_and_requests_give_their_requests_back(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)
    for _ in range(50):
        model.create_stream().run(frame)  # dropped at once
        request = model.create_async_request()
        request.start(frame)
        request.wait(30)
        del request
    with model.create_stream() as stream, model.create_async_queue(depth=2) as queue:
        stream.run(frame)
        list(queue.map([frame, frame]))
    gc.collect()
    assert len(model._engine._requests) <= 2  # the run() pool; nothing piles up
    assert model.get_profiling().runs == 50 * 2 + 3  # and every run is still counted


def test_evicted_static_shapes_are_not_kept_alive_by_holders(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend, static_shapes=True, shape_cache_size=1)
    stream = model.create_stream()
    request = model.create_async_request()
    queue = model.create_async_queue(depth=1)
    for index in range(6):
        x = rng.standard_normal((1, 3, 4 + index % 2, 4)).astype(np.float32)
        stream.run(x)
        request.start(x)
        request.wait(30)
        queue.submit(x).wait(30)
    live = [e for e in model._engine._executables() if e.shapes is not None]
    assert len(live) <= 1
    assert len(stream._holder.requests) <= 2 and len(request._holder.requests) <= 2
    assert sum(not e.retired for e in queue._free) <= 2
    assert model.shape_cache_info().currsize == 1


def test_the_runtime_forgets_models_closed_on_their_own(backend, conv_net):
    from atriva_inference import InferenceRuntime

    with InferenceRuntime(backend) as runtime:
        for _ in range(5):
            runtime.load_model(conv_net.path_for(backend)).close()
        assert runtime._models == []


def test_closed_streams_requests_and_queues_refuse_work(runtime, backend, conv_net, rng):
    from atriva_inference import ModelClosedError

    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)
    stream, request, queue = (
        model.create_stream(),
        model.create_async_request(),
        model.create_async_queue(depth=1),
    )
    for closeable in (stream, request, queue):
        closeable.close()
        closeable.close()  # idempotent
    with pytest.raises(ModelClosedError, match="stream is closed"):
        stream.run(frame)
    with pytest.raises(ModelClosedError, match="request is closed"):
        request.start(frame)
    with pytest.raises(ModelClosedError, match="queue is closed"):
        queue.submit(frame)
    assert "output" in model.run(frame)


def test_a_callback_submitting_to_its_full_queue_fails_instead_of_hanging(
    runtime, backend, conv_net, rng
):
    from atriva_inference import InferenceRuntimeError

    model = load(runtime, conv_net, backend)
    frame = conv_net.make_inputs(rng)
    with model.create_async_queue(depth=1) as queue:

        def resubmit(_outputs):
            queue.submit(frame)

        result = queue.submit(frame, callback=resubmit)
        with pytest.raises(InferenceRuntimeError, match="wait for itself"):
            result.wait(timeout=30)
        assert "output" in queue.submit(frame).wait(timeout=30)


def test_eviction_never_breaks_runs_in_flight(runtime, backend, dynamic, rng):
    """Threads, a stream and a queue on alternating shapes with room for one: every run
    completes correctly and the profile counts each exactly once."""
    model = load(runtime, dynamic, backend, static_shapes=True, shape_cache_size=1)
    shapes = [(1, 3, 4, 4), (1, 3, 6, 4)]
    failures: list[str] = []
    counts = {"run": 0, "stream": 0, "queue": 0}

    def check(out, x, kind):
        if not np.allclose(out["y"].to_numpy(), np.maximum(x, 0) * 2):
            failures.append(kind)
        counts[kind] += 1

    def runner(kind):
        local = np.random.default_rng(len(kind))
        stream = model.create_stream() if kind == "stream" else None
        queue = model.create_async_queue(depth=2) if kind == "queue" else None
        for index in range(60):
            x = local.standard_normal(shapes[index % 2]).astype(np.float32)
            try:
                if kind == "run":
                    check(model.run(x), x, kind)
                elif kind == "stream":
                    check(stream.run(x), x, kind)
                else:
                    check(queue.submit(x).wait(30), x, kind)
            except Exception as exc:  # collected, asserted below
                failures.append(f"{kind}: {exc!r}")

    threads = [threading.Thread(target=runner, args=(kind,)) for kind in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert model.get_profiling().runs == sum(counts.values()) == 180


def test_start_and_submit_read_the_callers_array_in_place(
    runtime, backend, conv_net, rng, monkeypatch
):
    """The decision (docs/guide.md, "Input arrays after start()/submit()"): no snapshot is
    taken at start/submit -- the backend reads the caller's array until the inference is done,
    so writing to it before wait() may change the answer. The array handed to the backend is
    the caller's own memory."""
    model = load(runtime, conv_net, backend)
    frame = np.ascontiguousarray(conv_net.make_inputs(rng)["input"])
    expected = conv_net.reference({"input": frame})["output"]
    request = model.create_async_request()
    queue = model.create_async_queue(depth=2)
    request.start({"input": frame})  # makes the requests, so their class can be watched
    request.wait()
    seen: list[np.ndarray] = []
    backend_class = type(next(iter(request._holder.requests.values())))
    original_start = backend_class.start

    def watching_start(self, inputs, on_done):
        seen.extend(inputs)
        return original_start(self, inputs, on_done)

    monkeypatch.setattr(backend_class, "start", watching_start)
    request.start({"input": frame})
    np.testing.assert_allclose(request.wait()["output"].to_numpy(), expected, atol=ATOL)
    result = queue.submit({"input": frame})
    np.testing.assert_allclose(result.wait()["output"].to_numpy(), expected, atol=ATOL)
    assert len(seen) == 2
    assert all(array is frame for array in seen)  # no copy: the caller's array itself
