"""Frames: what a camera captured, what the consumer gets, and the one conversion between.

PyAV is imported through :func:`require_av` only, on first use: a pipeline of numpy frames
at the model's size runs without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, InvalidInputError

__all__ = ["Frame", "FrameResult", "require_av", "to_image"]

INSTALL_HINT = "pip install 'atriva-inference[video]'"


def require_av() -> ModuleType:
    """PyAV, or an error naming the extra that installs it."""
    try:
        import av
    except ImportError as exc:
        raise BackendUnavailableError(
            f"video sources and resizing need PyAV (the 'av' package), which is not installed: "
            f"{INSTALL_HINT}"
        ) from exc
    return av


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One frame's result, yielded per camera in ``seq`` order.

    ``seq`` counts the camera's captured frames from 0 (a gap is a frame dropped on purpose,
    counted in ``stats()``); ``time`` is the wall clock (``time.time()``) at capture and
    ``pts`` the stream's presentation time in seconds (``None`` for frames from Python);
    ``frame`` is the RGB ``uint8`` HWC image the model was given (before ``preprocess``);
    ``outputs`` is ``{name: Tensor}`` for this frame, or what ``postprocess`` returned;
    ``latency_ms`` runs from capture to the moment the result was handed to the consumer.
    """

    camera: str
    seq: int
    pts: float | None
    time: float
    frame: np.ndarray
    outputs: Any
    latency_ms: float


class Frame:
    """A captured frame on its way through the pipeline (internal).

    ``raw`` is the decoder's frame (or the user's array) until the scheduler converts it;
    the conversion happens only for frames that go to the model.
    """

    __slots__ = (
        "camera",
        "captured_at",
        "error",
        "finished",
        "image",
        "outputs",
        "pts",
        "raw",
        "seq",
        "time",
    )

    def __init__(
        self, camera: Any, seq: int, pts: float | None, time: float, captured_at: float, raw: Any
    ) -> None:
        self.camera = camera  # its Camera (camera.py builds on this module)
        self.seq = seq
        self.pts = pts
        self.time = time
        self.captured_at = captured_at  # time.monotonic(), for the latency
        self.raw = raw
        self.image: np.ndarray | None = None
        self.outputs: Any = None
        self.finished = False
        self.error: BaseException | None = None


def check_array(frame: object, camera: str) -> np.ndarray:
    """A frame given from Python: an RGB ``uint8`` HWC array."""
    if (
        not isinstance(frame, np.ndarray)
        or frame.ndim != 3
        or frame.shape[2] != 3
        or frame.dtype != np.uint8
    ):
        got = (
            f"{frame.dtype}{list(frame.shape)}"
            if isinstance(frame, np.ndarray)
            else type(frame).__name__
        )
        raise InvalidInputError(
            f"camera '{camera}': expected frames as RGB uint8 arrays of shape (height, width, 3), "
            f"got {got}"
        )
    return frame


def to_image(raw: Any, size: tuple[int, int] | None) -> np.ndarray:
    """``raw`` as an RGB ``uint8`` HWC array of ``size`` (width, height): scaling and colour
    conversion in one swscale call (``to_ndarray(width=, height=, format=)``), which costs
    less than converting the whole decoded frame and resizing after."""
    if isinstance(raw, np.ndarray):
        if size is None or (raw.shape[1], raw.shape[0]) == size:
            return raw
        av = require_av()
        raw = av.VideoFrame.from_ndarray(raw, format="rgb24")
    if size is None:
        return raw.to_ndarray(format="rgb24")
    return raw.to_ndarray(width=size[0], height=size[1], format="rgb24")
