"""The ``atriva-infer`` argument parser.

Every command that loads a model takes ``MODEL`` and the same load options, added by
:func:`add_model_options` (one definition; ``bench`` lets ``--backend`` and ``--precision``
take comma lists through the same helper). A new command builds on it and adds its own
positional arguments after ``MODEL``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, TypeVar

from .. import __version__
from . import pipeline as pipeline_command
from . import serve as serve_command
from .bench import DEFAULT_REQUESTS, DEFAULT_SECONDS, DEFAULT_WARMUP, MODES
from .inputs import DEFAULT_DYNAMIC_SIZE, INT_HIGH

__all__ = ["DEFAULT_BACKENDS", "PROG", "add_model_options", "build_parser"]

PROG = "atriva-infer"

#: Backends tried, in order, when ``--backend`` is not given: the first usable one wins.
DEFAULT_BACKENDS = ("openvino", "onnxruntime")

_RANDOM_HELP = (
    "Random inputs (when no --input is given): a dynamic first dimension becomes 1 (batch of "
    "one), any other dynamic dimension becomes --dynamic-size (default "
    f"{DEFAULT_DYNAMIC_SIZE}); floats are uniform in [0, 1), integers uniform in "
    f"[0, {INT_HIGH}), bools are fair coin flips and strings are short random words. "
    "--seed makes them reproducible."
)

Number = TypeVar("Number", int, float)


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


_positive_int = _number(int, "a positive integer", lambda value: value >= 1)
_non_negative_int = _number(int, "an integer >= 0", lambda value: value >= 0)
_positive_float = _number(float, "a positive number", lambda value: 0 < value < math.inf)


def add_model_options(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    """``MODEL`` and the load options: ``--backend``, ``--device``, ``--precision``,
    ``--dynamic``, ``--cache-dir``. With ``lists``, ``--backend`` and ``--precision`` take
    comma lists (each value is a configuration to compare)."""
    parser.add_argument("model", metavar="MODEL", help="model file (.xml OpenVINO IR or .onnx)")
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
        metavar="P[,P..]" if lists else "FP32|BF16|FP16",
        help=(
            "execution precision, FP32 (F32), BF16, FP16 (default: the model's own); a comma "
            "list such as f32,bf16 compares them"
            if lists
            else "execution precision (default: the model's own)"
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


def _add_random_options(parser: argparse.ArgumentParser, dynamic_help: str) -> None:
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random inputs (default: 0)"
    )
    parser.add_argument(
        "--dynamic-size",
        type=_positive_int,
        default=DEFAULT_DYNAMIC_SIZE,
        metavar="N",
        help=f"size of dynamic dimensions {dynamic_help} (default: {DEFAULT_DYNAMIC_SIZE})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``atriva-infer`` parser: info, run, bench, pipeline and serve subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect or run a model with atriva-inference (OpenVINO, ONNX Runtime, "
        "TensorRT).",
        epilog="Errors print one line, 'atriva-infer: error: <message>', and exit with status 2.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_info(commands)
    _add_run(commands)
    _add_bench(commands)
    pipeline_command.add_command(commands)
    serve_command.add_command(commands)
    return parser


def _add_info(commands: Any) -> None:
    info = commands.add_parser(
        "info",
        help="show the backends, then load MODEL and describe it",
        description="Show the backends available here, then load MODEL and print the device "
        "and precision really used, whether it came from the cache, and its inputs and outputs.",
    )
    add_model_options(info)


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run MODEL on .npy inputs (or random ones) and print output statistics",
        description="Load MODEL, run it on the given .npy inputs (random ones when none are "
        "given) and print, per output, its dtype, shape and min/max/mean, then the median "
        "latency.",
        epilog=_RANDOM_HELP,
    )
    add_model_options(run)
    run.add_argument(
        "--input",
        "-i",
        dest="inputs",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="an input as a .npy file; repeat for each input; a bare FILE.npy (no NAME=) "
        "is allowed for a model with one input; none given: random inputs (see below)",
    )
    run.add_argument(
        "--iterations",
        "-n",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N times and report the median latency (default: 1)",
    )
    _add_random_options(run, "other than the first in random inputs")


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure throughput and latency of MODEL (like benchmark_app / trtexec)",
        description="Load MODEL, warm it up, then run it on random inputs for --seconds or "
        "--iterations and print the throughput, latency percentiles and the profile. With "
        "--compare (or several --backend / --precision values) run each configuration on the "
        "same inputs and print them side by side: speed ratio and max abs / rel difference of "
        "every output against the first one.",
        epilog="A progress bar is drawn on stderr when it is a terminal. " + _RANDOM_HELP,
    )
    add_model_options(bench, lists=True)
    bench.add_argument(
        "--mode",
        choices=MODES,
        default="sync",
        help="sync: model.run; stream: one model.create_stream(); async: the async queue "
        "(model.create_async_queue, its THROUGHPUT executable) with --requests frames in "
        "flight (default: sync)",
    )
    length = bench.add_mutually_exclusive_group()
    length.add_argument(
        "--seconds",
        "-t",
        type=_positive_float,
        metavar="S",
        help=f"measure for S seconds (default: {DEFAULT_SECONDS:g})",
    )
    length.add_argument(
        "--iterations", "-n", type=_positive_int, metavar="N", help="measure exactly N iterations"
    )
    bench.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=DEFAULT_WARMUP,
        metavar="N",
        help=f"iterations run first and not counted (default: {DEFAULT_WARMUP})",
    )
    bench.add_argument(
        "--requests",
        type=_positive_int,
        default=DEFAULT_REQUESTS,
        metavar="N",
        help="frames in flight with --mode async (default: the backend's optimal number)",
    )
    bench.add_argument(
        "--shape",
        dest="shapes",
        action="append",
        default=[],
        metavar="NAME=AxBxC",
        help="concrete shape of a dynamic input, e.g. images=1x3x480x640; repeat per input; "
        "a bare AxBxC for a one-input model",
    )
    bench.add_argument(
        "--profile", action="store_true", help="load with per-layer profiling (slower runs)"
    )
    bench.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace to FILE")
    bench.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    bench.add_argument(
        "--compare",
        action="store_true",
        help="run on every usable backend (or each of --backend) and compare",
    )
    _add_random_options(bench, "without --shape, other than the first")
