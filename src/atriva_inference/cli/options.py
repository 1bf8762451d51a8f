"""What every ``atriva-infer`` command shares, defined once: the argument types, the load
options (``--backend``, ``--device``, ``--precision``, ``--dynamic``, ``--cache-dir``), the
frame preparation options (``--layout``, ``--mean``, ``--scale``) and the small file helpers.
The lowest module of the CLI: every command imports it, it imports no command."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..backends import DEFAULT_BACKENDS
from ..errors import InvalidInputError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_BUG",
    "EXIT_ERROR",
    "EXIT_REFUSED",
    "EXIT_STATUS_HELP",
    "PROG",
    "TerminalProgress",
    "add_load_options",
    "add_model_options",
    "add_preparation_options",
    "check_writable",
    "float_list",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
    "preparation",
    "write_json",
]

PROG = "atriva-infer"

# Exit statuses, distinct so scripts can tell a refused INT8 model from a failed command
# from a crash.
#: ``quantize``: the INT8 model was written but the guard refused it.
EXIT_REFUSED = 1
#: A usage error, or an error the runtime reports (a model that does not load, bad input).
EXIT_ERROR = 2
#: An unexpected exception: a bug in atriva-inference (or a library under it).
EXIT_BUG = 3
#: stdout closed early (piped into ``head``), as a shell reports a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141
EXIT_STATUS_HELP = (
    f"Errors print one line, '{PROG}: error: <message>'. Exit status: 0 success; "
    f"{EXIT_REFUSED} quantize's guard refused the INT8 model; {EXIT_ERROR} usage or runtime "
    f"errors (a model that does not load, bad input); {EXIT_BUG} an unexpected error (a bug: "
    f"please report it); {EXIT_BROKEN_PIPE} stdout closed early; 130 interrupted."
)

Number = TypeVar("Number", int, float)


class TerminalProgress:
    """A transient ``rich`` progress display on stderr, started on ``with`` only when stderr
    is a terminal (else :attr:`progress` stays ``None`` and nothing is drawn). Subclasses
    give the columns and add tasks to :attr:`progress`."""

    #: ``rich.progress.Progress`` options besides the columns (``auto_refresh=False``: no
    #: refresh thread competing with a measured loop; the caller refreshes).
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.progress: Any = None

    def columns(self) -> list[Any]:
        """The ``rich`` columns of the display (called only on a terminal)."""
        raise NotImplementedError

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return self
        from rich.console import Console
        from rich.progress import Progress

        self.progress = Progress(
            *self.columns(), console=Console(stderr=True), transient=True, **self.options
        )
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _number(
    convert: Callable[[str], Number], what: str, ok: Callable[[Number], bool]
) -> Callable[[str], Number]:
    """An argparse ``type`` that converts with ``convert`` and accepts what ``ok`` accepts."""

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from exc
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


positive_int = _number(int, "a positive integer", lambda value: value >= 1)
non_negative_int = _number(int, "an integer >= 0", lambda value: value >= 0)
positive_float = _number(float, "a positive number", lambda value: 0 < value < math.inf)
non_negative_float = _number(float, "a number >= 0", lambda value: 0 <= value < math.inf)
fraction = _number(float, "a number in [0, 1)", lambda value: 0 <= value < 1)
port = _number(int, "a port 0..65535 (0: a free one)", lambda value: 0 <= value <= 65535)


def float_list(text: str) -> list[float]:
    """An argparse ``type``: ``123.7,116.3,103.5`` (or one number) -> finite floats."""
    try:
        values = [float(item) for item in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas such as 123.7,116.3,103.5, got {text!r}"
        ) from exc
    if not all(math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def add_model_options(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    """``MODEL`` and the load options (:func:`add_load_options`)."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="model file: OpenVINO IR (.xml), ONNX (.onnx); with openvino also TensorFlow "
        "(.pb, SavedModel folder), TensorFlow Lite (.tflite), PaddlePaddle (.pdmodel)",
    )
    add_load_options(parser, lists=lists)


def add_load_options(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    """``--backend``, ``--device``, ``--precision``, ``--dynamic``, ``--cache-dir``. With
    ``lists``, ``--backend`` and ``--precision`` take comma lists (each value is a
    configuration to compare)."""
    default = f"the first usable of {', '.join(DEFAULT_BACKENDS)}"
    parser.add_argument(
        "--backend",
        metavar="NAME[,NAME..]" if lists else "NAME",
        help=(
            f"openvino, onnxruntime or tensorrt; a comma list compares them (default: {default}; "
            "with --compare: every usable one)"
            if lists
            else f"openvino, onnxruntime or tensorrt (default: {default})"
        ),
    )
    parser.add_argument(
        "--device",
        default="AUTO",
        help="AUTO (first present of GPU, NPU, CPU), CPU, GPU, GPU.1, NPU (default: AUTO); "
        "an absent device is an error, never a silent fallback",
    )
    parser.add_argument(
        "--precision",
        metavar="P[,P..]" if lists else "FP32|BF16|FP16|INT8",
        help=(
            "execution precision, FP32 (F32), BF16, FP16 (default: the model's own); INT8 "
            "requires a quantized model (see atriva-infer quantize); a comma list such as "
            "f32,bf16 compares them"
            if lists
            else "execution precision (default: the model's own); INT8 requires a quantized "
            "model (see atriva-infer quantize)"
        ),
    )
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="free dims the model declares static but does not need (N, H, W of image "
        "inputs), e.g. for fully convolutional detectors exported at one size",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache compiled models in DIR; a later load of the same model reuses them",
    )


def add_preparation_options(parser: argparse.ArgumentParser) -> None:
    """``--layout``, ``--mean``, ``--scale``: how frames are converted for the model, in the
    model itself (``load_model``'s ``layout=``, ``mean=``, ``scale=``)."""
    parser.add_argument(
        "--layout",
        metavar="LAYOUT",
        help="the layout the model's input wants, such as NCHW or NHWC, where the model does "
        "not say and the guess for 4-D inputs would be wrong",
    )
    parser.add_argument(
        "--mean",
        type=float_list,
        metavar="M[,M..]",
        help="per-channel mean subtracted in the model, e.g. 123.675,116.28,103.53 for "
        "ImageNet on 0-255 frames (default: none)",
    )
    parser.add_argument(
        "--scale",
        type=float_list,
        metavar="S[,S..]",
        help="per-channel divisor applied after --mean, e.g. 58.395,57.12,57.375 (default: none)",
    )


def preparation(args: argparse.Namespace) -> dict[str, Any]:
    """``load_model`` keywords of :func:`add_preparation_options`' values (only those given)."""
    given = {"layout": args.layout, "mean": args.mean, "scale": args.scale}
    return {key: value for key, value in given.items() if value is not None}


def check_writable(path: str | None, option: str) -> None:
    """Refuse ``option``'s output ``path`` before any work when its folder does not exist."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise InvalidInputError(f"{option} {path}: the folder '{Path(path).parent}' does not exist")


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` as indented JSON."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
