"""Sources: what a camera reads (a file, a live URL, frames from Python), how it is opened with
timeouts, read, and always closed; and how a lost source is reconnected (:class:`Reconnect`)."""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InferenceRuntimeError, InferenceTimeoutError, InvalidInputError
from .frames import check_array, require_av

__all__ = ["LIVE_SCHEMES", "Reconnect", "Source", "make_source"]

#: URL schemes read as live streams (the ``auto`` policy keeps the latest frame for them).
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "tcp", "udp", "srt")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

#: A captured frame as a source gives it: the decoder's frame or an array, and its PTS (s).
Captured = tuple[Any, "float | None"]


@dataclass(frozen=True)
class Reconnect:
    """How a camera watches and reconnects its source.

    ``timeout_s`` bounds opening a network source, each read (FFmpeg's own timeouts) and
    the time without a decoded frame while data arrives (the stale-read watchdog): past it
    the source counts as lost. A lost source is opened again after ``initial_s`` seconds,
    doubling up to ``max_s``, each delay varied by ``±jitter`` (a fraction) so cameras
    behind one failed switch do not all call back at once. A connection that delivered
    frames for ``reset_after_s`` starts the back-off again from ``initial_s``.
    ``attempts`` (``None``: forever) caps the tries in a row before the camera is
    ``failed``.
    """

    timeout_s: float = 5.0
    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.25
    reset_after_s: float = 10.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "initial_s", "max_s", "reset_after_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise InvalidInputError(f"Reconnect.{name}: expected seconds > 0, got {value!r}")
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter < 1:
            raise InvalidInputError(
                f"Reconnect.jitter: expected a fraction in [0, 1), got {self.jitter!r}"
            )
        if self.attempts is not None and (
            not isinstance(self.attempts, int)
            or isinstance(self.attempts, bool)
            or self.attempts < 1
        ):
            raise InvalidInputError(
                f"Reconnect.attempts: expected a positive integer or None, got {self.attempts!r}"
            )

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before try number ``attempt`` (0 first)."""
        base = min(self.max_s, self.initial_s * 2.0 ** min(attempt, 62))
        return base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


class Source:
    """What a camera reads. ``open`` is a context manager giving an iterator of
    :data:`Captured`; leaving it closes everything the source opened."""

    #: ``"file"``, ``"live"`` or ``"frames"`` (from Python).
    kind: str = "file"
    #: Whether opening it again after a failure can help (network and callables).
    reopenable: bool = False

    def __init__(self, camera: str, loop: bool) -> None:
        self.camera = camera
        self.loop = loop

    def open(self, timeout_s: float) -> contextlib.AbstractContextManager[Iterator[Captured]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of camera '{self.camera}'>"


class MediaSource(Source):
    """A file or URL decoded by PyAV (FFmpeg)."""

    def __init__(self, camera: str, location: str, *, live: bool, loop: bool) -> None:
        super().__init__(camera, loop)
        self.location = location
        self.kind = "live" if live else "file"
        self.reopenable = live

    def _options(self, timeout_s: float) -> dict[str, str]:
        if self.kind == "file":
            return {}
        micros = str(int(timeout_s * 1_000_000))
        # rw_timeout bounds every network read. (No fflags=nobuffer: it discards the packets
        # read while probing the stream, the first key frame among them, so the first picture
        # would wait a whole GOP.)
        options = {"rw_timeout": micros}
        if self.location.lower().startswith("rtsp"):
            # RTP over the RTSP connection: no UDP ports to open, no losses on busy links.
            options.update(rtsp_transport="tcp", timeout=micros)
        return options

    @contextlib.contextmanager
    def open(self, timeout_s: float) -> Iterator[Iterator[Captured]]:
        av = require_av()
        with _translated(self, "open", timeout_s):
            container = av.open(
                self.location,
                options=self._options(timeout_s),
                # PyAV's own interrupt: bounds the open and each read even where the
                # protocol ignores rw_timeout.
                timeout=None if self.kind == "file" else (timeout_s, timeout_s),
            )
        try:
            frames = self._decode(container, timeout_s)
            try:
                yield frames
            finally:
                frames.close()  # drop the decoder's frames before the container goes
        finally:
            container.close()  # explicitly: a dropped container keeps FFmpeg's buffers

    def _decode(self, container: Any, timeout_s: float) -> Iterator[Captured]:
        av = require_av()
        if not container.streams.video:
            raise InvalidInputError(
                f"camera '{self.camera}': '{self.location}' has no video stream"
            )
        stream = container.streams.video[0]
        # Frame threading delays each frame by the thread count: fine for files, not live.
        stream.thread_type = "AUTO" if self.kind == "file" else "SLICE"
        last_frame = time.monotonic()
        with _translated(self, "read", timeout_s):
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    frames = []  # one damaged packet: the decoder recovers at the next key frame
                for frame in frames:
                    last_frame = time.monotonic()
                    yield frame, frame.time
                # The stale-read watchdog: data arrives but no picture comes of it.
                if not frames and time.monotonic() - last_frame > timeout_s:
                    raise InferenceTimeoutError(
                        f"camera '{self.camera}': no frame decoded from '{self.location}' for "
                        f"{timeout_s:g} s while data arrived"
                    )


class FramesSource(Source):
    """Frames from Python: an iterable of arrays, or a callable returning one (called
    again to reconnect after it raised, or to loop)."""

    kind = "frames"

    def __init__(
        self, camera: str, frames: Iterable[Any] | Callable[[], Iterable[Any]], loop: bool
    ):
        super().__init__(camera, loop)
        self.frames = frames
        self.reopenable = callable(frames)
        if loop and not callable(frames) and iter(frames) is frames:
            raise InvalidInputError(
                f"camera '{camera}': loop=True needs a source that can be read again (a list, "
                f"an array, a callable returning an iterable), got a one-shot iterator "
                f"{type(frames).__name__}"
            )

    @contextlib.contextmanager
    def open(self, timeout_s: float) -> Iterator[Iterator[Captured]]:
        source = self.frames() if callable(self.frames) else self.frames
        frames = self._read(source)
        try:
            yield frames
        finally:
            frames.close()
            close = getattr(source, "close", None)  # a generator: run its cleanup now
            if callable(close):
                close()

    def _read(self, source: Iterable[Any]) -> Iterator[Captured]:
        try:
            iterator = iter(source)
        except TypeError as exc:
            raise InvalidInputError(
                f"camera '{self.camera}': expected an iterable of frames, got "
                f"{type(source).__name__}"
            ) from exc
        while True:
            try:
                frame = next(iterator)
            except StopIteration:
                return
            except InferenceRuntimeError:
                raise
            except Exception as exc:
                raise InferenceRuntimeError(
                    f"camera '{self.camera}': the frame source raised {exc!r}"
                ) from exc
            yield check_array(frame, self.camera), None


@contextlib.contextmanager
def _translated(source: MediaSource, doing: str, timeout_s: float) -> Iterator[None]:
    """FFmpeg's and the OS's errors as ours, naming the camera and the location."""
    try:
        yield
    except InferenceRuntimeError:
        raise
    except Exception as exc:
        av = require_av()
        what = f"camera '{source.camera}': cannot {doing} '{source.location}': {exc}"
        corrupt = (
            av.error.InvalidDataError,
            av.error.DemuxerNotFoundError,
            av.error.DecoderNotFoundError,
        )
        if isinstance(exc, corrupt):
            raise InvalidInputError(what) from exc
        if isinstance(exc, (TimeoutError, av.error.ExitError)):  # PyAV's interrupt
            raise InferenceTimeoutError(
                f"camera '{source.camera}': '{source.location}' did not answer within "
                f"{timeout_s:g} s ({doing})"
            ) from exc
        if isinstance(exc, (av.error.FFmpegError, OSError)):
            raise InferenceRuntimeError(what) from exc
        raise


def make_source(camera: str, spec: object, loop: bool) -> Source:
    """The source for one camera's ``spec`` (a path, a URL, frames from Python)."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        match = _URL.match(text) if isinstance(text, str) else None
        if match:
            scheme = match.group(1).lower()
            if scheme == "file":
                text = text[len("file://") :]
            elif scheme in LIVE_SCHEMES:
                return MediaSource(camera, text, live=True, loop=False)
            else:
                raise InvalidInputError(
                    f"camera '{camera}': unsupported URL scheme '{scheme}://' in {text!r}; "
                    f"expected a file path or one of {', '.join(s + '://' for s in LIVE_SCHEMES)}"
                )
        path = Path(text)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise InvalidInputError(f"camera '{camera}': video file '{path}' {what}")
        return MediaSource(camera, str(path), live=False, loop=loop)
    if isinstance(spec, (bytes, bytearray)):
        raise InvalidInputError(
            f"camera '{camera}': expected a path, URL, iterable or callable, got bytes"
        )
    if callable(spec) or isinstance(spec, Iterable):
        return FramesSource(camera, spec, loop)  # type: ignore[arg-type]
    raise InvalidInputError(
        f"camera '{camera}': expected a file path, a URL, an iterable of frames or a callable "
        f"returning one, got {type(spec).__name__}"
    )
