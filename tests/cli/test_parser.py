"""Tests of the ``atriva-infer`` argument parser (atriva_inference.cli.parser)."""

from __future__ import annotations

import argparse

import pytest

from atriva_inference import __version__
from atriva_inference.cli import main
from atriva_inference.cli.parser import add_model_options, build_parser


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"atriva-infer {__version__}"


def test_help_documents_random_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "dynamic first dimension becomes 1" in out
    assert "--dynamic-size" in out


@pytest.mark.parametrize("command", ["info", "run", "bench"])
def test_every_command_has_the_shared_options(command: str) -> None:
    argv = [command, "m.onnx", "--device", "CPU", "--dynamic", "--cache-dir", "c"]
    args = build_parser().parse_args([*argv, "--backend", "openvino", "--precision", "fp16"])
    assert (args.command, args.model, args.backend, args.precision) == (
        command,
        "m.onnx",
        "openvino",
        "fp16",
    )
    assert (args.device, args.dynamic, args.cache_dir) == ("CPU", True, "c")


def test_bench_takes_comma_lists() -> None:
    args = build_parser().parse_args(
        ["bench", "m.onnx", "--backend", "openvino,onnxruntime", "--precision", "f32,bf16"]
    )
    assert (args.backend, args.precision) == ("openvino,onnxruntime", "f32,bf16")


@pytest.mark.parametrize("command", ["info", "run", "bench"])
def test_an_extra_positional_is_refused_not_taken_for_an_option(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Once `bench` redefined --backend/--precision with conflict_handler="resolve", the
    # shared actions lost their option strings and became positionals in every command:
    # `info m.onnx openvino` was read as --backend openvino.
    assert main([command, "m.onnx", "openvino", "FP16"]) == 2
    assert "unrecognized arguments: openvino FP16" in capsys.readouterr().err


def test_a_new_command_with_several_positionals_composes() -> None:
    """A command added after bench (as pipeline and serve will be) keeps its positionals and
    the shared options, before or after them."""
    parser = argparse.ArgumentParser(prog="atriva-infer")
    commands = parser.add_subparsers(dest="command", required=True)
    add_model_options(commands.add_parser("bench"), lists=True)
    pipeline = commands.add_parser("pipeline")
    add_model_options(pipeline)
    pipeline.add_argument("sources", metavar="SOURCE", nargs="+")
    pipeline.add_argument("--fps", type=float)

    argv = ["pipeline", "--backend", "onnxruntime", "m.onnx", "a.mp4", "rtsp://cam/1", "b.mp4"]
    args = parser.parse_args([*argv, "--precision", "FP16", "--device", "CPU"])
    assert args.model == "m.onnx"
    assert args.sources == ["a.mp4", "rtsp://cam/1", "b.mp4"]
    assert (args.backend, args.precision, args.device) == ("onnxruntime", "FP16", "CPU")
    bench = parser.parse_args(["bench", "m.onnx", "--backend", "openvino,onnxruntime"])
    assert (bench.model, bench.backend) == ("m.onnx", "openvino,onnxruntime")
    with pytest.raises(SystemExit):
        parser.parse_args(["pipeline", "m.onnx"])  # at least one SOURCE


def test_help_of_bench_names_the_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--backend NAME[,NAME..]" in out and "--precision P[,P..]" in out
    assert main(["info", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--backend NAME" in out and "NAME[,NAME..]" not in out


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "m.onnx", "--iterations", "0"]) == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    assert main(["bench", "m.onnx", "--seconds", "inf"]) == 2
    assert "expected a positive number, got inf" in capsys.readouterr().err
    assert main(["bench", "m.onnx", "--warmup", "x"]) == 2
    assert "expected an integer >= 0, got 'x'" in capsys.readouterr().err
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
