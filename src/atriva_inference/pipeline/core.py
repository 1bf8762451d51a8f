"""``Pipeline``: cameras in, a model's results per camera out (see docs/pipeline.md)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import InvalidInputError
from ..model import Model
from .batching import Postprocess, Preprocess, Scheduler
from .camera import Camera, Shared
from .frames import Frame, FrameResult, require_av
from .policies import resolve_policy
from .sources import MediaSource, Reconnect, make_source
from .stats import CameraStats

__all__ = ["Pipeline"]

#: Frames buffered per camera before the policy acts. Two: the decoder fills one slot while
#: the scheduler takes the other; more only adds latency under ``latest`` (each slot is a
#: frame period) and decoded frames held (a 1080p frame is 3 MB).
DEFAULT_BUFFER_SIZE = 2

#: How long a batch waits for more cameras after its first frame. Unsynchronised 25 fps
#: cameras deliver a frame every 40 ms each; waiting a quarter of that fills a batch with
#: about a quarter of the cameras at most 10 ms later -- less than one inference of the
#: detectors this is for. Used only with ``max_batch > 1`` (measure before turning it on).
DEFAULT_MAX_DELAY_MS = 10.0


class Pipeline:
    """Frames from ``sources`` through ``model``, results per camera (see docs/pipeline.md).

    ``sources``: a list (cameras ``cam0``, ``cam1``, ...) or a dict name -> source; a source
    is a video file path, an ``rtsp://``/``http(s)://``/``tcp://`` URL, or an iterable (or a
    callable returning one) of RGB ``uint8`` HWC arrays. ``policy``: ``"auto"``, ``"wait"``,
    ``"latest"``, ``"drop_newest"`` or a dict camera -> policy (``auto`` waits for files and
    frames from Python, keeps the latest for live URLs). ``buffer_size``: frames buffered
    per camera. ``staleness_ms``: frames older than this when the model could take them are
    dropped. ``fps``: at most this many frames per second per camera, dropped before any
    conversion. ``size=(width, height)``: what frames are scaled to (default: the model's
    static input size, else as decoded). ``preprocess(frame)`` returns the model's inputs
    for one frame (batch dimension 1) when the RGB HWC frame is not enough;
    ``postprocess(outputs, frame)`` turns outputs into what results carry. ``max_batch``:
    frames of different cameras run together, a batch waiting at most ``max_delay_ms``
    after its first frame. ``loop``: read files (and re-readable frames) again at their
    end. ``reconnect``: ``True``, ``False`` or a :class:`Reconnect` (timeouts, back-off).

    It starts at once. Iterate it for :class:`FrameResult` values (per camera in ``seq``
    order); iteration ends when every camera has ended and every result was delivered.
    ``stop()`` (or leaving the ``with`` block) ends it at any time.
    """

    def __init__(
        self,
        model: Model,
        sources: Sequence[Any] | Mapping[str, Any] | str | os.PathLike[str],
        *,
        policy: str | Mapping[str, str] = "auto",
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        staleness_ms: float | None = None,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        preprocess: Preprocess | None = None,
        postprocess: Postprocess | None = None,
        max_batch: int = 1,
        max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
        loop: bool = False,
        reconnect: bool | Reconnect = True,
    ) -> None:
        if not isinstance(model, Model):
            raise InvalidInputError(
                f"model: expected a Model from InferenceRuntime.load_model, got "
                f"{type(model).__name__}"
            )
        _check_count("buffer_size", buffer_size)
        _check_count("max_batch", max_batch)
        _check_positive("staleness_ms", staleness_ms)
        _check_positive("fps", fps)
        if (
            not isinstance(max_delay_ms, (int, float))
            or isinstance(max_delay_ms, bool)
            or (max_delay_ms < 0)
        ):
            raise InvalidInputError(
                f"max_delay_ms: expected milliseconds >= 0, got {max_delay_ms!r}"
            )
        for name, function in (("preprocess", preprocess), ("postprocess", postprocess)):
            if function is not None and not callable(function):
                raise InvalidInputError(f"{name}: expected a callable or None, got {function!r}")
        if not isinstance(loop, bool):
            raise InvalidInputError(f"loop: expected True or False, got {loop!r}")
        if isinstance(reconnect, bool):
            watch = Reconnect()
            backoff: Reconnect | None = watch if reconnect else None
        elif isinstance(reconnect, Reconnect):
            watch = backoff = reconnect
        else:
            raise InvalidInputError(
                f"reconnect: expected True, False or a Reconnect, got {reconnect!r}"
            )
        self._size = _resolve_size(model, size, preprocess, max_batch)
        named = _named(sources)
        built = {name: make_source(name, spec, loop) for name, spec in named.items()}
        if any(isinstance(source, MediaSource) for source in built.values()):
            require_av()
        policies = {name: resolve_policy(policy, name, s.kind) for name, s in built.items()}

        shared = self._shared = Shared()
        self._ready: deque[Frame] = deque()
        self._cameras = [
            Camera(
                name,
                source,
                policy=policies[name],
                buffer_size=buffer_size,
                fps=fps,
                reconnect=backoff,
                timeout_s=watch.timeout_s,
                shared=shared,
            )
            for name, source in built.items()
        ]
        self._queue = model.create_async_queue()  # THROUGHPUT, the optimal requests in flight
        self._scheduler = Scheduler(
            self._cameras,
            shared,
            self._queue,
            self._ready,
            size=self._size,
            preprocess=preprocess,
            postprocess=postprocess,
            max_batch=max_batch,
            max_delay_s=max_delay_ms / 1000.0,
            staleness_s=None if staleness_ms is None else staleness_ms / 1000.0,
            # Per camera, frames taken and not yet delivered: enough to keep every request
            # busy, few enough that results wait little for a slow consumer.
            capacity=self._queue.depth + 1,
        )
        self._stopped = False
        self._stopping = threading.Lock()  # a second stop() waits until the first is done
        self._raised = False
        # Dropped without stop(): the threads are told to end (they do not keep it alive).
        self._finalizer = weakref.finalize(self, shared.stop)
        for camera in self._cameras:
            camera.start()
        self._scheduler.start()

    # -- what it is ------------------------------------------------------------------------
    @property
    def cameras(self) -> list[str]:
        """The cameras' names, in the order given."""
        return [camera.name for camera in self._cameras]

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` frames are scaled to, ``None`` when kept as decoded."""
        return self._size

    @property
    def policies(self) -> dict[str, str]:
        """Each camera's policy, ``auto`` resolved."""
        return {camera.name: camera.policy for camera in self._cameras}

    def stats(self) -> dict[str, CameraStats]:
        """A snapshot per camera, every count taken at the same instant."""
        with self._shared.lock:
            return {camera.name: camera.snapshot() for camera in self._cameras}

    # -- results ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameResult]:
        return self

    def __next__(self) -> FrameResult:
        shared = self._shared
        with shared.lock:
            while not self._ready:
                if shared.stopping.is_set() or all(camera.done for camera in self._cameras):
                    break
                shared.ready.wait()
            else:
                frame = self._ready.popleft()
                camera = frame.camera
                camera.ready -= 1
                now = time.monotonic()
                latency_ms = (now - frame.captured_at) * 1000.0
                camera.counters.deliver(latency_ms, now)
                shared.work.notify()  # room for this camera
                assert frame.image is not None
                return FrameResult(
                    camera.name, frame.seq, frame.pts, frame.time, frame.image, frame.outputs,
                    latency_ms,
                )  # fmt: skip
            fatal = shared.fatal
        self.stop()
        if fatal is not None and not self._raised:
            self._raised = True
            raise fatal
        raise StopIteration

    # -- the end ---------------------------------------------------------------------------
    def stop(self) -> None:
        """End now: decoders close their sources, inferences in flight finish, and every
        frame not yet delivered is counted as dropped (``stopped``). Idempotent, and safe from
        another thread than the one iterating (not from ``postprocess``: it waits for the
        inferences in flight, that one included)."""
        with self._stopping:
            if not self._stopped:
                self._stop()
                self._stopped = True

    def _stop(self) -> None:
        shared = self._shared
        shared.stop()
        self._scheduler.join()
        self._queue.close()
        for camera in self._cameras:
            # A read in FFmpeg ends within its timeout; the thread is a daemon regardless.
            camera.join(camera.timeout_s + 1.0)
        with shared.lock:
            for camera in self._cameras:
                camera.discard()
                camera.drop("stopped", len(camera.outstanding) + camera.ready)
                camera.outstanding.clear()
                camera.ready = 0
                if camera.state not in ("ended", "failed"):
                    camera.state = "ended"
            self._ready.clear()
        self._finalizer.detach()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Pipeline of {len(self._cameras)} camera(s): {', '.join(self.cameras)}>"


def _named(sources: object) -> dict[str, Any]:
    if isinstance(sources, (str, os.PathLike)):
        return {"cam0": sources}
    if isinstance(sources, Mapping):
        for name in sources:
            if not isinstance(name, str) or not name:
                raise InvalidInputError(
                    f"sources: camera names must be non-empty strings, got {name!r}"
                )
        named = dict(sources)
    elif isinstance(sources, (list, tuple)):
        named = {f"cam{index}": source for index, source in enumerate(sources)}
    else:
        raise InvalidInputError(
            f"sources: expected a list of sources or a dict name -> source, got "
            f"{type(sources).__name__}"
        )
    if not named:
        raise InvalidInputError("sources: expected at least one source, got none")
    return named


def _check_count(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{name}: expected a positive integer, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if value is not None and (
        not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
    ):
        raise InvalidInputError(f"{name}: expected a number > 0 or None, got {value!r}")


def _resolve_size(
    model: Model, size: object, preprocess: object, max_batch: int
) -> tuple[int, int] | None:
    """``size`` checked, else the model's static (width, height) where it has one."""
    inputs = model.inputs
    if preprocess is None and len(inputs) != 1:
        names = ", ".join(info.name for info in inputs)
        raise InvalidInputError(
            f"the model takes {len(inputs)} inputs ({names}): a frame alone can feed only a "
            f"one-input model; pass preprocess=... returning {{name: array}}"
        )
    info = inputs[0]
    layout, shape = info.layout or "", info.shape
    dims = dict(zip(layout, shape)) if shape is not None and len(shape) == len(layout) else {}
    if preprocess is None and max_batch > 1 and dims.get("N") is not None and dims["N"] < max_batch:
        raise InvalidInputError(
            f"max_batch={max_batch}: the model's input {info} takes batches of {dims['N']}; "
            f"load it with dynamic=True (or use max_batch=1)"
        )
    if size is not None:
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise InvalidInputError(
                f"size: expected (width, height) as two positive integers, got {size!r}"
            )
        return (size[0], size[1])
    width, height = dims.get("W"), dims.get("H")
    return (width, height) if width and height else None
