"""From camera buffers to the model: the scheduler takes frames round-robin (at most one per
camera per batch), converts only those, submits them to the model's async queue; results
come back on the backend's threads and are released to the consumer in each camera's order.

Two threads: the scheduler, and a collector that waits on each submission in turn only to
catch inference failures (the queue's callback runs on success only).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import (
    InferenceFailedError,
    InferenceRuntimeError,
    InvalidInputError,
    ModelClosedError,
)
from ..execution import AsyncQueue, AsyncResult
from ..tensor import Tensor
from .camera import Camera, Shared
from .frames import Frame, to_image

__all__ = ["Scheduler", "split_outputs", "stack_inputs"]

Preprocess = Callable[[np.ndarray], Any]
Postprocess = Callable[[Any, np.ndarray], Any]


def as_error(exc: BaseException, what: str) -> InferenceRuntimeError:
    """``exc`` as an error of ours (the user's own exception kept as the cause)."""
    if isinstance(exc, InferenceRuntimeError):
        return exc
    error = InferenceFailedError(f"{what} raised {exc!r}")
    error.__cause__ = exc
    return error


def stack_inputs(inputs: Sequence[Any]) -> Any:
    """One batch from per-frame inputs (each with a batch dimension of 1), on axis 0."""
    first = inputs[0]
    if isinstance(first, Mapping):
        return {name: stack_inputs([item[name] for item in inputs]) for name in first}
    arrays = [item.to_numpy() if isinstance(item, Tensor) else np.asarray(item) for item in inputs]
    if len({array.shape for array in arrays}) > 1:
        shapes = ", ".join(str(list(array.shape)) for array in arrays)
        raise InvalidInputError(
            f"frames batched together must have one shape, got {shapes}: pass size=(width, "
            f"height) for cameras of different resolutions"
        )
    batch = np.concatenate(arrays)
    return Tensor(batch, first.layout) if isinstance(first, Tensor) else batch


def split_outputs(outputs: Mapping[str, Tensor], count: int) -> list[dict[str, Tensor]]:
    """Per-frame outputs of a batch of ``count`` (each keeps a batch dimension of 1)."""
    arrays = {}
    for name, tensor in outputs.items():
        array = tensor.to_numpy()
        if array.ndim == 0 or array.shape[0] != count:
            raise InferenceFailedError(
                f"output '{name}': expected a batch of {count} on axis 0, got shape "
                f"{list(array.shape)}; this model does not batch frames (use max_batch=1)"
            )
        arrays[name] = array
    return [
        {name: Tensor(array[index : index + 1]) for name, array in arrays.items()}
        for index in range(count)
    ]


class Scheduler:
    """Feeds the model from the cameras; see the module docstring."""

    def __init__(
        self,
        cameras: list[Camera],
        shared: Shared,
        queue: AsyncQueue,
        ready: deque[Frame],
        *,
        size: tuple[int, int] | None,
        preprocess: Preprocess | None,
        postprocess: Postprocess | None,
        max_batch: int,
        max_delay_s: float,
        staleness_s: float | None,
        capacity: int,
    ) -> None:
        self.cameras = cameras
        self.shared = shared
        self.queue = queue
        self.ready = ready
        self.size = size
        self.preprocess = preprocess
        self.postprocess = postprocess
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.staleness_s = staleness_s
        self.capacity = capacity  # frames per camera taken and not yet delivered
        self.scheduling = True
        self._next = 0  # the camera the round-robin looks at first
        self._submitted: deque[tuple[list[Frame], AsyncResult]] = deque()
        self._threads = [
            threading.Thread(target=self._schedule, name="atriva-pipeline-scheduler", daemon=True),
            threading.Thread(target=self._collect, name="atriva-pipeline-collector", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)

    # -- the scheduler thread ----------------------------------------------------------------
    def _schedule(self) -> None:
        try:
            while (batch := self._take()) is not None:
                self._submit(batch)
        except BaseException as exc:  # the model closed under us, or a bug: stop, loudly
            self.shared.fail(as_error(exc, "the pipeline's scheduler"))
        finally:
            with self.shared.lock:
                self.scheduling = False
                self.shared.submitted.notify_all()

    def _take(self) -> list[Frame] | None:
        """The next batch (at most one frame per camera), waiting up to ``max_delay_s`` after
        its first frame for more; ``None`` when every camera has ended or the pipeline stops."""
        shared = self.shared
        batch: list[Frame] = []
        deadline = 0.0
        with shared.lock:
            while not shared.stopping.is_set():
                frame = self._pick(batch)
                if frame is not None:
                    batch.append(frame)
                    if len(batch) >= self.max_batch:
                        return batch
                    if len(batch) == 1:
                        deadline = time.monotonic() + self.max_delay_s
                    continue
                if batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return batch
                    shared.work.wait(remaining)
                elif all(c.state in ("ended", "failed") and not c.buffer for c in self.cameras):
                    return None
                else:
                    shared.work.wait()
            return None  # frames taken meanwhile are outstanding: stop() counts them

    def _pick(self, batch: list[Frame]) -> Frame | None:
        """Round-robin: the oldest fresh frame of the next camera with one and with room."""
        cameras = self.cameras
        count = len(cameras)
        in_batch = {frame.camera for frame in batch}
        for offset in range(count):
            index = (self._next + offset) % count
            camera = cameras[index]
            if camera in in_batch or len(camera.outstanding) + camera.ready >= self.capacity:
                continue
            if camera.ready and camera.policy != "wait":
                # A live camera's result waits for the consumer: a frame taken now would wait
                # behind it and age, while the buffer keeps the newest for when it is taken.
                continue
            while camera.buffer:
                frame = camera.buffer.take()
                camera.room.notify()
                if (
                    self.staleness_s is not None
                    and time.monotonic() - frame.captured_at > self.staleness_s
                ):
                    camera.drop("stale")
                    self.shared.ready.notify_all()  # that may have been its last frame
                    continue
                camera.outstanding.append(frame)
                self._next = index + 1
                return frame
        return None

    def _submit(self, batch: list[Frame]) -> None:
        """Convert and preprocess each frame (a failure drops that frame), then submit."""
        inputs, good = [], []
        for frame in batch:
            try:
                image = frame.image = to_image(frame.raw, self.size)
                frame.raw = None  # the decoder's frame goes back to its pool
                inputs.append(
                    self.preprocess(image)
                    if self.preprocess is not None
                    else Tensor(image[np.newaxis], "NHWC")
                )
                good.append(frame)
            except Exception as exc:
                what = f"camera '{frame.camera.name}': preprocessing frame {frame.seq}"
                self._finish([frame], [as_error(exc, what)])
        if not good:
            return
        try:
            feed = inputs[0] if len(good) == 1 else stack_inputs(inputs)
            result = self.queue.submit(feed, lambda outputs: self._on_outputs(good, outputs))
        except ModelClosedError as exc:
            self._finish(good, [exc] * len(good))
            raise
        except Exception as exc:
            error = as_error(exc, "submitting frames")
            self._finish(good, [error] * len(good))
            return
        with self.shared.lock:
            self._submitted.append((good, result))
            self.shared.submitted.notify()

    # -- completions -------------------------------------------------------------------------
    def _on_outputs(self, frames: list[Frame], outputs: Mapping[str, Tensor]) -> None:
        """On the backend's thread: split, postprocess (a failure drops that frame only)."""
        per_frame: list[Any] = (
            [outputs] if len(frames) == 1 else split_outputs(outputs, len(frames))
        )
        errors: list[InferenceRuntimeError | None] = [None] * len(frames)
        if self.postprocess is not None:
            for index, frame in enumerate(frames):
                try:
                    per_frame[index] = self.postprocess(per_frame[index], frame.image)
                except Exception as exc:
                    what = f"camera '{frame.camera.name}': postprocess of frame {frame.seq}"
                    errors[index] = as_error(exc, what)
        with self.shared.lock:
            for frame, outputs_of_frame, error in zip(frames, per_frame, errors):
                frame.camera.counters.inferred += 1
                if error is None:
                    frame.outputs = outputs_of_frame
            self._finish_locked(frames, errors)

    def _collect(self) -> None:
        """Wait on each submission in turn; a failed one drops its frames as ``error``."""
        shared = self.shared
        while True:
            with shared.lock:
                while not self._submitted and self.scheduling:
                    shared.submitted.wait()
                if not self._submitted:
                    return
                frames, result = self._submitted.popleft()
            try:
                result.wait()
            except BaseException as exc:
                error = as_error(exc, "inference")
                with shared.lock:
                    left = [frame for frame in frames if not frame.finished]
                    self._finish_locked(left, [error] * len(left))

    def _finish(self, frames: list[Frame], errors: Sequence[InferenceRuntimeError | None]) -> None:
        with self.shared.lock:
            self._finish_locked(frames, errors)

    def _finish_locked(
        self, frames: list[Frame], errors: Sequence[InferenceRuntimeError | None]
    ) -> None:
        """Mark frames finished and release each camera's finished head to the consumer."""
        cameras = []
        for frame, error in zip(frames, errors):
            frame.finished = True
            if error is not None:
                frame.error = error
                frame.camera.error = error
            if frame.camera not in cameras:
                cameras.append(frame.camera)
        for camera in cameras:
            camera.release(self.ready)
        self.shared.ready.notify_all()
        self.shared.work.notify()  # failed frames free room
