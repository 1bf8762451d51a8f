"""Closing models and runtimes while they work: from other threads, during queue.map, with
async requests and queue frames in flight, from a callback.

The allowed outcomes of any work caught by a close: it finishes with the right answer, or
it raises ModelClosedError. Never AttributeError/TypeError, never an InferenceFailedError
wrapping one, never a hang (every wait and join has a timeout; the bodies run in a sandbox
worker, so a crash fails the test).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, InferenceRuntimeError, Model, ModelClosedError
from tests.robustness import helpers
from tests.robustness.sandbox import Sandbox, describe_exit

pytestmark = pytest.mark.robustness

#: Runs per worker thread before it stops on its own (bounded loops only).
RUNS = 30
#: A wait or join on work caught by a close that lasts this long is a hang (a run of the
#: slow model takes ~50 ms; a close leaves at most a few in flight).
HANG_S = 10.0


def _slow(backend: str) -> tuple[InferenceRuntime, Model, dict[str, Any], dict[str, Any]]:
    """A fresh runtime and the ~2 GFLOP model: each run takes long enough to be caught."""
    runtime = InferenceRuntime(backend)
    source = helpers.zoo_model("slow")
    model = runtime.load_model(source.path_for(backend), device="CPU")
    feed = source.make_inputs(np.random.default_rng(4))
    return runtime, model, feed, source.reference(feed)


def _check(outputs: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    for name, want in expected.items():
        np.testing.assert_allclose(np.asarray(outputs[name]), want, rtol=1e-3, atol=1e-3)


def _only_closed(outcomes: list[tuple[str, BaseException | None]]) -> None:
    bad = [
        f"{name}: {type(exc).__name__}: {exc} (cause: {exc.__cause__!r})"
        for name, exc in outcomes
        if exc is not None and not isinstance(exc, ModelClosedError)
    ]
    assert not bad, "work caught by close() ended in other errors:\n" + "\n".join(bad)


def _each_raises_closed(calls: dict[str, Callable[[], Any]], after: str) -> None:
    """Every call must raise ModelClosedError, and nothing else, after ``after``."""
    for name, call in calls.items():
        try:
            call()
        except ModelClosedError:
            continue
        except Exception as exc:
            raise AssertionError(f"{name} after {after} raised {exc!r}") from exc
        raise AssertionError(f"{name} after {after} did not raise ModelClosedError")


def _loop(model: Model, how: str, feed: dict, expected: dict, started: threading.Event):
    """One thread's work on ``how``: RUNS runs, each checked; ModelClosedError ends it."""

    def work() -> None:
        if how == "stream":
            stream = model.create_stream()
            run = stream.run
        elif how == "async":
            request = model.create_async_request()

            def run(inputs):
                request.start(inputs)
                return request.wait(timeout=HANG_S)
        else:
            run = model.run
        for _ in range(RUNS):
            outputs = run(feed)
            _check(outputs, expected)
            started.set()

    return work


def close_during_work(backend: str, how: str) -> None:
    runtime, model, feed, expected = _slow(backend)
    started = threading.Event()
    if how in ("queue", "map"):
        queue = model.create_async_queue(depth=2)

        def submit_all() -> None:
            for _ in range(RUNS):
                _check(queue.submit(feed).wait(timeout=HANG_S), expected)
                started.set()

        def map_all() -> None:
            for outputs in queue.map(feed for _ in range(RUNS)):
                _check(outputs, expected)
                started.set()

        targets = [submit_all, submit_all] if how == "queue" else [map_all]
    else:
        targets = [_loop(model, how, feed, expected, started) for _ in range(3)]

    def close_when_started() -> None:
        assert started.wait(HANG_S), "no run finished before the close"
        model.close()

    outcomes = helpers.run_threads([*targets, close_when_started], timeout=HANG_S)
    _only_closed(outcomes)
    assert outcomes[-1][1] is None, f"close() raised {outcomes[-1][1]!r}"
    try:
        model.run(feed)
    except ModelClosedError:
        pass
    else:
        raise AssertionError("run() after close() did not raise ModelClosedError")
    runtime.close()


@pytest.mark.parametrize("how", ["run", "stream", "async", "queue", "map"])
def test_close_during_work_from_other_threads(sandbox, backend, how):
    sandbox.call(close_during_work, backend, how)


def close_with_work_in_flight(backend: str, kind: str) -> None:
    runtime, model, feed, expected = _slow(backend)
    results: list[Callable[[], Any]] = []
    if kind == "async_requests":
        for _ in range(3):
            request = model.create_async_request()
            request.start(feed)
            results.append(lambda request=request: request.wait(timeout=HANG_S))
    else:
        queue = model.create_async_queue(depth=3)
        for _ in range(3):
            result = queue.submit(feed)
            results.append(lambda result=result: result.wait(timeout=HANG_S))
    model.close()

    def collect(wait: Callable[[], Any]) -> Callable[[], None]:
        return lambda: _check(wait(), expected)

    targets = [collect(wait) for wait in results]
    if kind == "queue_frames":
        targets.append(queue.close)
    _only_closed(helpers.run_threads(targets, timeout=HANG_S))
    runtime.close()


@pytest.mark.parametrize("kind", ["async_requests", "queue_frames"])
def test_close_with_work_in_flight(sandbox, backend, kind):
    sandbox.call(close_with_work_in_flight, backend, kind)


def close_from_a_callback(backend: str, kind: str) -> None:
    runtime, model, feed, expected = _slow(backend)

    def close(outputs: dict[str, Any]) -> None:
        model.close()

    def work() -> None:
        if kind == "async_request":
            request = model.create_async_request()
            request.start(feed, callback=close)
            _check(request.wait(timeout=HANG_S), expected)
        else:
            with model.create_async_queue(depth=2) as queue:
                results = [queue.submit(feed, callback=close if i == 0 else None) for i in range(4)]
                for result in results:
                    _check(result.wait(timeout=HANG_S), expected)

    _only_closed(helpers.run_threads([work], timeout=HANG_S))
    assert model.closed
    runtime.close()


@pytest.mark.parametrize("kind", ["async_request", "queue"])
def test_close_from_a_callback(sandbox, backend, kind):
    sandbox.call(close_from_a_callback, backend, kind)


def runtime_close_during_runs(backend: str) -> None:
    runtime, model, feed, expected = _slow(backend)
    started = threading.Event()
    targets = [_loop(model, how, feed, expected, started) for how in ("run", "stream", "async")]

    def close_when_started() -> None:
        assert started.wait(HANG_S), "no run finished before the close"
        runtime.close()

    outcomes = helpers.run_threads([*targets, close_when_started], timeout=HANG_S)
    _only_closed(outcomes)
    assert outcomes[-1][1] is None, f"runtime.close() raised {outcomes[-1][1]!r}"
    assert model.closed
    frame = np.zeros((512, 512), np.float32)
    calls: dict[str, Callable[[], Any]] = {
        "tensor_from_numpy": lambda: runtime.tensor_from_numpy(frame),
        "load_model": lambda: runtime.load_model(helpers.zoo_model("slow").path_for(backend)),
        "available_devices": runtime.available_devices,
        "model.run": lambda: model.run({"x": frame}),
    }
    _each_raises_closed(calls, "runtime.close()")


def test_runtime_close_during_runs_then_every_call_raises_model_closed(sandbox, backend):
    sandbox.call(runtime_close_during_runs, backend)


def use_after_close(backend: str) -> None:
    runtime = InferenceRuntime(backend)
    source = helpers.zoo_model("conv_net")
    model = runtime.load_model(source.path_for(backend), device="CPU")
    feed = source.make_inputs(np.random.default_rng(1))
    stream = model.create_stream()
    request = model.create_async_request()
    queue = model.create_async_queue(depth=2)
    never_started = model.create_async_request()
    stream.run(feed)
    request.start(feed)
    request.wait(timeout=HANG_S)
    queue.submit(feed).wait(timeout=HANG_S)
    closers = [model.close] * 4  # concurrent closes: idempotent, no error
    _only_closed(helpers.run_threads(closers, timeout=HANG_S))
    calls: dict[str, Callable[[], Any]] = {
        "run": lambda: model.run(feed),
        "stream.run": lambda: stream.run(feed),
        "request.start": lambda: request.start(feed),
        "queue.submit": lambda: queue.submit(feed),
        "queue.map": lambda: list(queue.map([feed])),
        "create_stream": model.create_stream,
        "create_async_request": model.create_async_request,
        "create_async_queue": model.create_async_queue,
    }
    _each_raises_closed(calls, "close()")
    try:
        never_started.wait(timeout=1)
    except InferenceRuntimeError:
        pass
    else:
        raise AssertionError("wait() on a request never started returned")
    # Closing what the closed model made: no error, or ModelClosedError.
    _only_closed(
        helpers.run_threads(
            [stream.close, request.close, queue.close, runtime.close], timeout=HANG_S
        )
    )


def test_use_after_close_raises_model_closed(sandbox, backend):
    sandbox.call(use_after_close, backend)


def profiling_after_close(backend: str) -> int:
    runtime = InferenceRuntime(backend)
    source = helpers.zoo_model("conv_net")
    model = runtime.load_model(source.path_for(backend), device="CPU")
    feed = source.make_inputs(np.random.default_rng(1))
    for how, count in (("run", 4), ("stream", 3), ("async", 2), ("queue", 2), ("map", 1)):
        for _ in range(count):
            helpers.run_via(model, how, feed)
    before = model.get_profiling()
    model.close()
    after = model.get_profiling()
    assert before.runs == after.runs == 12, (before.runs, after.runs)
    assert after.wall_time_ms == pytest.approx(before.wall_time_ms)
    assert str(after)  # the readable table still renders
    runtime.close()
    assert model.get_profiling().runs == 12
    return after.runs


def test_get_profiling_after_close_keeps_the_run_counts(sandbox, backend):
    sandbox.call(profiling_after_close, backend)


def closes_during_work(backend: str) -> None:
    """Every close-during-work scenario, outcomes unchecked (the tests above check them)."""
    for how in ("run", "stream", "async", "queue", "map"):
        with contextlib.suppress(AssertionError):
            close_during_work(backend, how)
    for kind in ("async_requests", "queue_frames"):
        with contextlib.suppress(AssertionError):
            close_with_work_in_flight(backend, kind)


def test_the_process_exits_cleanly_after_closes_during_work(tmp_path, backend):
    """Nothing left behind by a close during work may crash or hang the interpreter's exit
    (a native thread still running, a callback into a freed object)."""
    box = Sandbox(tmp_path / "exit")
    try:
        box.call(closes_during_work, backend, timeout=300)
    finally:
        code = box.close()
    errors = box.stderr()
    assert code == 0, f"the worker exited with {describe_exit(code)}:\n{errors[-3000:]}"
    assert "terminate called" not in errors, errors[-3000:]
