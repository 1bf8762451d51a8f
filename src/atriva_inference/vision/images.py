"""Frames users already have, as arrays: every image of a folder, or the frames of a video.

:func:`read_frames` is what ``atriva-infer quantize`` calibrates on and what ``bench
--inputs`` feeds. Pillow (images) and PyAV (videos) are imported on first use; both come with
the ``[video]`` extra (and ``[quantize]``).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import BackendUnavailableError, InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "read_frames", "spread_evenly"]

#: File name endings read as images (case-insensitive); anything else is opened as a video.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
INSTALL_HINT = "pip install 'atriva-inference[video]'"


def read_frames(source: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """uint8 HWC RGB frames: every image of a folder (sorted by name; png/jpg/jpeg/bmp/webp)
    or the decoded frames of a video file (PyAV), at most ``limit``.

    With ``limit`` the frames kept are spread evenly over the folder or the video (first and
    last included), so a short calibration set still sees the whole clip. A single image
    file gives one frame.

    Errors: :class:`~atriva_inference.errors.InvalidInputError` naming the path and what was
    found (missing path, a folder without images, a file that does not decode, a bad
    ``limit``); :class:`~atriva_inference.errors.BackendUnavailableError` naming the extra
    when Pillow or PyAV is missing.
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidInputError(f"read_frames: expected limit >= 1 or None, got {limit!r}")
    path = Path(source)
    if path.is_dir():
        return _read_folder(path, limit)
    if not path.is_file():
        raise InvalidInputError(
            f"frames: expected a folder of images or a video file, but '{path}' does not exist"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [_read_image(path)]
    return _read_video(path, limit)


def spread_evenly(count: int, limit: int | None) -> list[int]:
    """``limit`` indices of ``range(count)`` spread evenly, first and last included (all of
    them when ``limit`` is ``None`` or not below ``count``)."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({round(i * (count - 1) / max(limit - 1, 1)) for i in range(limit)})


def _read_folder(folder: Path, limit: int | None) -> list[np.ndarray]:
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
    return [_read_image(files[i]) for i in spread_evenly(len(files), limit)]


def _require(module: str, what: str) -> ModuleType:
    try:
        return __import__(module)
    except ImportError as exc:
        package = "pillow" if module == "PIL" else module
        raise BackendUnavailableError(
            f"reading {what} needs the '{package}' package, which is not installed: {INSTALL_HINT}"
        ) from exc


def _read_image(path: Path) -> np.ndarray:
    _require("PIL", "images")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInputError(
            f"frames: expected an image in '{path}', but Pillow could not read it: {exc}"
        ) from exc


def _read_video(path: Path, limit: int | None) -> list[np.ndarray]:
    av = _require("av", "videos")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidInputError(
                    f"frames: expected a video stream in '{path}', found none "
                    f"({len(container.streams)} other streams)"
                )
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            total = stream.frames  # 0 when the container does not say
            keep = set(spread_evenly(total, limit)) if total and limit else None
            frames, decoded = [], []
            for index, frame in enumerate(container.decode(stream)):
                if keep is None:
                    # Count unknown (or no limit): keep the decoder's frames, convert later.
                    decoded.append(frame)
                elif index in keep:
                    frames.append(frame.to_ndarray(format="rgb24"))
            if keep is None:
                frames = [
                    decoded[i].to_ndarray(format="rgb24")
                    for i in spread_evenly(len(decoded), limit)
                ]
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
