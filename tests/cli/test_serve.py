"""``atriva-infer serve``: its options, and the one-line errors before anything is served.
Serving itself (startup line, SIGTERM) is tested in tests/serve/test_sigterm.py."""

from __future__ import annotations

import socket

import pytest

from atriva_inference.cli import main

pytest.importorskip("fastapi", reason="serve needs the [serve] extra")

PREFIX = "atriva-infer: error:"


def test_help_lists_the_options(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "MODEL",
        "--name NAME=PATH",
        "--backend",
        "--device",
        "--precision",
        "--host",
        "--http-port",
        "--grpc-port",
        "--max-queue",
        "--ray",
        "--replicas",
        "--ray-address",
        "127.0.0.1",
    ):
        assert option in out


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ([], ["at least one MODEL"]),
        (["{onnx}", "--replicas", "2"], ["--replicas and --ray-address go with --ray"]),
        (["{onnx}", "--ray-address", "auto"], ["go with --ray"]),
        (["{onnx}", "--name", "conv_net={xml}"], ["'conv_net' given twice"]),
        (["missing.onnx", "--http-port", "0", "--grpc-port", "0"], ["does not exist"]),
        (["{onnx}", "--backend", "nope"], ["nope"]),
    ],
)
def test_errors_before_serving_are_one_line(capsys, models, arguments, words):
    argv = ["serve", *(a.format(onnx=models["onnx"], xml=models["xml"]) for a in arguments)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(PREFIX) and err.count("\n") == 1, err
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    "arguments",
    [["--http-port", "70000"], ["--grpc-port", "-1"], ["--max-queue", "0"], ["--replicas", "x"]],
)
def test_bad_option_values_are_usage_errors(capsys, models, arguments):
    assert main(["serve", str(models["onnx"]), *arguments]) == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("front_end", ["http", "grpc"])
def test_a_port_in_use_is_an_error(capsys, models, front_end):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ports = {"http": "0", "grpc": "0", front_end: port}
        argv = ["serve", str(models["onnx"]), "--http-port", ports["http"]]
        assert main([*argv, "--grpc-port", ports["grpc"]]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err, err
