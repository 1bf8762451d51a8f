"""Layout rules shared by load time (backends freeing dims, compiling mean/scale) and run
time (input plans): which layout an input wants, where its channels are, which dims
``dynamic=True`` frees. They sit below both, so neither layer imports the other."""

from __future__ import annotations

from .errors import InvalidInputError
from .tensor import TensorInfo

__all__ = [
    "axes_to_free",
    "channel_axis",
    "infer_layout",
    "only_input",
    "wanted_layout",
    "with_batch",
]


def infer_layout(info: TensorInfo) -> str | None:
    """The layout a model input wants: declared by the model, else guessed for 4-D images."""
    if info.layout:
        return info.layout
    shape = info.shape
    if shape is not None and len(shape) == 4:
        if shape[1] in (1, 3) and shape[3] not in (1, 3):
            return "NCHW"
        if shape[3] in (1, 3) and shape[1] not in (1, 3):
            return "NHWC"
    return None


def wanted_layout(info: TensorInfo, hints: dict[str, str]) -> str | None:
    """The layout an input wants: the caller's hint (``"*"``: the only input), the model's
    own, or the guess for a 4-D image."""
    return hints.get(info.name) or hints.get("*") or infer_layout(info)


def with_batch(layout: str, wanted: str) -> str:
    """``layout`` with the batch dimension the model wants added in front (``HWC`` -> ``NHWC``)."""
    if len(layout) + 1 == len(wanted) and "N" in wanted and "N" not in layout:
        return "N" + layout
    return layout


def axes_to_free(rank: int, layout: str | None) -> list[int]:
    """Which dims ``dynamic=True`` frees: all but the channels of an image input, else the
    batch (the first dim)."""
    if layout and len(layout) == rank and "C" in layout:
        return [axis for axis, name in enumerate(layout) if name != "C"]
    return [0] if rank else []


def channel_axis(layout: str | None, what: str) -> int:
    """Where the channels are, for per-channel mean/scale; an error when nobody knows."""
    if not layout or "C" not in layout:
        raise InvalidInputError(
            f"{what}: mean/scale are per channel, but the input's layout is unknown; "
            f"pass layout= (such as 'NCHW') to load_model"
        )
    return layout.index("C")


def only_input(names: list[str], what: str) -> None:
    """A bare value (``layout="NCHW"``, ``mean=[...]``) is for a model with one input."""
    if len(names) != 1:
        raise InvalidInputError(
            f"{what}: the model has {len(names)} inputs ({', '.join(names)}); "
            f"give a dict of input name -> value"
        )
