"""``atriva-infer quantize``: a folder of frames or a video in, a guarded INT8 model out.

Registered on the parser by :func:`add_command`; :func:`run` does the work through
:func:`atriva_inference.quantize` (imported on use: NNCF is heavy and optional).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_command(commands: Any) -> None:
    """Register the ``quantize`` subcommand on the ``atriva-infer`` parser."""
    quantize = commands.add_parser(
        "quantize",
        help="quantize a model to INT8 from a folder of frames or a video, with a guard",
        description="Calibrate MODEL on frames (a folder of images or a video file) and write "
        "an INT8 model; report f32 vs INT8 latency and the drop on held-out frames.",
    )
    quantize.add_argument("model", metavar="MODEL", help="model file (.xml or .onnx)")
    quantize.add_argument("--frames", required=True, metavar="DIR|VIDEO", help="calibration frames")


def run(args: argparse.Namespace) -> int:
    """Run the ``quantize`` command; return the exit status."""
    raise NotImplementedError("atriva-infer quantize is being built (issue 14)")
