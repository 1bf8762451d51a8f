"""Inputs for the commands: random data shaped from the model, ``.npy`` files, ``--shape`` specs.

Also usable from Python, e.g. to feed :func:`atriva_inference.cli.bench.measure`::

    inputs = make_random_inputs(model.inputs, seed=0)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import ml_dtypes
import numpy as np

from ..dtypes import STRING, describe, kind_of
from ..errors import InvalidInputError
from ..shapes import parse_shape
from ..tensor import TensorInfo, format_signature

__all__ = [
    "DEFAULT_DYNAMIC_SIZE",
    "INT_HIGH",
    "make_random_inputs",
    "parse_shapes",
    "read_inputs",
]

#: Size given to a dynamic (``?``) dimension other than the first when inputs are random.
DEFAULT_DYNAMIC_SIZE = 32

#: Random integers are drawn from ``[0, INT_HIGH)`` (narrowed for tiny types such as int4).
INT_HIGH = 10

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
