"""``atriva-infer quantize``: a folder of frames or a video in, a guarded INT8 model out.

Registered on the parser by :func:`add_command`; :func:`run` does the work through
:func:`atriva_inference.quantization.quantize` (imported on use: NNCF is heavy and optional).
Exit status 0 when the INT8 model passes the guard, 1 when it is slower than f32 (or than
``--min-speedup``) or its drop is over ``--max-drop`` (one line per reason on stderr; the
file is still written), 2 for usage and load errors, 3 for an unexpected error (a bug).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..quantization.compare import DECODERS, METRICS
from .options import (
    EXIT_REFUSED,
    PROG,
    TerminalProgress,
    add_preparation_options,
    check_writable,
    fraction,
    non_negative_float,
    positive_int,
    write_json,
)

__all__ = ["add_command", "run"]

STAGE_LABELS = {"calibrating": "calibrating", "comparing": "f32 vs INT8"}


def _shape(text: str) -> list[int]:
    try:
        dims = [int(item) for item in text.lower().split("x")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected NxCxHxW such as 1x3x320x320, got {text!r}"
        ) from exc
    if any(dim < 1 for dim in dims):
        raise argparse.ArgumentTypeError(
            f"expected positive dims such as 1x3x320x320, got {text!r}"
        )
    return dims


def add_command(commands: Any) -> None:
    """Register the ``quantize`` subcommand on the ``atriva-infer`` parser."""
    quantize = commands.add_parser(
        "quantize",
        help="quantize a model to INT8 from a folder of frames or a video, with a guard",
        description="Calibrate MODEL on frames (a folder of images or a video file) and write "
        "an INT8 model; report f32 vs INT8 latency and the drop on held-out frames. Exit 0 "
        "when the guard passes, 1 when INT8 is slower than f32 or the drop is over "
        "--max-drop (the file is written either way), 2 for usage or load errors, 3 for an "
        "unexpected error (a bug).",
    )
    quantize.add_argument("model", metavar="MODEL", help="model file (.xml, .onnx, ...)")
    quantize.add_argument(
        "--frames",
        required=True,
        metavar="DIR|VIDEO",
        help="calibration frames: a folder of images (png/jpg/jpeg/bmp/webp) or a video file",
    )
    quantize.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the INT8 model to write (default: <stem>-int8.xml or .onnx next to MODEL)",
    )
    quantize.add_argument(
        "--backend",
        choices=("openvino", "onnxruntime"),
        help="openvino (NNCF, writes IR) or onnxruntime (QDQ U8S8 per channel, writes .onnx); "
        "default: onnxruntime for .onnx files, openvino for the rest",
    )
    quantize.add_argument("--device", default="CPU", help="device to compare on (default: CPU)")
    add_preparation_options(quantize)
    quantize.add_argument(
        "--shape",
        type=_shape,
        metavar="NxCxHxW",
        help="input shape to calibrate at, in the model's layout; frames are resized to it "
        "(default: the model's declared size, else each frame's own)",
    )
    quantize.add_argument(
        "--subset-size",
        type=positive_int,
        default=300,
        metavar="N",
        help="frames to calibrate on (default: 300)",
    )
    quantize.add_argument(
        "--held-out",
        type=positive_int,
        default=50,
        metavar="N",
        help="frames held out for the accuracy check, at least 4 (default: 50)",
    )
    quantize.add_argument(
        "--metric",
        choices=METRICS,
        default="cosine",
        help="cosine: the worst cosine similarity of an output (flattened) over the held-out "
        "frames; top1: how often the argmax of the first output, over all axes but the batch, "
        "agrees (classifiers); iou: matched-box IoU of decoded detections (needs --decoder); "
        "the same numbers as bench --against --metric. Default: cosine",
    )
    quantize.add_argument(
        "--decoder", choices=list(DECODERS), help="decoder of detections for --metric iou"
    )
    quantize.add_argument(
        "--max-drop",
        type=fraction,
        metavar="X",
        help="fail (exit 1) when 1 - metric exceeds X (e.g. 0.01); default: not guarded",
    )
    quantize.add_argument(
        "--min-speedup",
        type=non_negative_float,
        default=1.0,
        metavar="X",
        help="fail (exit 1) when f32 time / INT8 time is under X (default: 1, INT8 must not "
        "be slower; 0: speed not guarded)",
    )
    quantize.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE")


def run(args: argparse.Namespace) -> int:
    """Run the ``quantize`` command; return the exit status."""
    from ..quantization import quantize

    check_writable(args.output, "-o")
    check_writable(args.json, "--json")
    with _Progress() as progress:
        report = quantize(
            args.model,
            args.frames,
            args.output,
            backend=args.backend,
            device=args.device,
            layout=args.layout,
            mean=args.mean,
            scale=args.scale,
            shape=args.shape,
            subset_size=args.subset_size,
            held_out=args.held_out,
            max_drop=args.max_drop,
            min_speedup=args.min_speedup,
            metric=args.metric,
            decode=args.decoder,
            progress=progress.update,
        )
    print(report)
    if args.json:
        write_json(args.json, report.to_dict())
    for reason in report.reasons:
        print(f"{PROG} quantize: INT8 refused: {reason}", file=sys.stderr)
    return 0 if report.passed else EXIT_REFUSED


class _Progress(TerminalProgress):
    """One transient ``rich`` display on stderr, a bar per stage (calibration, NNCF's own
    stages, the comparison); nothing when stderr is not a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self._tasks: dict[str, Any] = {}

    def columns(self) -> list[Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        return [
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]

    def update(self, stage: str, done: int, total: int) -> None:
        """``progress(stage, done, total)`` of :func:`atriva_inference.quantization.quantize`."""
        progress = self.progress
        if progress is None:
            return
        task = self._tasks.get(stage)
        if task is None:
            label = STAGE_LABELS.get(stage, stage)
            task = self._tasks[stage] = progress.add_task(label, total=total or None)
        progress.update(task, completed=done, total=total or None)  # 0: not known
