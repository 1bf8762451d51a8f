"""Optimization profiles: the shapes a TensorRT engine is built for and the one that runs
a request. Pure decisions over ``(name, dims)``, tested without TensorRT.

Dynamic dimensions need an optimization profile: its (min, opt, max) come from
``load_model(..., shapes=[...])`` -- min/max the elementwise extremes of the shapes given,
opt the first one -- or, without ``shapes=``, a dynamic batch (first) dimension gets
:data:`DEFAULT_BATCH_RANGE`; any other dynamic dimension without ``shapes=`` is refused.
Running a shape outside every profile raises ``InvalidInputError`` (never a silent rebuild).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import InvalidInputError
from ...tensor import TensorInfo

__all__ = [
    "DEFAULT_BATCH_RANGE",
    "Profile",
    "ShapeRange",
    "check_engine_shapes",
    "optimization_profile",
    "select_profile",
    "shapes_need_dynamic",
]

#: (min, opt, max) of a dynamic batch (first) dimension when ``shapes=`` is not given.
DEFAULT_BATCH_RANGE = (1, 1, 16)


@dataclass(frozen=True)
class ShapeRange:
    """The shapes one input may take in one optimization profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def admits(self, shape: Sequence[int]) -> bool:
        """Whether ``shape`` lies within ``min``..``max``, dimension by dimension."""
        return len(shape) == len(self.min) and all(
            low <= size <= high for low, size, high in zip(self.min, shape, self.max)
        )

    def __str__(self) -> str:
        if self.min == self.max:
            return f"exactly {_dims_text(self.min)}"
        return f"from {_dims_text(self.min)} to {_dims_text(self.max)}"


#: One optimization profile: each input with dynamic dims -> its range.
Profile = Mapping[str, ShapeRange]


def _dims_text(dims: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if dim is None else str(dim) for dim in dims) + ")"


def _resolve_input(name: str, names: Sequence[str]) -> str:
    if name == "*":
        if len(names) != 1:
            raise InvalidInputError(
                f"shapes: a bare shape stands for the model's only input, but the model has "
                f"{len(names)} inputs ({', '.join(map(repr, names))}); give {{input name: shape}}"
            )
        return names[0]
    if name not in names:
        raise InvalidInputError(
            f"shapes: unknown input {name!r}; the model takes {', '.join(map(repr, names))}"
        )
    return name


def _checked_shape(name: str, dims: Sequence[int | None], shape: Sequence[Any]) -> tuple[int, ...]:
    if not all(isinstance(size, (int, np.integer)) and size >= 1 for size in shape):
        raise InvalidInputError(
            f"shapes: input '{name}': expected positive integer dimensions, got {tuple(shape)}"
        )
    given = tuple(int(size) for size in shape)
    if len(given) != len(dims):
        raise InvalidInputError(
            f"shapes: input '{name}' has {len(dims)} dimensions {_dims_text(dims)}, "
            f"got shape {given}"
        )
    for axis, (declared, size) in enumerate(zip(dims, given)):
        if declared is not None and declared != size:
            # Reached only for dims dynamic=True leaves fixed: load() frees the others first.
            raise InvalidInputError(
                f"shapes: input '{name}' declares dimension {axis} as {declared} "
                f"{_dims_text(dims)}, got {size} in {given}; dynamic=True frees only N, H, W "
                f"of an image input and N of others, so the shape must keep this one"
            )
    return given


def _resolve_entry_name(name: str, names: Sequence[str]) -> str | None:
    """The input a ``shapes=`` entry names, or None where it names none unambiguously."""
    if name == "*":
        return names[0] if len(names) == 1 else None
    return name if name in names else None


def shapes_need_dynamic(
    declared: Sequence[tuple[str, Sequence[int | None]]],
    shapes: Sequence[Sequence[tuple[str, Sequence[int]]]],
) -> bool:
    """Whether ``shapes=`` asks for sizes the model's declared static dims refuse.

    ``declared``: ``(name, dims)`` per model input as the ONNX graph declares them
    (``None`` for a dynamic dim). True when some shape has its input's rank but differs in
    a dim declared static: the build must then free the dims as ``dynamic=True`` does, so
    that the engine admits the shape (building the static engine first would be a whole
    wasted build, since load_model would close it and load again with ``dynamic=True``).
    A wrong rank or an unknown name is not freed: :func:`optimization_profile` reports it.
    """
    names = [name for name, _ in declared]
    dims_of = {name: tuple(dims) for name, dims in declared}
    for entry in shapes:
        for name, shape in entry:
            target = _resolve_entry_name(name, names)
            if target is None:
                continue
            dims = dims_of[target]
            if len(dims) == len(shape) and any(
                dim is not None and dim != size for dim, size in zip(dims, shape)
            ):
                return True
    return False


def optimization_profile(
    inputs: Sequence[tuple[str, Sequence[int | None]]],
    shapes: Sequence[Sequence[tuple[str, Sequence[int]]]] = (),
) -> dict[str, ShapeRange]:
    """The one optimization profile an ONNX model is built with.

    ``inputs``: ``(name, dims)`` per model input, ``None`` for a dynamic dim. ``shapes``:
    the ``shapes=`` of ``load_model`` (``LoadOptions.shapes``), each entry
    ``((input name, shape), ...)``, ``"*"`` standing for a one-input model's input.

    Only inputs with dynamic dims get a range (static inputs need none). For an input the
    shapes name, min and max are the elementwise min and max over its given shapes and opt
    is the first one given (TensorRT tunes its kernels for opt; every shape in between
    runs). One profile rather than one per shape: any size inside the range runs, a build
    costs one tuning pass, and ``shapes=[smallest, largest]`` says what the caller means.
    An input with dynamic dims that no shape names gets the default: a dynamic first
    (batch) dim ranges over :data:`DEFAULT_BATCH_RANGE` (1, opt 1, up to 16); any other
    dynamic dim has no sensible default and raises ``InvalidInputError`` asking for
    ``shapes=``. Shapes that contradict a declared static dim, have the wrong rank, name an
    unknown input or have non-positive sizes raise ``InvalidInputError`` too.
    """
    names = [name for name, _ in inputs]
    declared = {name: tuple(dims) for name, dims in inputs}
    given: dict[str, list[tuple[int, ...]]] = {name: [] for name in names}
    for entry in shapes:
        for name, shape in entry:
            target = _resolve_input(name, names)
            given[target].append(_checked_shape(target, declared[target], shape))
    profile: dict[str, ShapeRange] = {}
    for name, dims in declared.items():
        if None not in dims:
            continue
        seen = given[name]
        if seen:
            low = tuple(min(column) for column in zip(*seen))
            high = tuple(max(column) for column in zip(*seen))
            profile[name] = ShapeRange(low, seen[0], high)
            continue
        free = [axis for axis, dim in enumerate(dims) if dim is None]
        if free != [0]:
            raise InvalidInputError(
                f"input '{name}' {_dims_text(dims)} has dynamic dimensions beyond the batch; "
                f"TensorRT builds an engine for a range of shapes, so give it with "
                f"load_model(..., shapes=[smallest, largest]), e.g. "
                f"shapes=[(1, 3, 320, 320), (8, 3, 640, 640)] for an image input"
            )
        rest = tuple(int(dim) for dim in dims[1:] if dim is not None)  # all static here
        low, opt, high = ((batch, *rest) for batch in DEFAULT_BATCH_RANGE)
        profile[name] = ShapeRange(low, opt, high)
    return profile


def select_profile(
    profiles: Sequence[Profile],
    shapes: Mapping[str, Sequence[int]],
    prefer: int | None = None,
) -> int:
    """The index of the optimization profile admitting every input shape in ``shapes``.

    ``prefer`` (the profile a context already uses) wins when it admits them, since
    switching profiles costs a little; otherwise the first admitting profile. No profile
    (an engine without dynamic inputs) is index 0. A shape outside every profile raises
    ``InvalidInputError`` listing the profiles' ranges and the shapes given: TensorRT runs
    only shapes a profile covers, and a rebuild is never done behind the caller's back.
    """
    if not profiles:
        return 0
    required = sorted({name for profile in profiles for name in profile})
    missing = [name for name in required if name not in shapes]
    if missing:
        raise InvalidInputError(
            f"no shape given for input(s) {', '.join(map(repr, missing))}, which the "
            f"engine's optimization profiles constrain"
        )

    def admits(profile: Profile) -> bool:
        return all(limits.admits(tuple(shapes[name])) for name, limits in profile.items())

    if prefer is not None and 0 <= prefer < len(profiles) and admits(profiles[prefer]):
        return prefer
    for index, profile in enumerate(profiles):
        if admits(profile):
            return index
    given = ", ".join(f"'{name}' {_dims_text(tuple(shapes[name]))}" for name in required)
    ranges = "; ".join(
        f"profile {index} takes "
        + ", ".join(f"'{name}' {limits}" for name, limits in sorted(profile.items()))
        for index, profile in enumerate(profiles)
    )
    raise InvalidInputError(
        f"input shape(s) {given} are outside every optimization profile of the engine "
        f"({ranges}); TensorRT runs only shapes within a profile: load the model with "
        f"shapes= that cover them (a prebuilt engine must be rebuilt with such a profile)"
    )


def check_engine_shapes(
    inputs: Sequence[TensorInfo],
    profiles: Sequence[Profile],
    shapes: Sequence[Sequence[tuple[str, Sequence[int]]]],
    engine_name: str = "the engine",
) -> None:
    """Refuse ``shapes=`` a prebuilt engine cannot run, at load: its dims and profiles were
    fixed when it was built (dynamic=True cannot free them, so the runtime's reload with
    dynamic=True would only fail later, with a less useful message)."""
    names = [info.name for info in inputs]
    for entry in shapes:
        given = {}
        for name, shape in entry:
            target = _resolve_input(name, names)
            given[target] = tuple(int(size) for size in shape)
        for info in inputs:
            shape = given.get(info.name)
            if info.shape is None:
                continue
            if shape is None:
                if None not in info.shape:
                    given[info.name] = tuple(info.shape)  # type: ignore[arg-type]
                continue
            if len(shape) != len(info.shape) or any(
                dim is not None and dim != size for dim, size in zip(info.shape, shape)
            ):
                raise InvalidInputError(
                    f"shapes: {engine_name} takes input '{info.name}' as "
                    f"{_dims_text(info.shape)}, got {_dims_text(shape)}: a prebuilt engine's "
                    f"dims were fixed when it was built; load the ONNX model to build for these "
                    f"shapes"
                )
        select_profile(profiles, given)
