"""Calibration data: frames in, the float tensors the model's first layer really sees out.

A frame reaches a model in production as uint8 HWC RGB; the runtime converts it inside the
graph (layout, element type) and applies ``(x - mean) / scale`` there too. Calibration must
see the same values, so :class:`FramePlan` does the same conversion in numpy: resize (when
the model wants one size), widen to float32, subtract ``mean``, divide by ``scale``,
reorder to the model's layout, add the batch. The quantizers then calibrate the *float
model as it is* on those tensors, and the INT8 file is a drop-in replacement for the f32
one: loaded with the same ``layout``/``mean``/``scale``, the runtime compiles the same
conversion in front of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._layouts import with_batch
from ..errors import InvalidInputError
from ..tensor import TensorInfo
from ..vision.images import read_frames, resize_frame, spread_evenly, to_grayscale

__all__ = ["MIN_HELD_OUT", "FramePlan", "Split", "split_frames"]

#: The fewest held-out frames the accuracy check accepts.
MIN_HELD_OUT = 4


@dataclass(frozen=True)
class Split:
    """Frames for calibration and a disjoint set held out for the accuracy check."""

    calibration: list[np.ndarray]
    held_out: list[np.ndarray]


def split_frames(
    frames: str | Path | Sequence[np.ndarray],
    subset_size: int,
    held_out: int,
    convert: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Split:
    """Read (a path) or check (arrays) the frames and split them.

    ``subset_size + held_out`` frames are taken, spread evenly over what there is; every
    ``k``-th of them is held out (spread over the clip too), the rest calibrate. With fewer
    frames, ``subset_size`` calibrate and the rest (at least :data:`MIN_HELD_OUT`) are held
    out; fewer than ``subset_size + MIN_HELD_OUT`` is refused, saying what is needed.
    ``convert`` (such as :meth:`FramePlan.frame`) is applied to each frame taken, as it is
    read: only the converted frames are held.
    """
    wanted = subset_size + held_out
    if isinstance(frames, (str, Path)):
        every = read_frames(frames, limit=wanted, convert=convert)
        where = f"'{frames}'"
    else:
        every = _check_arrays(frames)
        where = "the frames given"
        if len(every) > wanted:  # spread over them as read_frames does
            every = [every[i] for i in spread_evenly(len(every), wanted)]
        if convert is not None:
            every = [convert(frame) for frame in every]
    needed = subset_size + MIN_HELD_OUT
    if len(every) < needed:
        fit = len(every) - MIN_HELD_OUT
        hint = f"; pass subset_size={fit} or fewer (--subset-size {fit})" if fit >= 1 else ""
        raise InvalidInputError(
            f"frames: expected at least {needed} frames ({subset_size} to calibrate on, "
            f"{MIN_HELD_OUT} held out for the accuracy check), got {len(every)} from {where}" + hint
        )
    count = min(held_out, len(every) - subset_size)
    held = set(spread_evenly(len(every), count))
    return Split(
        calibration=[frame for i, frame in enumerate(every) if i not in held][:subset_size],
        held_out=[every[i] for i in sorted(held)],
    )


def _check_arrays(frames: Any) -> list[np.ndarray]:
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        frames = list(frames)  # a batch [N, H, W, C] of frames
    if not isinstance(frames, Sequence) or isinstance(frames, (bytes, str)):
        raise InvalidInputError(
            f"frames: expected a folder of images, a video file or a sequence of uint8 HWC "
            f"arrays, got {type(frames).__name__}"
        )
    checked = []
    for index, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
            described = (
                f"{frame.dtype}{list(frame.shape)}"
                if isinstance(frame, np.ndarray)
                else type(frame).__name__
            )
            raise InvalidInputError(
                f"frames[{index}]: expected a uint8 HWC array (as decoded), got {described}"
            )
        checked.append(frame)
    return checked


class FramePlan:
    """How a frame becomes the input tensor of a one-input image model."""

    def __init__(
        self,
        info: TensorInfo,
        layout: str,
        *,
        mean: Sequence[float] | None,
        scale: Sequence[float] | None,
        shape: Sequence[int] | None,
    ) -> None:
        if len(layout) != 4 or sorted(layout) != sorted("NCHW"):
            raise InvalidInputError(
                f"input '{info.name}': quantize calibrates image inputs (NCHW or NHWC), but "
                f"its layout is {layout!r}; pass layout='NCHW' or 'NHWC'"
            )
        self.name = info.name
        self.layout = layout
        self.dtype = info.dtype
        if info.dtype.kind not in "fiu":
            raise InvalidInputError(
                f"input '{info.name}': quantize calibrates image inputs of numbers, it takes "
                f"{info.dtype.name}"
            )
        if info.dtype.kind != "f" and (mean is not None or scale is not None):
            raise InvalidInputError(
                f"mean/scale of '{info.name}': the input takes {info.dtype.name}; mean and "
                f"scale apply to float inputs"
            )
        declared = info.shape or (None,) * 4
        if shape is not None:
            if len(shape) != 4:
                raise InvalidInputError(
                    f"shape: expected the input's 4 dims in its layout {layout}, got {tuple(shape)}"
                )
            wanted = tuple(int(dim) for dim in shape)
        else:
            wanted = tuple(1 if axis == "N" else dim for axis, dim in zip(layout, declared))
        self.channels = wanted[layout.index("C")] or 3
        height, width = wanted[layout.index("H")], wanted[layout.index("W")]
        #: (height, width) every frame is resized to; None: frames go at their own size.
        self.size = (height, width) if height and width else None
        #: The shape fed (None dims: the frame's own); whether the model's static dims
        #: admit it (else they are freed, as ``dynamic=True`` frees them).
        self.shape = wanted
        self.fits = (
            all(
                have is None or want is None or have == want for have, want in zip(declared, wanted)
            )
            and len(declared) == 4
        )
        self.mean = _per_channel(mean, self.channels, "mean")
        self.scale = _per_channel(scale, self.channels, "scale")
        if self.scale is not None and np.any(self.scale == 0):
            raise InvalidInputError(f"scale: expected non-zero values, got {list(scale or ())}")
        self._order = [with_batch("HWC", layout).index(axis) for axis in layout]

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """The uint8 HWC frame production would give the model: resized to ``size``, and
        an RGB frame converted to grayscale (Pillow's ``L``) for a 1-channel input."""
        if frame.shape[2] == 3 and self.channels == 1:
            frame = to_grayscale(frame)
        if frame.shape[2] != self.channels:
            raise InvalidInputError(
                f"frames: input '{self.name}' takes {self.channels} channels, a frame has "
                f"{frame.shape[2]} ({frame.shape[1]}x{frame.shape[0]})"
            )
        if self.size is None:
            return frame
        height, width = self.size
        return resize_frame(frame, width, height)

    def tensor(self, frame: np.ndarray) -> np.ndarray:
        """The float tensor the model's first layer sees for ``frame`` (batch of one): the
        runtime's in-graph conversion and ``(x - mean) / scale``, done in numpy."""
        pixels = self.frame(frame)  # a no-op on a frame it gave already
        if self.dtype.kind == "f":  # an integer input (uint8 images) takes the pixels as they are
            pixels = pixels.astype(np.float32)
        if self.mean is not None:
            pixels -= self.mean
        if self.scale is not None:
            pixels /= self.scale
        batch = pixels[np.newaxis].transpose(self._order)
        return np.ascontiguousarray(batch, dtype=self.dtype)


def _per_channel(values: Sequence[float] | None, channels: int, what: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.size not in (1, channels):
        raise InvalidInputError(
            f"{what}: expected {channels} values (one per channel) or one, got {array.size}"
        )
    return array
