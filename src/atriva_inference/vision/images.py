"""Frames users already have, as arrays: every image of a folder, or the frames of a video.

:func:`read_frames` is what ``atriva-infer quantize`` calibrates on and what ``bench
--inputs`` feeds. Pillow (images) and PyAV (videos) are imported on first use; both come with
the ``[video]`` extra (and ``[quantize]``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "read_frames", "resize_frame", "spread_evenly", "to_grayscale"]

#: File name endings read as images (case-insensitive); anything else is opened as a video.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
INSTALL_HINT = "pip install 'atriva-inference[video]'"

#: ``convert(frame) -> frame``: applied to each frame as it is read (e.g. a resize), so
#: only the converted frames are held.
Convert = Callable[[np.ndarray], np.ndarray]


def read_frames(
    source: str | Path, limit: int | None = None, *, convert: Convert | None = None
) -> list[np.ndarray]:
    """uint8 HWC RGB frames: every image of a folder (sorted by name; png/jpg/jpeg/bmp/webp)
    or the decoded frames of a video file (PyAV), at most ``limit``.

    With ``limit`` the frames kept are spread evenly over the folder or the video (first and
    last included), so a short calibration set still sees the whole clip; at most ``limit``
    frames are held at once, also for a video whose container does not say how many frames
    it has (MKV, WebM: its packets are counted first, without decoding). A single image
    file gives one frame. ``convert`` is applied to each kept frame as it is read (such as
    ``lambda f: resize_frame(f, 320, 240)``): the list holds what it returns.

    Errors: :class:`~atriva_inference.errors.InvalidInputError` naming the path and what was
    found (missing path, a folder without images, a file that does not decode, a bad
    ``limit``); :class:`~atriva_inference.errors.BackendUnavailableError` naming the extra
    when Pillow or PyAV is missing.
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidInputError(f"read_frames: expected limit >= 1 or None, got {limit!r}")
    keep: Convert = convert if convert is not None else _same
    path = Path(source)
    if path.is_dir():
        return _read_folder(path, limit, keep)
    if not path.is_file():
        raise InvalidInputError(
            f"frames: expected a folder of images or a video file, but '{path}' does not exist"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [keep(_read_image(path))]
    return _read_video(path, limit, keep)


def spread_evenly(count: int, limit: int | None) -> list[int]:
    """``limit`` indices of ``range(count)`` spread evenly, first and last included (all of
    them when ``limit`` is ``None`` or not below ``count``)."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({round(i * (count - 1) / max(limit - 1, 1)) for i in range(limit)})


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` (uint8 HWC) stretched to ``width`` x ``height`` (Pillow, bilinear; no
    letterbox), or ``frame`` itself when it has that size already."""
    if frame.shape[:2] == (height, width):
        return frame
    _require("PIL", "resizing frames")
    from PIL import Image

    squeezed = frame[:, :, 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame
    resized = np.asarray(
        Image.fromarray(squeezed).resize((width, height), Image.Resampling.BILINEAR)
    )
    return np.ascontiguousarray(resized.reshape(height, width, *frame.shape[2:]))


def to_grayscale(frame: np.ndarray) -> np.ndarray:
    """A uint8 HWC RGB ``frame`` as one channel (HW1), Pillow's ``L`` conversion (ITU-R 601
    luma: ``L = R * 299/1000 + G * 587/1000 + B * 114/1000``)."""
    _require("PIL", "converting frames")
    from PIL import Image

    gray = np.asarray(Image.fromarray(frame).convert("L"))
    return np.ascontiguousarray(gray[:, :, np.newaxis])


def _same(frame: np.ndarray) -> np.ndarray:
    return frame


def _read_folder(folder: Path, limit: int | None, convert: Convert) -> list[np.ndarray]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        found = sorted(p.name for p in folder.iterdir())
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise InvalidInputError(
            f"frames: expected images ({'/'.join(s[1:] for s in IMAGE_SUFFIXES)}) in "
            f"'{folder}', found {len(found)} other entries" + (f" ({shown})" if found else "")
        )
    return [convert(_read_image(files[i])) for i in spread_evenly(len(files), limit)]


def _require(module: str, what: str) -> ModuleType:
    try:
        return __import__(module)
    except ImportError as exc:
        package = "pillow" if module == "PIL" else module
        raise BackendUnavailableError(
            f"{what} needs the '{package}' package, which is not installed: {INSTALL_HINT}"
        ) from exc


def _read_image(path: Path) -> np.ndarray:
    _require("PIL", "reading images")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInputError(
            f"frames: expected an image in '{path}', but Pillow could not read it: {exc}"
        ) from exc


def _read_video(path: Path, limit: int | None, convert: Convert) -> list[np.ndarray]:
    av = _require("av", "reading videos")
    try:
        total = 0
        if limit is not None:
            with av.open(str(path)) as container:
                stream = _video_stream(container, path)
                total = stream.frames  # 0 when the container does not say
                if not total:  # count the packets (one per frame), without decoding them
                    total = sum(1 for p in container.demux(stream) if p.size)
        keep = set(spread_evenly(total, limit)) if limit is not None else None
        frames = []
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if keep is None or index in keep:
                    frames.append(convert(frame.to_ndarray(format="rgb24")))
                    if keep is not None and len(frames) == len(keep):
                        break
    except InvalidInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InvalidInputError(
            f"frames: expected an image or a video file in '{path}', but it could not be "
            f"decoded: {exc}"
        ) from exc
    if not frames:
        raise InvalidInputError(f"frames: expected video frames in '{path}', decoded none")
    return frames


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise InvalidInputError(
            f"frames: expected a video stream in '{path}', found none "
            f"({len(container.streams)} other streams)"
        )
    return container.streams.video[0]
