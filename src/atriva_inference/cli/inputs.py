"""Inputs for the commands: random data shaped from the model, ``.npy`` files, ``--shape`` specs,
and ``bench --inputs`` (a folder of images, a video, or ``.npy`` files).

Also usable from Python, e.g. to feed :func:`atriva_inference.cli.bench.measure`::

    inputs = make_random_inputs(model.inputs, seed=0)
    feeds, described = read_feeds("frames/", model.inputs)  # real frames, cycled through
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from .._layouts import infer_layout
from ..dtypes import STRING, describe, kind_of
from ..errors import InvalidInputError
from ..shapes import parse_shape
from ..tensor import Tensor, TensorInfo, format_signature

__all__ = [
    "DEFAULT_DYNAMIC_SIZE",
    "INT_HIGH",
    "MAX_FRAMES",
    "make_random_inputs",
    "parse_shapes",
    "read_feeds",
    "read_inputs",
]

#: Size given to a dynamic (``?``) dimension other than the first when inputs are random.
DEFAULT_DYNAMIC_SIZE = 32

#: Random integers are drawn from ``[0, INT_HIGH)`` (narrowed for tiny types such as int4).
INT_HIGH = 10

#: ``bench --inputs DIR|VIDEO`` reads at most this many frames (spread evenly over a video).
MAX_FRAMES = 32

_WORDS = ("alpha", "bravo", "camera", "delta", "edge", "frame", "video", "zulu")


# -- random inputs -------------------------------------------------------------------------
def make_random_inputs(
    infos: Sequence[TensorInfo], *, seed: int = 0, dynamic_size: int = DEFAULT_DYNAMIC_SIZE
) -> dict[str, np.ndarray]:
    """Random data for each input, shaped and typed as the model takes it.

    A dynamic first dimension becomes 1, any other dynamic dimension ``dynamic_size``.
    Floats are uniform in [0, 1), integers uniform in [0, :data:`INT_HIGH`), bools fair
    coin flips, strings short random words.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for info in infos:
        if info.shape is None:
            raise InvalidInputError(
                f"input '{info.name}' has an unknown rank, so no random data can be shaped "
                f"for it; pass --input {info.name}=FILE.npy"
            )
        shape = tuple(
            (1 if axis == 0 else dynamic_size) if dim is None else dim
            for axis, dim in enumerate(info.shape)
        )
        arrays[info.name] = _random_array(rng, info, shape)
    return arrays


def _random_array(rng: np.random.Generator, info: TensorInfo, shape: tuple[int, ...]) -> np.ndarray:
    dtype = info.dtype
    kind = kind_of(dtype)
    if kind == "f":
        return rng.random(shape).astype(dtype)
    if kind in "iu":
        high = min(INT_HIGH, int(ml_dtypes.iinfo(dtype).max) + 1)
        return rng.integers(0, high, size=shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind == "c":
        return (rng.random(shape) + 1j * rng.random(shape)).astype(dtype)
    if kind == "T":
        return np.asarray(rng.choice(_WORDS, size=shape), dtype=STRING)
    raise InvalidInputError(
        f"input '{info.name}': cannot generate random {describe(dtype)} data; "
        f"pass --input {info.name}=FILE.npy"
    )


# -- --shape NAME=AxBxC --------------------------------------------------------------------
def parse_shapes(specs: Sequence[str], infos: Sequence[TensorInfo]) -> list[TensorInfo]:
    """Apply ``name=AxBxC`` (or a bare ``AxBxC`` for a one-input model) to ``infos``.

    Returns the infos with the given concrete shapes; a shape whose rank or static
    dimensions do not fit the model raises :class:`InvalidInputError`.
    """
    by_name = {info.name: info for info in infos}
    listing = ", ".join(
        f"'{info.name}' {format_signature(info.dtype, info.shape)}" for info in infos
    )
    chosen: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, text = spec.rpartition("=")
        if not sep:
            if len(infos) != 1:
                raise InvalidInputError(
                    f"--shape {spec}: the model has {len(infos)} inputs ({listing}); use NAME=AxBxC"
                )
            name = infos[0].name
        elif name not in by_name:
            raise InvalidInputError(
                f"--shape {spec}: the model has no input '{name}'; its inputs: {listing}"
            )
        if name in chosen:
            raise InvalidInputError(f"--shape {spec}: input '{name}' is given more than once")
        shape = _parse_dims(spec, text)
        info = by_name[name]
        if info.shape is not None:
            fits = len(shape) == len(info.shape) and all(
                dim is None or dim == got for dim, got in zip(info.shape, shape)
            )
            if not fits:
                raise InvalidInputError(
                    f"--shape {spec}: input '{name}' takes "
                    f"{format_signature(info.dtype, info.shape)}, which shape "
                    f"{'x'.join(map(str, shape))} does not fit"
                )
        chosen[name] = shape
    return [
        replace(info, shape=chosen[info.name]) if info.name in chosen else info for info in infos
    ]


def _parse_dims(spec: str, text: str) -> tuple[int, ...]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError as exc:
        raise InvalidInputError(
            f"--shape {spec}: expected dimensions like 1x3x480x640, got {text!r}"
        ) from exc
    return parse_shape(dims, f"--shape {spec}")  # the runtime's own shape checks


# -- --input NAME=FILE.npy -----------------------------------------------------------------
def read_inputs(specs: Sequence[str], infos: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
    """``NAME=FILE.npy`` (or a bare ``FILE.npy`` for a one-input model) -> arrays."""
    names = [info.name for info in infos]
    listing = ", ".join(f"'{name}'" for name in names) or "none"
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or (name not in names and os.path.isfile(spec)):
            if len(names) != 1:
                raise InvalidInputError(
                    f"--input {spec}: the model has {len(names)} inputs ({listing}); "
                    f"use NAME=FILE.npy"
                )
            name, path = names[0], spec
        elif name not in names:
            raise InvalidInputError(
                f"--input {spec}: the model has no input '{name}'; its inputs: {listing}"
            )
        if not path:
            raise InvalidInputError(f"--input {spec}: expected NAME=FILE.npy, the file is missing")
        if name in arrays:
            raise InvalidInputError(f"--input {spec}: input '{name}' is given more than once")
        arrays[name] = _read_npy(path, f"input '{name}'")
    return arrays


def _read_npy(path: str, what: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{what}: file '{path}' does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidInputError(f"{what}: '{path}' is a directory, not a .npy file") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"{what}: cannot read '{path}' as a .npy file ({exc})") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise InvalidInputError(f"{what}: '{path}' is an .npz archive; save one array with np.save")
    return array


# -- bench --inputs DIR|VIDEO|FILE.npy[,FILE.npy..] ------------------------------------------
def read_feeds(
    spec: str, infos: Sequence[TensorInfo], shapes: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], str]:
    """The feeds ``bench --inputs spec`` means for a model with inputs ``infos``, and a line
    that describes them.

    ``.npy`` files (comma-separated; ``NAME=FILE.npy`` or bare): for a one-input model each
    file is one feed (cycled through), for a model of several inputs there is one file per
    input. The arrays go in as they are, so their dtype must be the model's and their shape
    must fit it. Anything else is a folder of images, a video or an image file, read by
    :func:`atriva_inference.vision.images.read_frames` (at most :data:`MAX_FRAMES`): uint8
    RGB frames for a model with one image input, resized (Pillow, bilinear, stretched) to
    the input's H and W (from ``--shape`` for dynamic ones; the first frame's size where
    still free), ``N`` frames per feed when the batch is static, given to the model as
    ``NHWC`` tensors, so the runtime converts them as it would in production (layout, dtype,
    and the ``mean``/``scale`` given at load).
    """
    items = [item.strip() for item in spec.split(",") if item.strip()]
    npy = [item.rpartition("=")[2].lower().endswith(".npy") for item in items]
    if items and all(npy):
        return _npy_feeds(spec, items, parse_shapes(shapes, infos))
    if len(items) != 1:
        raise InvalidInputError(
            f"--inputs {spec}: expected a folder of images, a video or image file, or .npy "
            f"files separated by commas, got {len(items)} items that are not all .npy files"
        )
    return _frame_feeds(items[0], parse_shapes(shapes, infos))


def _listing(infos: Sequence[TensorInfo]) -> str:
    return ", ".join(f"'{i.name}' {format_signature(i.dtype, i.shape)}" for i in infos) or "none"


def _check_array(path: str, array: np.ndarray, info: TensorInfo) -> None:
    """The array goes in as it is: its dtype must be the input's, its shape must fit."""
    shape = info.shape
    fits = shape is None or (
        len(array.shape) == len(shape)
        and all(dim is None or dim == got for dim, got in zip(shape, array.shape))
    )
    if array.dtype != info.dtype or not fits:
        raise InvalidInputError(
            f"--inputs {path}: input '{info.name}' takes {format_signature(info.dtype, shape)}, "
            f"the file holds {format_signature(array.dtype, array.shape)}"
        )


def _npy_feeds(
    spec: str, items: list[str], infos: Sequence[TensorInfo]
) -> tuple[list[dict[str, Any]], str]:
    if len(infos) == 1:  # every file is one feed of the only input
        info = infos[0]
        feeds = []
        for item in items:
            name, sep, path = item.rpartition("=")
            if sep and name != info.name:
                raise InvalidInputError(
                    f"--inputs {item}: the model has no input '{name}'; its input: "
                    f"{_listing(infos)}"
                )
            array = _read_npy(path, f"--inputs {path}")
            _check_array(path, array, info)
            feeds.append({info.name: array})
        count = len(feeds)
        return feeds, f"{count} .npy file{'s' if count != 1 else ''} for '{info.name}' ({spec})"
    arrays = read_inputs(items, infos)  # NAME=FILE.npy for each input, errors named
    missing = [info.name for info in infos if info.name not in arrays]
    if missing:
        raise InvalidInputError(
            f"--inputs {spec}: the model has {len(infos)} inputs ({_listing(infos)}); expected "
            f"one NAME=FILE.npy for each, got {len(arrays)} (none for "
            f"{', '.join(map(repr, missing))})"
        )
    files = dict(item.partition("=")[::2] for item in items)
    for info in infos:
        _check_array(files.get(info.name, spec), arrays[info.name], info)
    return [arrays], f"one .npy file per input ({spec})"


def _frame_feeds(source: str, infos: Sequence[TensorInfo]) -> tuple[list[dict[str, Any]], str]:
    from ..vision.images import IMAGE_SUFFIXES, read_frames, resize_frame

    if len(infos) != 1:
        raise InvalidInputError(
            f"--inputs {source}: frames feed a model with one image input, this one has "
            f"{len(infos)} inputs ({_listing(infos)}); pass NAME=FILE.npy for each instead"
        )
    info = infos[0]
    layout = infer_layout(info)
    if info.shape is None or len(info.shape) != 4 or not layout or sorted(layout) != sorted("NCHW"):
        raise InvalidInputError(
            f"--inputs {source}: frames need an image input (NCHW or NHWC), input '{info.name}' "
            f"is {format_signature(info.dtype, info.shape)} with layout {layout or 'unknown'}; "
            f"pass --layout NCHW (or NHWC) if it is one, else .npy files"
        )
    dims = dict(zip(layout, info.shape))
    if dims["C"] not in (None, 3):
        raise InvalidInputError(
            f"--inputs {source}: input '{info.name}' takes {dims['C']} channels "
            f"({format_signature(info.dtype, info.shape)}, {layout}), frames are RGB (3); "
            f"pass .npy files instead"
        )
    met: list[str] = []  # the frames' own sizes, as met
    target: list[int] = []  # width, height: the input's, else the first frame's

    def fit(frame: np.ndarray) -> np.ndarray:  # as each frame is read: only resized ones kept
        met.append(f"{frame.shape[1]}x{frame.shape[0]}")
        if not target:
            target.extend((dims["W"] or frame.shape[1], dims["H"] or frame.shape[0]))
        return resize_frame(frame, target[0], target[1])

    try:
        images = read_frames(source, limit=MAX_FRAMES, convert=fit)
    except InvalidInputError as exc:
        message = str(exc).removeprefix("frames: ")
        raise InvalidInputError(f"--inputs {source}: {message}") from exc
    width, height = target
    sizes = list(dict.fromkeys(met))
    frames = images
    batch = dims["N"] or 1
    feeds = [
        {
            info.name: Tensor(
                np.stack([images[(i * batch + j) % len(images)] for j in range(batch)]), "NHWC"
            )
        }
        for i in range(math.ceil(len(images) / batch))
    ]
    path = Path(source)
    kind = (
        "images" if path.is_dir() else "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
    )
    size = f"{width}x{height}"
    shown = ", ".join(sizes[:3]) + (", ..." if len(sizes) > 3 else "")
    resize = "" if sizes == [size] else f", resized from {shown}"
    return feeds, (
        f"{len(frames)} frame{'s' if len(frames) != 1 else ''} of '{source}' ({kind}), "
        f"uint8 RGB {size}{resize}, {batch} per run"
    )
