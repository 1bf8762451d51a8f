"""What a camera does with a frame when the model is behind: the buffer policies, and the
``fps`` limit applied right after decoding."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from ..errors import InvalidInputError
from .frames import Frame

__all__ = ["POLICIES", "FrameBuffer", "RateLimit", "resolve_policy"]

#: ``wait``: never drop, the decoder waits (files); ``latest``: keep the newest frames, drop
#: the oldest (live cameras: bounded latency); ``drop_newest``: keep what is buffered, drop
#: the frame that does not fit.
POLICIES = ("wait", "latest", "drop_newest")

#: The drop cause every buffer policy counts.
BUFFER_FULL = "buffer_full"


def resolve_policy(policy: str | Mapping[str, str], camera: str, kind: str) -> str:
    """The policy of one camera: ``auto`` is ``wait`` for files and frames from Python
    (every frame matters, the source can wait) and ``latest`` for live URLs (it cannot)."""
    chosen = policy.get(camera, "auto") if isinstance(policy, Mapping) else policy
    if chosen == "auto":
        return "latest" if kind == "live" else "wait"
    if chosen not in POLICIES:
        raise InvalidInputError(
            f"policy for camera '{camera}': expected 'auto' or one of {', '.join(POLICIES)}, "
            f"got {chosen!r}"
        )
    return chosen


class FrameBuffer:
    """The frames a camera decoded that the model has not taken yet (guarded by the
    pipeline's lock). ``wait`` is the caller's to do: :meth:`full` says when."""

    __slots__ = ("capacity", "frames", "policy")

    def __init__(self, policy: str, capacity: int) -> None:
        self.policy = policy
        self.capacity = capacity
        self.frames: deque[Frame] = deque()

    def __len__(self) -> int:
        return len(self.frames)

    def full(self) -> bool:
        return len(self.frames) >= self.capacity

    def put(self, frame: Frame) -> Frame | None:
        """Buffer ``frame``; return the frame the policy dropped for it, if any."""
        if len(self.frames) < self.capacity:
            self.frames.append(frame)
            return None
        if self.policy == "drop_newest":
            return frame
        # latest (wait never gets here: its decoder waits for room first)
        dropped = self.frames.popleft()
        self.frames.append(frame)
        return dropped

    def take(self) -> Frame:
        return self.frames.popleft()


class RateLimit:
    """Keep at most ``fps`` frames per second of the stream's own time (PTS, else the clock
    at capture): a 25 fps file at ``fps=5`` keeps every fifth frame however fast it decodes."""

    __slots__ = ("_due", "_last", "_period")

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps
        self._due: float | None = None
        self._last: float | None = None

    def keep(self, t: float) -> bool:
        period = self._period
        if self._due is None or self._last is None or t < self._last:  # first, or a loop
            self._due = t + period
            self._last = t
            return True
        self._last = t
        # A millisecond of slack: 30 fps timestamps are not exact multiples of 1/30.
        if t + 1e-3 < self._due:
            return False
        self._due += period
        if self._due <= t:  # after a gap, count from now
            self._due = t + period
        return True
