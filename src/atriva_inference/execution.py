"""Asynchronous requests, the in-order async queue and streams.

All three are built on one primitive, :meth:`BackendRequest.start` (begin an inference,
call ``on_done(outputs, error)`` exactly once), so no backend writes them again.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.base import BackendRequest
from .errors import (
    InferenceFailedError,
    InferenceRuntimeError,
    InferenceTimeoutError,
    ModelClosedError,
    RequestBusyError,
)
from .tensor import Tensor

if TYPE_CHECKING:
    from .model import Executable, Model

__all__ = ["AsyncQueue", "AsyncRequest", "AsyncResult", "Inputs", "Outputs", "Stream"]

Outputs = dict[str, Tensor]
Inputs = Mapping[str, Any] | Tensor | np.ndarray
Callback = Callable[[Outputs], Any]


#: How often (s) a waiter asks the backend about failures it did not call back for.
REAP_INTERVAL = 0.05

#: The queue whose callback this thread is running, if any (see AsyncQueue.submit).
_in_callback = threading.local()


def _wait(event: threading.Event, request: BackendRequest | None, timeout: float | None) -> bool:
    """Wait for ``event`` up to ``timeout``; meanwhile let the backend report a failure it
    dropped (which sets ``event`` through the pending ``on_done``)."""
    if event.is_set():
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return event.is_set()
        if event.wait(REAP_INTERVAL if remaining is None else min(REAP_INTERVAL, remaining)):
            return True
        if request is not None:
            request.reap()


def _finish(
    model: Model,
    request: BackendRequest,
    started_ns: int,
    outputs: list[np.ndarray] | None,
    error: BaseException | None,
    callback: Callback | None,
) -> tuple[Outputs | None, BaseException | None]:
    """What every async completion does: count it, wrap outputs, run the user's callback.

    A backend error that is not ours yet is wrapped (and chained); an exception raised by
    the callback is the caller's own and is returned as it is, to be raised at ``wait``.
    """
    request.stats.record(started_ns, time.perf_counter_ns())
    if error is not None:
        if not isinstance(error, InferenceRuntimeError):
            wrapped = InferenceFailedError(f"asynchronous inference failed: {error}")
            wrapped.__cause__ = error
            error = wrapped
        return None, error
    wrapped_outputs = model._wrap(outputs or [])
    if callback is not None:
        try:
            callback(wrapped_outputs)
        except BaseException as exc:  # surfaces at wait(), never lost
            return wrapped_outputs, exc
    return wrapped_outputs, None


class AsyncRequest:
    """One in-flight inference at a time: ``start`` returns at once, ``wait`` gives outputs.

    ``callback(outputs)`` (optional) runs on the backend's thread when the inference
    succeeds; an exception it raises is kept and re-raised by :meth:`wait`, as is any
    inference error. The request is reusable after ``wait``.
    """

    def __init__(self, model: Model) -> None:
        self._model = model
        self._requests: dict[Executable, BackendRequest] = {}
        # Dropped without close(): its requests are still given back to the model.
        self._release = weakref.finalize(self, _unregister_all, model, self._requests)
        self._request: BackendRequest | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._busy = False
        self._started = False
        self._callback: Callback | None = None
        self._inputs: list[np.ndarray] = []
        self._outputs: Outputs | None = None
        self._error: BaseException | None = None
        self._started_ns = 0

    def start(self, inputs: Inputs, callback: Callback | None = None) -> None:
        """Validate ``inputs`` and begin inference; raises if the request is still busy."""
        model = self._model
        model._check_open()
        if not self._release.alive:
            raise ModelClosedError("this async request is closed; create another")
        with self._lock:
            if self._busy:
                raise RequestBusyError(
                    "request is still running: wait() for it before starting it again, "
                    "or create another request"
                )
            self._busy = True
        try:
            self._started_ns = time.perf_counter_ns()
            executable, arrays, _first = model._route(inputs)
            request = self._requests.get(executable)
            if request is None:
                _prune(model, self._requests)
                request = self._requests[executable] = model._new_request(executable)
            # Keeping the arrays referenced keeps their memory alive while the backend reads it.
            self._inputs = arrays
            self._request = request
            self._callback = callback
            self._outputs = None
            self._error = None
            self._finished.clear()
            self._started = True
            request.start(arrays, self._on_done)
        except BaseException:  # nothing started: no stale result may be waited for
            self._busy = False
            self._started = False
            self._inputs = []
            self._outputs = self._error = None
            raise

    def _on_done(self, outputs: list[np.ndarray] | None, error: BaseException | None) -> None:
        assert self._request is not None
        self._outputs, self._error = _finish(
            self._model, self._request, self._started_ns, outputs, error, self._callback
        )
        self._inputs = []
        self._finished.set()

    @property
    def done(self) -> bool:
        """True when the started inference has finished (successfully or not)."""
        return self._started and self._finished.is_set()

    @property
    def busy(self) -> bool:
        """True between ``start`` and the ``wait`` that collects the result."""
        return self._busy

    def wait(self, timeout: float | None = None) -> Outputs:
        """Block until done and return the outputs, or raise the inference's error.

        On timeout raises :class:`InferenceTimeoutError`; the request stays busy and
        ``wait`` may be called again.
        """
        if not self._started:
            raise InferenceRuntimeError("wait() called on a request that was never started")
        if not _wait(self._finished, self._request, timeout):
            raise InferenceTimeoutError(
                f"inference did not complete within {timeout} s; the request is still running"
            )
        self._busy = False
        error, outputs = self._error, self._outputs
        if error is not None:
            self._error = None
            raise error
        assert outputs is not None
        return outputs

    def close(self) -> None:
        """Give the request back to the model (its counts stay in the profile). Idempotent;
        a request still running is waited for first."""
        if self._busy:
            with contextlib.suppress(BaseException):
                self.wait()
        self._release()
        self._model._drain_released()

    def __enter__(self) -> AsyncRequest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _unregister_all(model: Model, requests: dict[Executable, BackendRequest]) -> None:
    # Also a finalizer: only queue them (see Model.unregister_later).
    model.unregister_later(list(requests.values()))
    requests.clear()


def _prune(model: Model, requests: dict[Executable, BackendRequest]) -> None:
    """Drop the requests of executables the shape cache evicted (they hold compiles)."""
    stale = [executable for executable in requests if executable.retired]
    model.unregister([requests.pop(executable) for executable in stale])


class AsyncResult:
    """The future of one frame submitted to an :class:`AsyncQueue`."""

    __slots__ = ("_error", "_finished", "_outputs", "_request")

    def __init__(self) -> None:
        self._finished = threading.Event()
        self._outputs: Outputs | None = None
        self._error: BaseException | None = None
        self._request: BackendRequest | None = None

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Outputs:
        """The frame's outputs; raises its inference or callback error, or on timeout."""
        if not _wait(self._finished, self._request, timeout):
            raise InferenceTimeoutError(f"inference did not complete within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._outputs is not None
        return self._outputs


class AsyncQueue:
    """At most ``depth`` inferences in flight, for pipelines (one queue per model).

    ``submit`` blocks while all requests are busy (back-pressure), then returns an
    :class:`AsyncResult`. ``map`` yields outputs in submission order. Use it as a context
    manager: leaving the block waits for everything submitted.
    """

    def __init__(self, model: Model, base: Executable, requests: list[BackendRequest]) -> None:
        self._model = model
        # Free requests per executable: frames of another signature get requests of their own.
        self._free: dict[Executable, list[BackendRequest]] = {base: list(requests)}
        self._release = weakref.finalize(self, _unregister_queue, model, self._free)
        self._depth = len(requests)
        self._native_async = all(request.native_async for request in requests)
        # Re-entrant: reaping a dropped failure releases its request from inside a wait.
        self._available = threading.Condition(threading.RLock())
        self._in_flight = 0
        self._busy: set[BackendRequest] = set()
        self._closed = False

    @property
    def depth(self) -> int:
        """How many inferences may be in flight at once."""
        return self._depth

    def submit(self, inputs: Inputs, callback: Callback | None = None) -> AsyncResult:
        """Validate ``inputs``, wait for a free request, start it; returns the frame's result.

        Invalid inputs raise here, before anything is queued.
        """
        model = self._model
        model._check_open()
        if self._closed:
            raise ModelClosedError("this async queue is closed; create another")
        executable, arrays, _first = model._route(inputs)
        with self._available:
            if self._in_flight >= self._depth and getattr(_in_callback, "queue", None) is self:
                raise InferenceRuntimeError(
                    "submit() from this queue's own callback while all its requests are busy "
                    "would wait for itself: submit from another thread, or use a larger depth"
                )
            self._enter()
            request = self._pop_free(executable)
        result = AsyncResult()
        started_ns = time.perf_counter_ns()

        def release(request: BackendRequest | None) -> None:
            with self._available:
                if request is not None:
                    self._busy.discard(request)
                    self._give_back({executable: request})
                self._leave()

        def on_done(outputs: list[np.ndarray] | None, error: BaseException | None) -> None:
            assert request is not None
            _in_callback.queue = self
            try:
                result._outputs, result._error = _finish(
                    model, request, started_ns, outputs, error, callback
                )
            finally:
                _in_callback.queue = None
            release(request)
            result._finished.set()
            del arrays[:]  # the backend is done reading them

        try:
            if request is None:
                request = model._throughput_requests(executable, 1)[0]
            result._request = request
            with self._available:
                self._busy.add(request)
            request.start(arrays, on_done)
        except BaseException:
            release(request)
            raise
        return result

    def _enter(self) -> None:
        """Take a slot for a frame (waiting while ``depth`` are in flight)."""
        with self._available:
            while self._in_flight >= self._depth:
                self._wait_for_a_slot(REAP_INTERVAL)
            self._in_flight += 1

    def _leave(self) -> None:
        with self._available:
            self._in_flight -= 1
            self._available.notify_all()

    def _pop_free(self, executable: Executable) -> BackendRequest | None:
        """A free request of ``executable``, or None; requests of evicted signatures go."""
        with self._available:
            free = self._free.get(executable)
            if free is None:
                stale = [e for e in self._free if e.retired]
                self._model.unregister(r for e in stale for r in self._free.pop(e))
                free = self._free[executable] = []
            return free.pop() if free else None

    def _take_request(self, executable: Executable) -> BackendRequest:
        """A free request of ``executable`` (made when none is free), for one user."""
        request = self._pop_free(executable)
        return request or self._model._throughput_requests(executable, 1)[0]

    def _give_back(self, requests: dict[Executable, BackendRequest]) -> None:
        with self._available:
            for executable, request in requests.items():
                # Evicted meanwhile, or the queue already released its requests (closed or
                # dropped while the map ran): give it back to the model.
                if executable.retired or not self._release.alive:
                    self._model.unregister_later([request])
                else:
                    self._free.setdefault(executable, []).append(request)

    def _wait_for_a_slot(self, timeout: float) -> None:
        """Called holding the condition: wait a while, then reap dropped failures."""
        if not self._available.wait(timeout):
            for request in list(self._busy):
                request.reap()

    def map(self, frames: Iterable[Inputs]) -> Iterator[Outputs]:
        """Run every item of ``frames``; yield their outputs in submission order.

        At most ``depth`` frames are in flight or waiting to be yielded. An invalid frame or
        a failed inference raises when its turn to be yielded comes.
        """
        self._model._check_open()
        if self._closed:
            raise ModelClosedError("this async queue is closed; create another")
        if not self._native_async:
            # No native async API: frames would be handed one by one to worker threads.
            # Workers that pull frames themselves do what raw threaded code does.
            yield from _PullingMap(self, frames).results()
            return
        pending: deque[AsyncResult] = deque()
        iterator = iter(frames)
        failure: BaseException | None = None
        while True:
            try:
                inputs = next(iterator)
            except StopIteration:
                break
            except BaseException as exc:  # the iterable's own error: after the frames before it
                failure = exc
                break
            if len(pending) >= self._depth:  # bounds what waits to be yielded, too
                yield pending.popleft().wait()
            try:
                pending.append(self.submit(inputs))
            except BaseException as exc:  # an invalid frame: after the frames before it
                failure = exc
                break
            while pending and pending[0].done:
                yield pending.popleft().wait()
        while pending:
            yield pending.popleft().wait()
        if failure is not None:
            raise failure

    def wait_all(self, timeout: float | None = None) -> None:
        """Block until nothing is in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._available:
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise InferenceTimeoutError(
                        f"{self._in_flight} inference(s) still in flight after {timeout} s"
                    )
                self._wait_for_a_slot(
                    REAP_INTERVAL if remaining is None else min(REAP_INTERVAL, remaining)
                )

    def close(self) -> None:
        """Wait for everything in flight, then give the requests back. Idempotent."""
        self._closed = True
        self.wait_all()
        self._release()
        self._model._drain_released()

    def __enter__(self) -> AsyncQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _PullingMap:
    """``AsyncQueue.map`` for backends without native async: ``depth`` worker threads each
    take the next frame, run it on a request of their own and file the outputs by index;
    the caller yields them in order. Every frame counts in the queue's in-flight total
    (``submit`` and ``wait_all`` see it); ``close`` stops the map at the next frame.

    Wake-ups are targeted (on 2 busy cores each needless one costs throughput): a worker
    wakes the caller only with the result it waits for, the caller wakes one worker only
    when one waits for room.
    """

    def __init__(self, queue: AsyncQueue, frames: Iterable[Inputs]) -> None:
        self._queue = queue
        self._frames = iter(frames)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # the caller waits for its result
        self._room = threading.Condition(self._lock)  # workers wait while depth are ahead
        self._waiting_for_room = 0
        self._pulling = threading.Lock()
        self._results: dict[int, tuple[Outputs | None, BaseException | None]] = {}
        self._next_frame = 0  # index of the next frame a worker takes
        self._next_result = 0  # index of the next result the caller yields
        self._ended: int | None = None  # frame count once the iterable is exhausted
        self._stopped = False

    def results(self) -> Iterator[Outputs]:
        workers = [
            threading.Thread(target=self._work, name="atriva-map", daemon=True)
            for _ in range(self._queue.depth)
        ]
        for worker in workers:
            worker.start()
        try:
            while True:
                with self._lock:
                    index = self._next_result
                    while index not in self._results and self._ended != index:
                        self._ready.wait()
                    if index not in self._results:
                        return  # every frame yielded
                    outputs, error = self._results.pop(index)
                    self._next_result = index + 1
                    if self._waiting_for_room:
                        self._room.notify()
                if error is not None:
                    raise error
                assert outputs is not None
                yield outputs
        finally:
            with self._lock:
                self._stopped = True
                self._room.notify_all()
            for worker in workers:
                worker.join()

    def _file(self, index: int, result: tuple[Outputs | None, BaseException | None]) -> None:
        with self._lock:
            self._results[index] = result
            if index == self._next_result:
                self._ready.notify()

    def _end(self, count: int) -> None:
        """Called holding the lock: the iterable has ``count`` frames."""
        self._ended = count
        self._ready.notify()

    def _take(self) -> tuple[int, Inputs] | None:
        """The next frame and its index, waiting while ``depth`` are ahead of the caller."""
        depth = self._queue.depth
        with self._pulling:  # iterators are not thread-safe: one worker reads at a time
            with self._lock:
                while not self._stopped and self._next_frame >= self._next_result + depth:
                    self._waiting_for_room += 1
                    self._room.wait()
                    self._waiting_for_room -= 1
                if self._stopped or self._ended is not None:
                    return None
                index = self._next_frame
                if self._queue._closed:  # close() stops a running map, as submit() refuses
                    self._results[index] = (
                        None,
                        ModelClosedError("this async queue was closed while map() ran"),
                    )
                    self._end(index + 1)
                    return None
            try:
                inputs = next(self._frames)  # outside the lock: others file results meanwhile
            except StopIteration:
                with self._lock:
                    self._end(index)
                return None
            except BaseException as exc:  # the iterable's own error, raised in its turn
                with self._lock:
                    self._results[index] = (None, exc)
                    self._end(index + 1)
                return None
            with self._lock:
                self._next_frame = index + 1
            return index, inputs

    def _work(self) -> None:
        queue = self._queue
        model = queue._model
        requests: dict[Executable, BackendRequest] = {}
        try:
            while (taken := self._take()) is not None:
                index, inputs = taken
                self._file(index, self._run(model, requests, inputs))
        finally:
            queue._give_back(requests)

    def _run(
        self, model: Model, requests: dict[Executable, BackendRequest], inputs: Inputs
    ) -> tuple[Outputs | None, BaseException | None]:
        queue = self._queue
        queue._enter()
        started = time.perf_counter_ns()
        try:
            model._check_open()
            executable, arrays, _first = model._route(inputs)
            request = requests.get(executable)
            if request is None:
                request = requests[executable] = queue._take_request(executable)
            try:
                outputs = request.infer(arrays)
            finally:
                request.stats.record(started, time.perf_counter_ns())
            return model._wrap(outputs), None
        except BaseException as exc:  # reaches the caller when this frame's turn comes
            return None, exc
        finally:
            queue._leave()


def _unregister_queue(model: Model, free: dict[Executable, list[BackendRequest]]) -> None:
    model.unregister_later([request for requests in free.values() for request in requests])
    free.clear()


class Stream:
    """A dedicated, pre-bound request for one producer, reused every frame.

    Outputs of :meth:`run` may be views into the stream's own buffers: they are valid until
    the next ``run`` of this stream. Copy (``tensor.to_numpy(copy=True)``) to keep them.
    A stream is for one thread; use more streams for more producers.
    """

    def __init__(self, model: Model) -> None:
        self._model = model
        self._requests: dict[Executable, BackendRequest] = {}
        self._release = weakref.finalize(self, _unregister_all, model, self._requests)
        self._closed = False

    def close(self) -> None:
        """Give the stream's requests back to the model (counts stay). Idempotent."""
        self._closed = True
        self._release()
        self._model._drain_released()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, inputs: Inputs) -> Outputs:
        started = time.perf_counter_ns()
        model = self._model
        model._check_open()
        if self._closed:
            raise ModelClosedError("this stream is closed; create another")
        executable, arrays, first = model._route(inputs)
        request = self._requests.get(executable)
        if request is None:
            _prune(model, self._requests)
            request = self._requests[executable] = model._new_request(executable)
        try:
            outputs = request.infer_bound(arrays)
        finally:
            ended = time.perf_counter_ns()
            request.stats.record(started, ended)
        if first is not None:
            first.first_call_ms = (ended - started) / 1e6
        return model._wrap(outputs)
