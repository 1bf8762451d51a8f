"""The ``atriva-infer`` argument parser.

Every command that loads a model takes ``MODEL`` and the same load options, added by
:func:`~.options.add_model_options` (one definition, in :mod:`.options`; ``bench`` lets
``--backend`` and ``--precision`` take comma lists through the same helper). ``pipeline``,
``serve`` and ``quantize`` register themselves from their own modules.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from . import pipeline as pipeline_command
from . import quantize as quantize_command
from . import serve as serve_command
from .bench import DEFAULT_REQUESTS, DEFAULT_ROUNDS, DEFAULT_SECONDS, DEFAULT_WARMUP, METRICS, MODES
from .inputs import DEFAULT_DYNAMIC_SIZE, INT_HIGH, MAX_FRAMES
from .options import (
    EXIT_STATUS_HELP,
    PROG,
    add_model_options,
    add_preparation_options,
    non_negative_int,
    positive_float,
    positive_int,
)

__all__ = ["PROG", "add_model_options", "build_parser"]

_RANDOM_HELP = (
    "Random inputs (when no input file is given): a dynamic first dimension becomes 1 (batch of "
    "one), any other dynamic dimension becomes --dynamic-size (default "
    f"{DEFAULT_DYNAMIC_SIZE}); floats are uniform in [0, 1), integers uniform in "
    f"[0, {INT_HIGH}), bools are fair coin flips and strings are short random words. "
    "--seed makes them reproducible."
)


_INPUTS_HELP = (
    "--inputs DIR|VIDEO|IMAGE: at most "
    f"{MAX_FRAMES} frames (spread evenly over a video) for a model with one image input, "
    "cycled through; each is stretched (bilinear) to the input's H and W (from --shape when "
    "they are dynamic, else the first frame's size); a static batch N takes N frames per run; "
    "they go in as uint8 RGB NHWC: the "
    "runtime converts them in the model (layout, dtype, then --mean/--scale: without them the "
    "model sees 0-255 values). --inputs FILE.npy[,FILE.npy..]: the arrays as they are (the "
    "model's dtype, a shape that fits): each file one input of a one-input model, cycled "
    "through, or NAME=FILE.npy for each input of a model with several."
)


def _add_random_options(parser: argparse.ArgumentParser, dynamic_help: str) -> None:
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random inputs (default: 0)"
    )
    parser.add_argument(
        "--dynamic-size",
        type=positive_int,
        default=DEFAULT_DYNAMIC_SIZE,
        metavar="N",
        help=f"size of dynamic dimensions {dynamic_help} (default: {DEFAULT_DYNAMIC_SIZE})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``atriva-infer`` parser: info, run, bench, pipeline, serve and quantize subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect or run a model with atriva-inference (OpenVINO, ONNX Runtime, "
        "TensorRT).",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_info(commands)
    _add_run(commands)
    _add_bench(commands)
    pipeline_command.add_command(commands)
    serve_command.add_command(commands)
    quantize_command.add_command(commands)
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
        type=positive_int,
        default=1,
        metavar="N",
        help="run N times and report the median latency (default: 1)",
    )
    _add_random_options(run, "other than the first in random inputs")


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure throughput and latency of MODEL (like benchmark_app / trtexec)",
        description="Load MODEL, warm it up, then run it on random inputs (or --inputs) for "
        "--seconds or --iterations and print the throughput, latency percentiles and the "
        "profile. With --compare (or several --backend / --precision values) run each "
        "configuration on the same inputs and print them side by side: speed ratio and max "
        "abs / rel difference of every output against the first one. With --against OTHER "
        "put another file of the same model beside it (an f32 file and its INT8 file): both "
        "loaded with the same options, measured in interleaved rounds on the same inputs.",
        epilog="A progress bar is drawn on stderr when it is a terminal. "
        + _INPUTS_HELP
        + " "
        + _RANDOM_HELP,
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
        type=positive_float,
        metavar="S",
        help=f"measure for S seconds (default: {DEFAULT_SECONDS:g})",
    )
    length.add_argument(
        "--iterations", "-n", type=positive_int, metavar="N", help="measure exactly N iterations"
    )
    bench.add_argument(
        "--warmup",
        type=non_negative_int,
        default=DEFAULT_WARMUP,
        metavar="N",
        help=f"iterations run first and not counted (default: {DEFAULT_WARMUP})",
    )
    bench.add_argument(
        "--requests",
        type=positive_int,
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
    bench.add_argument(
        "--against",
        metavar="OTHER_MODEL",
        help="also load OTHER_MODEL (same --backend, --device, --precision and frame options) "
        "and measure both in interleaved rounds on the same inputs: per model the precision "
        "really used and how much runs in INT8, median/p90 latency, throughput, speed vs "
        "MODEL (median of per-round ratios), and OTHER's max abs / rel output difference "
        "from MODEL over every input (rel: over the largest |value| of MODEL's output) "
        f"({DEFAULT_ROUNDS} rounds, each model --seconds in all)",
    )
    bench.add_argument(
        "--metric",
        choices=METRICS,
        help="with --against, also: top1 (how often the argmax of the first output, over all "
        "axes but the batch, agrees: classifiers) or cosine (the lowest cosine similarity of "
        "each output); the same numbers as quantize reports",
    )
    bench.add_argument(
        "--inputs",
        metavar="DIR|VIDEO|FILE.npy[,..]",
        help="real inputs instead of random ones: a folder of images, a video or image file, "
        "or .npy files (see below)",
    )
    add_preparation_options(bench)
    _add_random_options(bench, "without --shape, other than the first")
