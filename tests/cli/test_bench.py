"""Tests of ``atriva-infer bench`` and the measuring functions (atriva_inference.cli.bench)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.cli import main
from atriva_inference.cli.bench import measure
from atriva_inference.cli.inputs import make_random_inputs
from atriva_inference.errors import InvalidInputError
from atriva_inference.quantization.compare import output_difference

ov = pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

PREFIX = "atriva-infer: error:"
BACKENDS = ["openvino", "onnxruntime"]
MODES = ["sync", "stream", "async"]
FAST = ["--iterations", "10", "--warmup", "2"]
JSON_KEYS = {
    "model",
    "backend",
    "device",
    "precision",
    "mode",
    "iterations",
    "seconds",
    "throughput_fps",
    "latency_ms",
    "profile",
}
LATENCY_KEYS = {"median", "p90", "p99", "min", "max", "mean"}


def _bench(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["bench", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _field(out: str, key: str) -> str:
    """The value of a ``key:  value`` line of bench's report."""
    for line in out.splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no '{key}:' line in:\n{out}")


def _row(out: str, backend: str, nth: int = 0) -> list[str]:
    """The fields of the ``nth`` comparison-table row of ``backend``."""
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == [backend]]
    assert len(rows) > nth, out
    return rows[nth]


# -- the command ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bench_each_mode_and_backend(models, capsys, backend, mode):
    code, out, err = _bench(capsys, models["onnx"], "--backend", backend, "--mode", mode, *FAST)
    assert code == 0, err
    assert _field(out, "backend") == backend
    assert _field(out, "device") == "CPU"
    assert _field(out, "precision") == "FP32"
    assert _field(out, "mode").startswith(mode)
    assert _field(out, "iterations") == "10"
    assert float(_field(out, "throughput").split()[0]) > 0
    latency = _field(out, "latency ms")
    for word in ("median", "p90", "p99", "min", "max"):
        assert word in latency
    assert "Profile: backend=" in out  # the profile table follows
    assert err == ""  # stderr is not a terminal: no progress bar


@pytest.mark.parametrize("mode", MODES)
def test_json_has_the_fields_and_the_iterations_asked(models, capsys, tmp_path, mode):
    path = tmp_path / "out.json"
    args = ["--mode", mode, "--requests", "3", "--iterations", "7", "--json", path]
    code, _, err = _bench(capsys, models["onnx"], "--backend", "openvino", *args)
    assert code == 0, err
    data = json.loads(path.read_text())
    assert set(data) >= JSON_KEYS
    assert set(data["latency_ms"]) >= LATENCY_KEYS
    assert data["iterations"] == 7
    assert data["mode"] == mode
    assert (data["device"], data["precision"], data["backend"]) == ("CPU", "FP32", "openvino")
    assert data["throughput_fps"] > 0 and data["seconds"] > 0
    lat = data["latency_ms"]
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert isinstance(data["profile"], dict) and "runs" in data["profile"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_warmup_is_not_in_the_profile(models, capsys, tmp_path, backend):
    path = tmp_path / "out.json"
    args = ["--backend", backend, "--iterations", "6", "--warmup", "4", "--json", path]
    code, _, err = _bench(capsys, models["onnx"], *args)
    assert code == 0, err
    assert json.loads(path.read_text())["profile"]["runs"] == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_shape_sets_a_dynamic_input(models, capsys, tmp_path, backend):
    path = tmp_path / "out.json"
    args = ["--backend", backend, "--shape", "x=2x3x8x12", "--json", path, *FAST]
    code, out, err = _bench(capsys, models["dynamic"], *args)
    assert code == 0, err
    assert "x float32[2,3,8,12]" in _field(out, "inputs")
    assert json.loads(path.read_text())["inputs"] == {"x": [2, 3, 8, 12]}
    args = ["--backend", backend, "--shape", "1x3x5x7", *FAST]
    code, out, err = _bench(capsys, models["dynamic"], *args)
    assert code == 0, err
    assert "x float32[1,3,5,7]" in _field(out, "inputs")


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        ("dynamic", "x=1x4x8x8", "does not fit"),  # the static channel dimension is 3
        ("dynamic", "x=1x3x8", "does not fit"),  # wrong rank
        ("dynamic", "y=1x3x8x8", "no input 'y'"),
        ("dynamic", "x=1x3xAx8", "expected dimensions like"),
        ("dynamic", "x=", "expected dimensions like"),
        ("onnx", "1x3x8x8", "does not fit"),  # a static model keeps its shape
    ],
)
def test_bad_shape_is_a_one_line_error(models, capsys, model, shape, message):
    code, out, err = _bench(capsys, models[model], "--shape", shape, *FAST)
    assert code == 2
    assert err.startswith(PREFIX) and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert out == ""


def test_trace_with_compare_is_refused(models, capsys, tmp_path):
    code, _, err = _bench(capsys, models["onnx"], "--compare", "--trace", tmp_path / "t.json")
    assert code == 2 and err.startswith(PREFIX) and err.count("\n") == 1


def test_json_into_a_missing_folder_fails_before_measuring(models, capsys, tmp_path):
    code, out, err = _bench(capsys, models["onnx"], "--json", tmp_path / "no" / "out.json")
    assert code == 2 and err.startswith(PREFIX) and "does not exist" in err
    assert out == ""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sync", "stream", "async"])
def test_trace_is_a_chrome_trace(models, capsys, tmp_path, backend, mode):
    """Every mode's trace holds its measured runs: the stream or queue is profiled before it
    closes (a closed request keeps its counts but not its timeline)."""
    path = tmp_path / "trace.json"
    args = ["--backend", backend, "--mode", mode, "--profile", "--trace", path, *FAST]
    code, _, err = _bench(capsys, models["onnx"], *args)
    assert code == 0, err
    events = json.loads(path.read_text())["traceEvents"]
    runs = [event for event in events if event.get("cat") == "run"]
    assert len(runs) == 10  # FAST: 10 measured iterations, the warm-up reset away


# -- comparisons ---------------------------------------------------------------------------
def test_compare_backends_same_outputs(models, capsys, tmp_path):
    path = tmp_path / "compare.json"
    code, out, err = _bench(capsys, models["onnx"], "--compare", "--json", path, *FAST)
    assert code == 0, err
    first, second = _row(out, "openvino"), _row(out, "onnxruntime")
    assert first[1:3] == ["CPU", "FP32"] and "reference" in first
    assert second[1:3] == ["CPU", "FP32"]
    assert second[6].endswith("x")  # speed ratio
    assert float(second[7]) < 1e-4  # max abs diff
    data = json.loads(path.read_text())
    assert set(data) >= JSON_KEYS and data["backend"] == "openvino" and data["iterations"] == 10
    rows = {row["backend"]: row for row in data["compare"]}
    assert set(rows) == {"openvino", "onnxruntime"}
    assert rows["openvino"]["reference"] and rows["openvino"]["speed_ratio"] == 1.0
    assert rows["onnxruntime"]["outputs"]["output"]["max_abs"] < 1e-4
    assert rows["onnxruntime"]["iterations"] == 10


def test_compare_skips_a_backend_that_cannot_read_the_file(models, capsys):
    code, out, err = _bench(capsys, models["xml"], "--compare", *FAST)
    assert code == 0, err
    assert "reference" in _row(out, "openvino")
    assert "skipped" in _row(out, "onnxruntime")
    assert "skipped onnxruntime:" in out and "ONNX" in out


def test_compare_precisions(models, capsys, tmp_path):
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    path = tmp_path / "precisions.json"
    args = ["--backend", "openvino", "--precision", "f32,bf16", "--json", path, *FAST]
    code, out, err = _bench(capsys, models["onnx"], *args)
    assert code == 0, err
    f32, bf16 = _row(out, "openvino", 0), _row(out, "openvino", 1)
    assert f32[2] == "FP32" and "reference" in f32
    rows = json.loads(path.read_text())["compare"]
    assert [row["requested_precision"] for row in rows] == ["f32", "bf16"]
    if "BF16" in capabilities:
        assert bf16[2] == "BF16"
        assert rows[1]["precision"] == "BF16" and rows[1]["error"] is None
        assert 0 < rows[1]["outputs"]["output"]["max_abs"] < 1  # bf16 rounds, but not wildly
    else:
        assert "error:" in bf16 and "BF16" in " ".join(bf16)
        assert rows[1]["error"]


def test_compare_reports_a_failing_precision_in_its_row(models, capsys):
    args = ["--backend", "onnxruntime", "--precision", "fp32,bf16", *FAST]
    code, out, err = _bench(capsys, models["onnx"], *args)
    assert code == 0, err
    assert "reference" in _row(out, "onnxruntime", 0)
    assert "error:" in _row(out, "onnxruntime", 1)


# -- the functions -------------------------------------------------------------------------
def test_output_difference_known_arrays():
    # max rel: the largest |a - b| over the largest |b| (the output's range), not elementwise
    assert output_difference(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0])) == (1.0, 0.4)
    assert output_difference(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32)) == (0, 0)
    max_abs, max_rel = output_difference(np.array([0.0, 1e-3]), np.array([0.0, 0.0]))
    assert max_abs == pytest.approx(1e-3) and math.isinf(max_rel)
    nan = np.array([np.nan, np.inf, 1.0])
    assert output_difference(nan, nan.copy()) == (0.0, 0.0)  # NaN vs NaN, inf vs inf: equal
    assert output_difference(np.array([1, 2], np.int64), np.array([1, 4], np.int32)) == (2, 0.5)
    assert output_difference(np.array(["a"]), np.array(["a"])) == (0.0, 0.0)
    assert output_difference(np.array(["a"]), np.array(["b"])) == (math.inf, math.inf)
    assert output_difference(np.zeros((0, 3)), np.zeros((0, 3))) == (0.0, 0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        output_difference(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("mode", MODES)
def test_measure_counts_and_stops(models, mode):
    with InferenceRuntime("openvino") as runtime:
        model = runtime.load_model(models["onnx"], "CPU")
        inputs = make_random_inputs(model.inputs)
        result = measure(model, inputs, mode, iterations=9, warmup=1, requests=4)
        assert result.iterations == 9 == result.latencies_ns.size
        assert (result.latencies_ns > 0).all()
        assert result.requests == (4 if mode == "async" else 1)
        assert model.get_profiling().runs == 9
        timed = measure(model, inputs, mode, seconds=0.05, warmup=0)
        assert timed.seconds >= 0.05 and timed.iterations >= 1  # stops past the deadline
        calls: list[tuple[int, float]] = []
        measure(model, inputs, mode, iterations=3, progress=lambda *a: calls.append(a))
        assert calls[-1][0] == 3  # the final report
        with pytest.raises(InvalidInputError, match="mode"):
            measure(model, inputs, "turbo", iterations=1)
