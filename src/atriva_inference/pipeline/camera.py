"""One camera: its decode thread, its buffer, its reconnects and its counts."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..errors import InferenceFailedError, InferenceRuntimeError
from .frames import Frame
from .policies import BUFFER_FULL, FrameBuffer, RateLimit
from .sources import Reconnect, Source
from .stats import CameraStats, Counters

__all__ = ["Camera", "Shared"]


@dataclass
class Shared:
    """The pipeline's one lock and what its threads wait for under it (one lock: a stats
    snapshot sees every count at the same instant, and the hand-offs are few per frame)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.work = threading.Condition(self.lock)  # the scheduler: frames, room, the end
        self.ready = threading.Condition(self.lock)  # the consumer: results, the end
        self.submitted = threading.Condition(self.lock)  # the collector: submissions
        self.rooms: list[threading.Condition] = []  # each camera's decoder waits for room
        self.fatal: InferenceRuntimeError | None = None

    def stop(self) -> None:
        """Tell every thread to end (also a finalizer: it only signals, never joins)."""
        with self.lock:
            self.stopping.set()
            for condition in (self.work, self.ready, self.submitted, *self.rooms):
                condition.notify_all()

    def fail(self, error: InferenceRuntimeError) -> None:
        """The pipeline cannot go on (the model closed under it): stop, keep why."""
        with self.lock:
            if self.fatal is None:
                self.fatal = error
        self.stop()


class Camera:
    """A source read by its own thread into a :class:`FrameBuffer`.

    Every field below the source is guarded by ``shared.lock``. A frame is in exactly one
    place at a time -- the buffer, ``outstanding`` (taken by the scheduler: converting or in
    the model, in seq order) or ``ready`` (finished, waiting for the consumer) -- which is
    what ``in_flight`` counts.
    """

    def __init__(
        self,
        name: str,
        source: Source,
        *,
        policy: str,
        buffer_size: int,
        fps: float | None,
        reconnect: Reconnect | None,
        timeout_s: float,
        shared: Shared,
    ) -> None:
        self.name = name
        self.source = source
        self.policy = policy
        self.reconnect = reconnect
        self.timeout_s = timeout_s
        self.shared = shared
        self.buffer = FrameBuffer(policy, buffer_size)
        self.rate = RateLimit(fps) if fps is not None else None
        self.counters = Counters()
        self.state = "starting"
        self.error: InferenceRuntimeError | None = None
        self.outstanding: deque[Frame] = deque()
        self.ready = 0
        self.room = threading.Condition(shared.lock)  # this decoder waits for buffer room
        shared.rooms.append(self.room)
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name=f"atriva-camera-{name}", daemon=True)

    # -- the accounting (callers hold shared.lock) -----------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self.buffer) + len(self.outstanding) + self.ready

    @property
    def done(self) -> bool:
        """Nothing more will come from this camera."""
        return self.state in ("ended", "failed") and self.in_flight == 0

    def drop(self, cause: str, count: int = 1) -> None:
        self.counters.dropped[cause] += count

    def snapshot(self) -> CameraStats:
        return self.counters.snapshot(self.in_flight, self.state, self.error)

    def release(self, into: deque[Frame]) -> int:
        """Move the finished frames at the head of ``outstanding`` (seq order) to ``into``;
        failed ones are counted as dropped. Returns how many became ready."""
        moved = 0
        outstanding = self.outstanding
        while outstanding and outstanding[0].finished:
            frame = outstanding.popleft()
            if frame.error is not None:
                self.drop("error")
            else:
                into.append(frame)
                self.ready += 1
                moved += 1
        return moved

    def discard(self) -> None:
        """At stop: every buffered frame is dropped as ``stopped``."""
        self.drop("stopped", len(self.buffer))
        self.buffer.frames.clear()

    # -- the decode thread -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None) -> bool:
        """Wait for the decode thread; True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set_state(self, state: str, error: InferenceRuntimeError | None = None) -> None:
        shared = self.shared
        with shared.lock:
            if self.state in ("ended", "failed"):
                return
            self.state = state
            if error is not None:
                self.error = error
            shared.work.notify()
            shared.ready.notify_all()

    def _run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # a bug of ours: the camera fails, never silently
            error = (
                exc
                if isinstance(exc, InferenceRuntimeError)
                else InferenceFailedError(f"camera '{self.name}' stopped on {exc!r}")
            )
            if error is not exc:
                error.__cause__ = exc
            self._set_state("failed", error)
        finally:
            self._set_state("ended")

    def _read(self) -> None:
        stopping = self.shared.stopping
        source, reconnect = self.source, self.reconnect
        attempt = 0
        while not stopping.is_set():
            connected_at: float | None = None
            ended = False
            try:
                with source.open(self.timeout_s) as frames:
                    for raw, pts in frames:
                        if connected_at is None:
                            connected_at = time.monotonic()
                            self._set_state("running")
                        if not self._capture(raw, pts):
                            return  # stopping
                if stopping.is_set():
                    return
                if source.kind != "live":
                    if source.loop and connected_at is not None:  # (an empty one would spin)
                        continue
                    self._set_state("ended")
                    return
                ended = True
                lost = InferenceRuntimeError(
                    f"camera '{self.name}': the stream ended (the server closed it)"
                )
            except InferenceRuntimeError as exc:
                if stopping.is_set():
                    return
                lost = exc
            if reconnect is None or not source.reopenable:
                # A live stream that ended without reconnect is over; anything else failed.
                self._set_state("ended" if ended else "failed", None if ended else lost)
                return
            if connected_at is not None and time.monotonic() - connected_at >= (
                reconnect.reset_after_s
            ):
                attempt = 0
            if reconnect.attempts is not None and attempt >= reconnect.attempts:
                self._set_state("failed", lost)
                return
            with self.shared.lock:
                self.counters.reconnects += 1
                self.error = lost
            self._set_state("reconnecting")
            if stopping.wait(reconnect.delay(attempt, self._rng)):
                return
            attempt += 1

    def _capture(self, raw: object, pts: float | None) -> bool:
        """Count the frame and buffer it by the policy; False when the pipeline stops."""
        now, captured_at = time.time(), time.monotonic()
        shared = self.shared
        with shared.lock:
            if self.buffer.policy == "wait":
                while self.buffer.full() and not shared.stopping.is_set():
                    self.room.wait()
            if shared.stopping.is_set():
                return False
            counters = self.counters
            seq = counters.captured
            counters.captured += 1
            if self.rate is not None and not self.rate.keep(captured_at if pts is None else pts):
                self.drop("fps")  # before any conversion: a skipped frame costs its decode only
                return True
            dropped = self.buffer.put(Frame(self, seq, pts, now, captured_at, raw))
            if dropped is not None:
                self.drop(BUFFER_FULL)
            shared.work.notify()
        return True
