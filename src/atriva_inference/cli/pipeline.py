"""``atriva-infer pipeline`` (being built; see the issue)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InferenceRuntimeError

__all__ = ["add_command", "run"]


def add_command(commands: Any) -> None:
    """Register the ``pipeline`` subcommand on the ``atriva-infer`` parser."""
    commands.add_parser("pipeline", help="(being built)")


def run(args: argparse.Namespace) -> int:
    """Run ``atriva-infer pipeline``; return the exit status."""
    raise InferenceRuntimeError("'pipeline' is not built yet")
