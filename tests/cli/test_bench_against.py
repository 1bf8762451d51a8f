"""``atriva-infer bench MODEL --against OTHER``: an f32 file and its INT8 file side by side,
and the comparison functions behind it (atriva_inference.cli.bench.against & co)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.cli.bench import against, quantization_text
from atriva_inference.quantization import compare as quantization_compare
from atriva_inference.quantization.compare import (
    cosine_similarity,
    max_differences,
    top1_agreement,
)
from atriva_inference.vision.images import read_frames, resize_frame
from tests.cli.test_bench import _bench

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

PREFIX = "atriva-infer: error:"
FAST = ["--iterations", "8", "--warmup", "1"]
#: PP-LCNet's preprocessing (ImageNet mean/std) on 0-255 frames, compiled into the model.
IMAGENET = ["--mean", "123.675,116.28,103.53", "--scale", "58.395,57.12,57.375"]


def _rows(out: str) -> dict[str, list[str]]:
    """The table's rows by their first field (MODEL, OTHER)."""
    return {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["MODEL"], ["OTHER"]) and not line.startswith(("MODEL:", "OTHER:"))
    }


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_f32_against_its_int8_build_on_real_frames(
    classifier_pair, page_rotations, capsys, tmp_path, backend
):
    f32, int8 = classifier_pair
    path = tmp_path / "against.json"
    code, out, err = _bench(
        capsys, f32, "--against", int8, "--backend", backend, "--inputs", page_rotations,
        *IMAGENET, "--metric", "top1", "--json", path, *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert "4 frames of" in out and "uint8 RGB 224x224" in out
    rows = _rows(out)
    assert rows["MODEL"][1] == "FP32" and rows["MODEL"][5] == "1.00x"
    assert rows["OTHER"][1] == "INT8"
    assert "top1: 4 of 4 samples agree on output 'fetch_name_0'" in out
    data = json.loads(path.read_text())
    assert (data["model"], data["against"], data["backend"]) == (str(f32), str(int8), backend)
    assert data["inputs"] == {"x": [1, 224, 224, 3]}
    first, other = data["models"]
    assert first["reference"] and not other["reference"]
    assert first["quantization"] is None and "INT8" in other["quantization"]
    assert (first["precision"], other["precision"]) == ("FP32", "INT8")
    assert first["iterations"] == other["iterations"] == 8
    assert len(first["rounds_fps"]) == len(other["rounds_fps"]) == 8  # min(rounds, iterations)
    assert math.isfinite(other["speed_ratio"]) and other["speed_ratio"] > 0
    diff = other["outputs"]["fetch_name_0"]
    assert 0 < diff["max_abs"] < 0.1  # INT8 differs, a little: probabilities stay close
    assert other["metric"] == {
        "name": "top1", "output": "fetch_name_0", "agree": 4, "samples": 4, "value": 1.0
    }  # fmt: skip


def test_a_file_against_itself_is_identical(models, capsys, tmp_path):
    path = tmp_path / "self.json"
    code, out, err = _bench(
        capsys, models["onnx"], "--against", models["onnx"], "--metric", "cosine",
        "--json", path, *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert _rows(out)["OTHER"][6:8] == ["0", "0"]  # max abs, max rel
    assert "cosine (lowest over the inputs): 'output' 1.0000" in out
    other = json.loads(path.read_text())["models"][1]
    assert other["outputs"] == {"output": {"max_abs": 0.0, "max_rel": 0.0}}
    assert other["metric"]["value"] == pytest.approx(1.0)
    assert other["quantization"] is None


def test_against_profile_covers_every_measured_round(models, capsys):
    """--profile: each model's profile adds up its measured runs of every round (measure()
    resets profiling per round), without the warm-up or the output comparison's runs."""
    code, out, err = _bench(
        capsys, models["onnx"], "--against", models["onnx"], "--profile", "--backend",
        "onnxruntime", "--iterations", "9", "--warmup", "1",
    )  # fmt: skip
    assert code == 0, err
    for label in ("MODEL", "OTHER"):
        assert f"{label} profile: the 9 measured runs of its 9 rounds" in out
    runs = [line.split()[1] for line in out.splitlines() if line.startswith("runs ")]
    assert runs == ["9", "9"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--compare"], "--against compares two files under one configuration"),
        (["--backend", "openvino,onnxruntime"], "drop --compare and the comma lists"),
        (["--trace", "t.json"], "--trace records one configuration"),
    ],
)
def test_against_refuses_what_it_cannot_compare(models, capsys, extra, message):
    code, _, err = _bench(capsys, models["onnx"], "--against", models["xml"], *extra, *FAST)
    assert code == 2
    assert err.startswith(PREFIX) and message in err


def test_metric_needs_against(models, capsys):
    code, _, err = _bench(capsys, models["onnx"], "--metric", "top1", *FAST)
    assert code == 2 and "--metric top1: expected --against OTHER_MODEL too" in err


def test_against_a_model_with_other_inputs_is_one_line(models, capsys):
    code, _, err = _bench(capsys, models["onnx"], "--against", models["strings"], *FAST)
    assert code == 2 and err.count("\n") == 1
    assert "expected a model with the inputs of MODEL (input)" in err


def test_against_a_missing_file(models, capsys, tmp_path):
    code, _, err = _bench(capsys, models["onnx"], "--against", tmp_path / "nope.onnx", *FAST)
    assert code == 2 and "nope.onnx' does not exist" in err


# -- from Python -------------------------------------------------------------------------------
def test_against_splits_iterations_over_interleaved_rounds(models):
    feeds = [{"input": np.full((1, 3, 16, 16), v, np.float32)} for v in (0.1, 0.5, 0.9)]
    with InferenceRuntime("onnxruntime") as runtime:
        a = runtime.load_model(models["onnx"])
        b = runtime.load_model(models["onnx"])
        rows = against([a, b], feeds, iterations=7, rounds=3, warmup=0, metric="cosine")
    assert [row.result.iterations for row in rows] == [7, 7]
    assert [len(row.round_fps) for row in rows] == [3, 3]
    assert [len(row.outputs) for row in rows] == [3, 3]  # every feed ran through each
    assert rows[0].reference and rows[0].speed_ratio == 1.0
    assert rows[1].differences == {"output": (0.0, 0.0)}
    assert rows[1].metric["value"] == pytest.approx(1.0)
    assert quantization_text(a) == "none (float model)"


def test_against_refuses_an_unknown_metric(models):
    with InferenceRuntime("onnxruntime") as runtime:
        model = runtime.load_model(models["onnx"])
        with pytest.raises(ValueError, match="metric: expected one of top1, cosine, got 'iou'"):
            against([model], {"input": np.zeros((1, 3, 16, 16), np.float32)}, metric="iou")


def test_cosine_and_top1_on_known_arrays():
    assert cosine_similarity([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [0, 1]) == pytest.approx(0.0)
    assert cosine_similarity([1, 1], [-1, -1]) == pytest.approx(-1.0)
    assert cosine_similarity([0, 0], [0, 0]) == 1.0 and cosine_similarity([0, 0], [1, 0]) == 0.0
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert top1_agreement(scores, scores) == (3, 3)
    assert top1_agreement(scores, scores[:, ::-1]) == (0, 3)
    with pytest.raises(ValueError, match="shapes differ"):
        top1_agreement(scores, scores[:2])


def test_max_differences_takes_the_worst_feed_and_matches_renamed_outputs():
    reference = [{"y": np.full(3, 0.25)}, {"y": np.ones(3)}]
    outputs = [{"out": np.full(3, 0.5)}, {"out": np.array([1.0, 1.0, 3.0])}]
    found, notes = max_differences(outputs, reference)
    assert found == {"y": (2.0, 2.0)}  # feed 1: 0.25 and 1.0; feed 2: |3 - 1| = 2, 2 / 1
    assert notes == ["outputs matched by position (out vs y)"]
    found, notes = max_differences([{"y": np.zeros(3)}], [{"y": np.zeros(3), "z": np.zeros(1)}])
    assert found == {"y": (0.0, 0.0)} and notes == ["output 'z' missing"]


def test_compare_shows_what_runs_in_int8_on_each_backend(classifier_pair, capsys, tmp_path):
    path = tmp_path / "compare.json"
    code, out, err = _bench(
        capsys, classifier_pair[1], "--backend", "openvino,onnxruntime", "--json", path, *FAST
    )
    assert code == 0, err
    rows = json.loads(path.read_text())["compare"]
    assert [row["precision"] for row in rows] == ["INT8", "INT8"]
    assert all("compute layers in INT8" in row["quantization"] for row in rows)
    assert out.count("    quantization: ") == 2


@pytest.mark.parametrize("metric", ["cosine", "top1"])
def test_bench_against_and_quantize_report_the_same_numbers(
    classifier_pair, page_rotations, metric
):
    """One implementation of the metrics: on the same real f32/INT8 outputs, ``bench
    --against`` (cli.bench.against) and ``quantize``'s comparison give equal values and
    differences."""
    f32_path, int8_path = classifier_pair
    mean, scale = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    frames = [resize_frame(f, 224, 224) for f in read_frames(page_rotations)]
    with InferenceRuntime("onnxruntime") as runtime:
        f32 = runtime.load_model(f32_path, mean=mean, scale=scale)
        int8 = runtime.load_model(int8_path, mean=mean, scale=scale)
        feeds = [runtime.tensor_from_numpy(frame, layout="HWC") for frame in frames]
        quantized = quantization_compare.compare(
            f32, int8, feeds, frames, metric=metric, decode=None, min_pairs=1
        )
        rows = against(
            [f32, int8], [{"x": feed} for feed in feeds], iterations=1, warmup=0, metric=metric
        )
    other = rows[1]
    assert 0 < quantized.value <= 1
    assert other.metric["value"] == pytest.approx(quantized.value, abs=1e-12)
    assert other.max_difference() == pytest.approx(
        (quantized.max_abs_diff, quantized.max_rel_diff), rel=1e-12
    )
    assert 0 < quantized.max_rel_diff < 1  # over the output's range: finite, unlike elementwise
