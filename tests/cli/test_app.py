"""Tests of the ``atriva-infer`` commands and entry points (atriva_inference.cli.app)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, __version__, available_backends
from atriva_inference.cli import main
from atriva_inference.cli.inputs import make_random_inputs
from atriva_inference.cli.text import summarize

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

INPUT, OUTPUT = "input", "output"  # tests/zoo.py's conv_net
PREFIX = "atriva-infer: error:"


def _stats(out: str, name: str) -> dict[str, str]:
    """The ``key=value`` fields of the output line of ``name`` in ``run``'s output."""
    section = out.split("outputs:", 1)[1]
    for line in section.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return dict(field.split("=", 1) for field in fields[1:] if "=" in field)
    raise AssertionError(f"no output line for {name!r} in:\n{out}")


def _expected(backend: str, path: Path, array: np.ndarray) -> dict[str, str]:
    with InferenceRuntime(backend) as runtime:
        model = runtime.load_model(path, "CPU")
        result = model.run({INPUT: array})[OUTPUT].to_numpy()
    fields = dict(field.split("=", 1) for field in summarize(result).split())
    return {"dtype": "float32", "shape": "[1,4,16,16]", **fields}


BACKEND_FILES = [("openvino", "xml"), ("onnxruntime", "onnx"), ("openvino", "onnx")]


@pytest.mark.parametrize(("backend", "kind"), BACKEND_FILES)
def test_info(
    models: dict[str, Path], backend: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(models[kind]), "--backend", backend, "--device", "CPU"]) == 0
    out = capsys.readouterr().out
    assert "backends:" in out
    for status in available_backends():
        assert status.name in out
    assert f"backend:    {backend}" in out
    assert "device:     CPU" in out
    assert "precision:  FP32" in out
    assert "from cache: no" in out
    assert f"  {INPUT}  dtype=float32  shape=[1,3,16,16]" in out
    assert f"  {OUTPUT}  dtype=float32  shape=[1,4,16,16]" in out


def test_info_default_backend_and_precision(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first = next(
        s.name for s in available_backends() if s.usable and s.name in ("openvino", "onnxruntime")
    )
    assert main(["info", str(models["onnx"]), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert f"backend:    {first}" in out
    assert "precision:  FP32" in out


def test_info_reports_cache(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["info", str(models["onnx"]), "--backend", "onnxruntime", "--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    assert "from cache: no" in capsys.readouterr().out
    assert main(argv) == 0
    assert "from cache: yes" in capsys.readouterr().out


@pytest.mark.parametrize(("backend", "kind"), BACKEND_FILES[:2])
def test_run_random_inputs_match_api(
    models: dict[str, Path], backend: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(models[kind]), "--backend", backend, "--device", "CPU", "--seed", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "random (seed 3)" in out
    assert "latency: median " in out and "over 1 iteration" in out
    with InferenceRuntime(backend) as runtime:
        infos = runtime.load_model(models[kind], "CPU").inputs
    array = make_random_inputs(infos, seed=3)[INPUT]
    assert _stats(out, OUTPUT) == _expected(backend, models[kind], array)


@pytest.mark.parametrize(("backend", "kind"), BACKEND_FILES[:2])
@pytest.mark.parametrize("named", [True, False], ids=["name=path", "bare-path"])
def test_run_npy_input_matches_api(
    models: dict[str, Path],
    backend: str,
    kind: str,
    named: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = str(models["data"])
    spec = f"{INPUT}={data}" if named else data
    argv = ["run", str(models[kind]), "--backend", backend, "--input", spec, "-n", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "from file" in out
    assert "over 3 iterations" in out
    expected = _expected(backend, models[kind], np.load(models["data"]))
    assert _stats(out, OUTPUT) == expected


def test_run_string_model_with_random_inputs(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(models["strings"]), "--backend", "onnxruntime"]) == 0
    out = capsys.readouterr().out
    assert "text  dtype=string  shape=[3]" in out
    assert "same  dtype=string  shape=[3]  values='" in out


def test_run_dynamic_size_shapes_random_inputs(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(models["dynamic"]), "--backend", "onnxruntime", "--dynamic-size", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "x  dtype=float32  shape=[1,3,4,4]  random (seed 0)" in out
    assert "y  dtype=float32  shape=[1,3,4,4]  min=" in out


def _gpu_seen(backend: str) -> bool:
    return any(
        s.name == backend and any(d.startswith("GPU") for d in s.devices)
        for s in available_backends()
    )


ERROR_CASES = {
    "missing-model": (["info", "{missing}"], "does not exist"),
    "xml-on-onnxruntime": (["info", "{xml}", "--backend", "onnxruntime"], "OpenVINO IR"),
    "unknown-backend": (["run", "{onnx}", "--backend", "tensorflow"], "unknown backend"),
    "bad-input-name": (["run", "{onnx}", "--input", "nope={data}"], "no input 'nope'"),
    "duplicate-input": (["run", "{onnx}", "-i", "{data}", "-i", "input={data}"], "more than"),
    "missing-npy": (["run", "{onnx}", "--input", "input={missing}"], "does not exist"),
    "not-npy": (["run", "{xml}", "--input", "{text}"], "cannot read"),
    "bad-precision": (["info", "{onnx}", "--precision", "INT8"], "precision"),
    "bad-device": (["info", "{onnx}", "--device", "TPU"], "device"),
    "gpu-absent": (["info", "{onnx}", "--backend", "onnxruntime", "--device", "GPU"], "GPU"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_exit_2(
    models: dict[str, Path], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "gpu-absent" and _gpu_seen("onnxruntime"):
        pytest.skip("onnxruntime sees a GPU here")
    template, fragment = ERROR_CASES[case]
    paths = {key: str(value) for key, value in models.items()}
    argv = [arg.format(missing=tmp_path / "missing.onnx", **paths) for arg in template]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(PREFIX)
    assert fragment in lines[0]
    assert "Traceback" not in captured.out + captured.err


def _console_script() -> str:
    found = shutil.which("atriva-infer") or shutil.which(
        "atriva-infer", path=os.path.dirname(sys.executable)
    )
    if found is None:
        pytest.skip("the atriva-infer console script is not installed")
    return found


def test_console_script_entry_point(models: dict[str, Path]) -> None:
    script = _console_script()

    def info(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, "info", str(path), "--backend", "onnxruntime"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = info(models["onnx"])
    assert ok.returncode == 0, ok.stderr
    assert INPUT in ok.stdout and "CPU" in ok.stdout and "FP32" in ok.stdout
    bad = info(models["xml"])
    assert bad.returncode == 2
    assert bad.stderr.startswith(PREFIX) and len(bad.stderr.splitlines()) == 1
    assert "Traceback" not in bad.stdout + bad.stderr


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atriva_inference.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"atriva-infer {__version__}"


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_dynamic_frees_declared_static_dims(
    models: dict[str, Path], backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(models["onnx"])
    assert main(["info", model, "--backend", backend, "--dynamic"]) == 0
    assert f"  {INPUT}  dtype=float32  shape=[?,3,?,?]" in capsys.readouterr().out
    args = ["bench", model, "--backend", backend, "--dynamic", "--shape", "2x3x12x20", "-n", "3"]
    assert main(args) == 0
    assert "iterations:  3" in capsys.readouterr().out
    assert main(["bench", model, "--backend", backend, "--shape", "2x3x12x20", "-n", "3"]) == 2
    assert "does not fit" in capsys.readouterr().err


def test_progress_displays_draw_only_on_a_terminal(monkeypatch, capsys) -> None:
    """Both displays (bench's bar per model, quantize's bar per stage) share
    options.TerminalProgress: nothing off a terminal, a transient display on one."""
    from atriva_inference.cli.app import _ProgressBar
    from atriva_inference.cli.quantize import _Progress

    with _ProgressBar(None, 10) as bar, _Progress() as stages:
        assert bar.task("model") is None and bar.progress is None and stages.progress is None
        stages.update("calibrating", 1, 2)  # nothing to draw on
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with _ProgressBar(None, 10) as bar, _Progress() as stages:
        update = bar.task("model")
        assert update is not None
        update(5, 0.1)
        stages.update("calibrating", 1, 2)
        stages.update("comparing", 3, 0)  # total unknown
        tasks = {task.description: task for task in stages.progress.tasks}
        assert tasks["calibrating"].completed == 1 and tasks["f32 vs INT8"].total is None
        assert bar.progress.tasks[0].completed == 5
