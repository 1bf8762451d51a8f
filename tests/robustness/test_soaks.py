"""Soaks: many loads, runs, queue submits and shape-cache evictions leave resident memory,
threads and open file descriptors flat after a warm-up.

The soaks run in a worker process of their own (so other tests' state does not blur the
measurements, and a crash or hang fails the test). Resources are read from /proc/self after a
warm-up of the same work and again at the end, after ``gc.collect()``; the growth allowed is
stated below: a leak of one compiled model, request or buffer per iteration exceeds it many
times over.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, Model
from tests.robustness import helpers
from tests.robustness.sandbox import Sandbox

pytestmark = pytest.mark.robustness

#: Allowed growth after the warm-up: resident memory (KiB), threads, file descriptors.
RSS_KIB = {"load_close": 8 * 1024, "stream": 4 * 1024, "queue": 4 * 1024}
RSS_KIB_SHAPES = 8 * 1024
THREADS = 2
FDS = 2


def _measure(warmup: Callable[[], None], work: Callable[[], None], what: str) -> dict[str, Any]:
    warmup()
    gc.collect()
    before = helpers.process_stats()
    work()
    gc.collect()
    after = helpers.process_stats()
    growth = {key: after[key] - before[key] for key in before}
    limits = {"rss_kib": RSS_KIB.get(what, RSS_KIB_SHAPES), "threads": THREADS, "fds": FDS}
    over = {key: growth[key] for key in growth if growth[key] > limits[key]}
    assert not over, f"{what}: grew by {over} (allowed {limits}); before {before}, after {after}"
    return {"before": before, "after": after, "growth": growth}


def load_close(backend: str, cycles: int) -> dict[str, Any]:
    source = helpers.zoo_model("conv_net")
    feed = source.make_inputs(np.random.default_rng(0))

    def cycle(count: int) -> None:
        for index in range(count):
            runtime = InferenceRuntime(backend) if index % 10 == 0 else shared
            model = runtime.load_model(source.path_for(backend), device="CPU")
            model.run(feed)
            with model.create_stream() as stream:
                stream.run(feed)
            model.close()
            if runtime is not shared:
                runtime.close()

    shared = InferenceRuntime(backend)
    try:
        return _measure(lambda: cycle(10), lambda: cycle(cycles), "load_close")
    finally:
        shared.close()


def stream_runs(backend: str, runs: int) -> dict[str, Any]:
    model = helpers.loaded(backend, "conv_net")
    source = helpers.zoo_model("conv_net")
    feed = source.make_inputs(np.random.default_rng(0))
    expected = source.reference(feed)
    with model.create_stream() as stream:

        def run(count: int) -> None:
            for _ in range(count):
                outputs = stream.run(feed)
            helpers.assert_answers({k: v.to_numpy() for k, v in outputs.items()}, expected)

        return _measure(lambda: run(runs // 10), lambda: run(runs), "stream")


def queue_submits(backend: str, submits: int) -> dict[str, Any]:
    model = helpers.loaded(backend, "conv_net")
    source = helpers.zoo_model("conv_net")
    feed = source.make_inputs(np.random.default_rng(0))
    expected = source.reference(feed)
    calls = [0]

    def on_done(outputs: dict[str, Any]) -> None:
        calls[0] += 1

    def submit(count: int) -> None:
        calls[0] = 0
        recent: deque[Any] = deque(maxlen=4)  # keeping every result would hold every output
        for _ in range(count):
            recent.append(queue.submit(feed, callback=on_done))
        queue.wait_all(timeout=helpers.WAIT_S * 4)
        assert calls[0] == count, f"{calls[0]} callbacks for {count} submits"
        for result in recent:
            outputs = result.wait(timeout=helpers.WAIT_S)
            helpers.assert_answers({k: v.to_numpy() for k, v in outputs.items()}, expected)

    with model.create_async_queue(depth=4) as queue:
        return _measure(lambda: submit(submits // 10), lambda: submit(submits), "queue")


def _shapes(count: int) -> list[tuple[int, int, int, int]]:
    return [(1 + index % 2, 3, 4 + index, 5 + (index * 3) % 7) for index in range(count)]


def shape_evictions(backend: str, static_shapes: bool, runs: int) -> dict[str, Any]:
    source = helpers.zoo_model("dynamic")
    runtime = InferenceRuntime(backend)
    model: Model = runtime.load_model(
        source.path_for(backend), device="CPU", shape_cache_size=2, static_shapes=static_shapes
    )
    shapes = _shapes(8 if static_shapes else 30)
    rng = np.random.default_rng(0)
    stream = model.create_stream()
    request = model.create_async_request()
    queue = model.create_async_queue(depth=2)

    def run(count: int) -> None:
        for index in range(count):
            feed = {"x": rng.standard_normal(shapes[index % len(shapes)]).astype(np.float32)}
            how = ("run", "stream", "async", "queue")[index % 4]
            if how == "run":
                outputs = model.run(feed)
            elif how == "stream":
                outputs = stream.run(feed)
            elif how == "async":
                request.start(feed)
                outputs = request.wait(timeout=helpers.WAIT_S)
            else:
                outputs = queue.submit(feed).wait(timeout=helpers.WAIT_S)
            helpers.assert_answers({"y": outputs["y"].to_numpy()}, source.reference(feed))
            assert model.shape_cache_info().currsize <= 2

    try:
        what = "static shapes" if static_shapes else "shapes"
        # Warm up over every shape four times: static shapes give each compile requests (and
        # on OpenVINO waiter threads) of its own, and the steady state, where holders have let
        # go of evicted compiles, comes only after a few rounds of evictions.
        return _measure(lambda: run(len(shapes) * 4), lambda: run(runs), what)
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def fresh_sandbox(tmp_path_factory):
    """A worker for the soaks only: other tests' state does not blur the measurements."""
    with Sandbox(tmp_path_factory.mktemp("soaks")) as box:
        yield box


def test_load_close_cycles_leave_resources_flat(fresh_sandbox, backend):
    print(fresh_sandbox.call(load_close, backend, 100, timeout=300))


def test_stream_runs_leave_resources_flat(fresh_sandbox, backend):
    print(fresh_sandbox.call(stream_runs, backend, 5000, timeout=300))


def test_queue_submits_leave_resources_flat(fresh_sandbox, backend):
    print(fresh_sandbox.call(queue_submits, backend, 2000, timeout=300))


def test_shape_cache_evictions_leave_resources_flat(fresh_sandbox, backend):
    print(fresh_sandbox.call(shape_evictions, backend, False, 300, timeout=300))


def test_static_shape_evictions_leave_resources_flat(fresh_sandbox, backend):
    print(fresh_sandbox.call(shape_evictions, backend, True, 32, timeout=300))
