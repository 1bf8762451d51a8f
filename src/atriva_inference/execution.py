"""Asynchronous requests, the in-order async queue and streams, on the execution engine.

Each is a :class:`~atriva_inference._engine.Holder` -- where its runs borrow requests from --
and runs through the engine's one run path (:meth:`Engine.run`, :meth:`Engine.start`), whose
asynchronous primitive is :meth:`BackendRequest.start` (``on_done`` called exactly once).

Input arrays are read in place, never copied: after ``start``/``submit`` the backend reads
them until that inference is done, so the caller must not write to them before ``wait()``
returns (or the callback runs). Use a new array per frame, or copy, to reuse a buffer sooner.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from ._engine import Engine, Executable, Inputs, Outputs
from .backends.base import BackendRequest
from .errors import (
    InferenceRuntimeError,
    InferenceTimeoutError,
    ModelClosedError,
    RequestBusyError,
)

__all__ = ["AsyncQueue", "AsyncRequest", "AsyncResult", "Inputs", "Outputs", "Stream"]

Callback = Callable[[Outputs], object]

#: The queue whose callback this thread is running, if any (see AsyncQueue.submit).
_in_callback = threading.local()


def _call_back(
    outputs: Outputs | None, error: BaseException | None, callback: Callback | None
) -> BaseException | None:
    """Run the user's callback on success; its exception is the caller's own, kept to be
    raised at ``wait`` (never lost)."""
    if error is None and callback is not None:
        assert outputs is not None
        try:
            callback(outputs)
        except BaseException as exc:
            return exc
    return error


class _Dedicated:
    """The requests one user keeps for itself (a stream, an async request, a map worker):
    one per executable, made on first use, kept across runs."""

    __slots__ = ("_engine", "_make", "requests")

    def __init__(
        self, engine: Engine, make: Callable[[Executable], BackendRequest] | None = None
    ) -> None:
        self._engine = engine
        self._make = make
        self.requests: dict[Executable, BackendRequest] = {}

    def take(self, executable: Executable) -> BackendRequest:
        request = self.requests.get(executable)
        if request is None:
            # Drop the requests of executables the shape cache evicted (they hold compiles).
            stale = [e for e in self.requests if e.retired]
            self._engine.release([self.requests.pop(e) for e in stale])
            if self._make is not None:
                request = self._make(executable)
            else:
                request = self._engine.new_requests(executable)[0]
            self.requests[executable] = request
        return request

    def give(self, executable: Executable, request: BackendRequest) -> None:
        """Kept: the same request serves this user's next run."""


def _release_all(engine: Engine, requests: dict[Executable, BackendRequest]) -> None:
    # Also a finalizer: only queue them (see Engine.release_later).
    engine.release_later(list(requests.values()))
    requests.clear()


class AsyncRequest:
    """One in-flight inference at a time: ``start`` returns at once, ``wait`` gives outputs.

    ``callback(outputs)`` (optional) runs on the backend's thread when the inference
    succeeds; an exception it raises is kept and re-raised by :meth:`wait`, as is any
    inference error. The request is reusable after ``wait``. The input arrays are read in
    place until the inference is done: do not write to them before ``wait()`` returns.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._holder = _Dedicated(engine)
        # Dropped without close(): its requests are still given back to the engine.
        self._release = weakref.finalize(self, _release_all, engine, self._holder.requests)
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._busy = False
        self._started = False
        self._callback: Callback | None = None
        self._outputs: Outputs | None = None
        self._error: BaseException | None = None

    def start(self, inputs: Inputs, callback: Callback | None = None) -> None:
        """Validate ``inputs`` and begin inference; raises if the request is still busy."""
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
            self._callback = callback
            self._outputs = self._error = None
            self._finished.clear()
            self._started = True
            self._engine.start(inputs, self._holder, self._on_done)
        except BaseException:  # nothing started: no stale result may be waited for
            self._busy = False
            self._started = False
            raise

    def _on_done(self, outputs: Outputs | None, error: BaseException | None) -> None:
        self._error = _call_back(outputs, error, self._callback)
        self._outputs = outputs
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
        if not self._finished.wait(timeout):
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
        self._engine.tidy()

    def __enter__(self) -> AsyncRequest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncResult:
    """The future of one frame submitted to an :class:`AsyncQueue`."""

    __slots__ = ("_error", "_finished", "_outputs")

    def __init__(self) -> None:
        self._finished = threading.Event()
        self._outputs: Outputs | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Outputs:
        """The frame's outputs; raises its inference or callback error, or on timeout."""
        if not self._finished.wait(timeout):
            raise InferenceTimeoutError(f"inference did not complete within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._outputs is not None
        return self._outputs


class AsyncQueue:
    """At most ``depth`` inferences in flight, for pipelines (one queue per model).

    ``submit`` blocks while all requests are busy (back-pressure), then returns an
    :class:`AsyncResult`. ``map`` yields outputs in submission order. Use it as a context
    manager: leaving the block waits for everything submitted. A frame's arrays are read in
    place until its result is done: do not write to them before then.
    """

    def __init__(self, engine: Engine, requests: list[BackendRequest]) -> None:
        self._engine = engine
        # Free requests per executable: frames of another signature get requests of their own.
        self._free: dict[Executable, list[BackendRequest]] = {engine.base: list(requests)}
        self._release = weakref.finalize(self, _release_queue, engine, self._free)
        self._depth = len(requests)
        self._native_async = all(request.native_async for request in requests)
        self._available = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._closed = False

    @property
    def depth(self) -> int:
        """How many inferences may be in flight at once."""
        return self._depth

    # -- the queue as a holder: free requests per executable ------------------------------
    def take(self, executable: Executable) -> BackendRequest:
        """A free request of ``executable`` (made when none is free); requests of evicted
        signatures go."""
        with self._available:
            free = self._free.get(executable)
            if free is None:
                stale = [e for e in self._free if e.retired]
                self._engine.release_later(r for e in stale for r in self._free.pop(e))
                free = self._free[executable] = []
            request = free.pop() if free else None
        if request is None:
            request = self._engine.new_requests(executable, 1, throughput=True)[0]
        return request

    def give(self, executable: Executable, request: BackendRequest) -> None:
        with self._available:
            # Evicted meanwhile, or the queue already released its requests (closed or
            # dropped while frames ran): give it back to the engine.
            if executable.retired or not self._release.alive:
                self._engine.release_later([request])
            else:
                self._free.setdefault(executable, []).append(request)

    # -- frames ----------------------------------------------------------------------------
    def submit(self, inputs: Inputs, callback: Callback | None = None) -> AsyncResult:
        """Validate ``inputs``, wait for a free request, start it; returns the frame's result.

        Invalid inputs raise here, before anything is queued.
        """
        if self._engine.closed:
            raise self._engine.closed_error()
        if self._closed:
            raise ModelClosedError("this async queue is closed; create another")
        with self._available:
            if self._in_flight >= self._depth and getattr(_in_callback, "queue", None) is self:
                raise InferenceRuntimeError(
                    "submit() from this queue's own callback while all its requests are busy "
                    "would wait for itself: submit from another thread, or use a larger depth"
                )
        self._enter()
        result = AsyncResult()

        def on_done(outputs: Outputs | None, error: BaseException | None) -> None:
            _in_callback.queue = self
            try:
                result._error = _call_back(outputs, error, callback)
            finally:
                _in_callback.queue = None
            result._outputs = outputs
            self._leave()
            result._finished.set()

        try:
            self._engine.start(inputs, self, on_done)
        except BaseException:
            self._leave()
            raise
        return result

    def _enter(self) -> None:
        """Take a slot for a frame (waiting while ``depth`` are in flight)."""
        with self._available:
            while self._in_flight >= self._depth:
                self._available.wait()
            self._in_flight += 1

    def _leave(self) -> None:
        with self._available:
            self._in_flight -= 1
            self._available.notify_all()

    def map(self, frames: Iterable[Inputs]) -> Iterator[Outputs]:
        """Run every item of ``frames``; yield their outputs in submission order.

        At most ``depth`` frames are in flight or waiting to be yielded. An invalid frame or
        a failed inference raises when its turn to be yielded comes.
        """
        if self._engine.closed:
            raise self._engine.closed_error()
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
                self._available.wait(remaining)

    def close(self) -> None:
        """Wait for everything in flight, then give the requests back. Idempotent."""
        self._closed = True
        self.wait_all()
        self._release()
        self._engine.tidy()

    def __enter__(self) -> AsyncQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _release_queue(engine: Engine, free: dict[Executable, list[BackendRequest]]) -> None:
    engine.release_later([request for requests in free.values() for request in requests])
    free.clear()


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
        engine = queue._engine
        holder = _Dedicated(engine, make=queue.take)  # requests of the queue, kept per worker
        try:
            while (taken := self._take()) is not None:
                index, inputs = taken
                queue._enter()
                try:
                    result = engine.run(inputs, holder), None
                except BaseException as exc:  # reaches the caller when this frame's turn comes
                    result = None, exc
                finally:
                    queue._leave()
                self._file(index, result)
        finally:
            for executable, request in holder.requests.items():
                queue.give(executable, request)


class Stream:
    """A dedicated, pre-bound request for one producer, reused every frame.

    Outputs of :meth:`run` may be views into the stream's own buffers: they are valid until
    the next ``run`` of this stream. Copy (``tensor.to_numpy(copy=True)``) to keep them.
    A stream is for one thread; use more streams for more producers.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._holder = _Dedicated(engine)
        self._release = weakref.finalize(self, _release_all, engine, self._holder.requests)
        self._closed = False

    def close(self) -> None:
        """Give the stream's requests back to the model (counts stay). Idempotent."""
        self._closed = True
        self._release()
        self._engine.tidy()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, inputs: Inputs) -> Outputs:
        if self._closed:
            raise ModelClosedError("this stream is closed; create another")
        return self._engine.run(inputs, self._holder, bound=True)
