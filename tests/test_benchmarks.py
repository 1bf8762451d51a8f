"""The benchmark command (``python -m benchmarks``): its models and its JSON."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from atriva_inference import InferenceRuntime, available_backends
from benchmarks.models import build_resnet, build_tiny
from benchmarks.runtime import BACKENDS, main

USABLE = [s.name for s in available_backends() if s.usable and s.name in BACKENDS]


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    return build_resnet(tmp_path_factory.mktemp("bench"))


def test_resnet50_builder_gives_the_resnet50_topology(resnet50):
    model = onnx.load(str(resnet50.path))
    onnx.checker.check_model(model)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Conv") == 53 == resnet50.conv_count
    assert "BatchNormalization" not in ops  # folded away
    assert ops.count("Add") == 16  # one residual add per bottleneck block
    assert ops.count("MaxPool") == ops.count("GlobalAveragePool") == ops.count("Gemm") == 1
    assert 25_000_000 < resnet50.parameters < 26_000_000
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert (graph_input.name, dims) == ("input", [1, 3, 224, 224])
    dims = [d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert (graph_output.name, dims) == ("output", [1, 1000])


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_resnet50_runs_finite_and_backends_agree(resnet50):
    frame = resnet50.make_inputs(seed=0)["input"]
    outputs = {}
    for backend in USABLE:
        with InferenceRuntime(backend) as runtime:
            model = runtime.load_model(resnet50.path, device="CPU")
            assert model.precision == "FP32"
            output = model.run({"input": frame})["output"].to_numpy()
        assert output.shape == (1, 1000)
        assert output.dtype == np.float32
        assert np.isfinite(output).all()
        assert 0.1 < float(output.std()) < 1e3  # activations neither vanished nor exploded
        outputs[backend] = output
    if len(outputs) == 2:
        np.testing.assert_allclose(*outputs.values(), rtol=1e-4, atol=1e-4)


def test_tiny_model(tmp_path):
    tiny = build_tiny(tmp_path)
    onnx.checker.check_model(onnx.load(str(tiny.path)))
    assert tiny.inputs == {"a": (2, 4), "b": (2, 4)}
    assert tiny.outputs == {"out": (2, 4)}


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_quick_run_writes_the_json(tmp_path, capsys):
    path = tmp_path / "out" / "bench.json"
    argv = ["--quick", "--model", "small", "--json", str(path)]
    argv += ["--seconds", "0.05", "--rounds", "2", "--calls", "200"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "== checks ==" in printed
    document = json.loads(path.read_text())
    for key in ("schema", "machine", "versions", "settings", "models", "targets"):
        assert key in document
    for key in ("backends", "checks", "elapsed_s", "skipped"):
        assert key in document
    machine = document["machine"]
    assert {"cpu", "cores", "amx", "amx_flags", "avx512_bf16"} <= set(machine)
    assert {"openvino", "onnxruntime", "numpy", "onnx"} <= set(document["versions"])
    assert document["settings"]["quick"] is True
    assert document["models"]["big"]["name"] == "resnet_small"
    assert set(document["backends"]) == set(USABLE)
    for backend, result in document["backends"].items():
        assert result["precision"] == "FP32"
        latency = result["latency"]
        assert {"raw_best", "ratios", "variants", "calls_per_round"} <= set(latency)
        for name in ("ours_run", "ours_stream"):
            assert latency["variants"][name]["median_ms"] > 0
            assert latency["variants"][name]["p90_ms"] >= latency["variants"][name]["median_ms"]
            assert latency["ratios"][name]["paired"] > 0
            assert "paired" in result["overhead"]["difference_us"][name]
        assert result["throughput"]["variants"]["ours_queue"]["median_fps"] > 0
        assert result["throughput"]["ratio"]["paired"] > 0
        assert {"rss_before_kib", "rss_after_kib", "growth_mib"} <= set(result["memory"]["stream"])
        # Structural, not timed: the stream binds the frame itself. An "error" here means the
        # probe lost track of the stream's internals after a refactor.
        assert "error" not in result["copies"], result["copies"]
        assert result["copies"]["input_copies_per_frame"] == 0
        names = [c["name"] for c in document["checks"] if c["backend"] == backend]
        assert len(names) == 7
    assert all(c["result"] in ("PASS", "MISS") for c in document["checks"])
    if len(USABLE) == 2:
        assert document["cross_backend_max_abs_diff"] < 1e-3


def test_unknown_backend_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--backends", "tensorflow"])
    assert "--backends" in capsys.readouterr().err
