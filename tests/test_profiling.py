"""One profile schema on every backend: aggregates always, layers with profiling=True."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atriva_inference import InvalidInputError, LayerRecord, Profile
from atriva_inference.profiling import CallTimes

KEYS = {
    "backend": str,
    "device": str,
    "precision": str,
    "runs": int,
    "wall_time_ms": float,
    "device_time_ms": float,
    "host_overhead_ms": float,
    "transfer_ms": float,
    "compile_ms": float,
    "layers": list,
}


def run_times(model, zoo_model, rng, count):
    for _ in range(count):
        model.run(zoo_model.make_inputs(rng))


def test_aggregates_without_layer_detail(runtime, backend, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(backend))
    run_times(model, conv_net, rng, 3)
    data = model.get_profiling().to_dict()
    for key, kind in KEYS.items():
        assert isinstance(data[key], kind), key
    assert data["backend"] == backend and data["runs"] == 3 and data["layers"] == []
    assert data["wall_time_ms"] >= data["device_time_ms"] > 0
    assert data["compile_ms"] > 0
    json.dumps(data)


def test_layers_with_profiling(runtime, backend, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(backend), profiling=True)
    run_times(model, conv_net, rng, 4)
    profile = model.get_profiling()
    layers = profile.to_dict()["layers"]
    assert layers, "profiling=True recorded no layer"
    times = [layer["time_ms"] for layer in layers]
    assert times == sorted(times, reverse=True)
    assert {"name", "type", "implementation", "time_ms", "count"} <= set(layers[0])
    convolutions = [layer for layer in layers if layer["type"] in ("Conv", "Convolution")]
    assert len(convolutions) == 2 and all(layer["count"] == 4 for layer in convolutions)
    table = str(profile)
    assert convolutions[0]["name"][:40] in table and "share" in table


def test_reset_profiling(runtime, backend, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(backend), profiling=True)
    run_times(model, conv_net, rng, 3)
    model.reset_profiling()
    run_times(model, conv_net, rng, 2)
    profile = model.get_profiling()
    assert profile.runs == 2
    assert max(layer.count for layer in profile.layers) == 2
    assert profile.compile_ms > 0  # a property of the load, kept


def test_counts_every_path(runtime, backend, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(backend))
    model.run(conv_net.make_inputs(rng))
    model.create_stream().run(conv_net.make_inputs(rng))
    request = model.create_async_request()
    request.start(conv_net.make_inputs(rng))
    request.wait(timeout=30)
    assert model.get_profiling().runs == 3


def test_chrome_trace(runtime, backend, conv_net, rng, tmp_path):
    model = runtime.load_model(conv_net.path_for(backend), profiling=True)
    run_times(model, conv_net, rng, 3)
    path = tmp_path / "trace.json"
    model.get_profiling().to_chrome_trace(path)
    events = json.loads(path.read_text())["traceEvents"]
    runs = [e for e in events if e.get("cat") == "run"]
    assert len(runs) == 3 and all(e["ph"] == "X" and e["dur"] > 0 for e in runs)
    assert [e["ts"] for e in runs] == sorted(e["ts"] for e in runs)
    assert any(e.get("cat") in ("layer", "transfer") for e in events)


def test_chrome_trace_leaves_out_layers_with_no_time(tmp_path):
    """0-length events at the next layer's timestamp break viewers' stacks (speedscope)."""
    profile = Profile(
        backend="b",
        device="CPU",
        precision="FP32",
        layers=[
            LayerRecord("input", "Parameter", time_ms=0.0, count=2),
            LayerRecord("conv", "Convolution", time_ms=2.0, count=2),
            LayerRecord("fused", "Multiply", time_ms=0.0, count=2),
            LayerRecord("fc", "FullyConnected", time_ms=1.0, count=2),
        ],
        layer_detail=True,
    )
    path = tmp_path / "trace.json"
    profile.to_chrome_trace(path)
    layers = [e for e in json.loads(path.read_text())["traceEvents"] if e.get("cat") == "layer"]
    assert [(e["name"], e["ts"], e["dur"]) for e in layers] == [
        ("conv", 0.0, 1000.0),
        ("fc", 1000.0, 500.0),
    ]
    assert len(profile.to_dict()["layers"]) == 4  # still reported, only not drawn


def test_transfer_time_sums_transfer_layers():
    profile = Profile(
        backend="b",
        device="CPU",
        precision="FP32",
        layers=[
            LayerRecord("conv", "Convolution", time_ms=2.0, count=1),
            LayerRecord("to_nchw", "Reorder", time_ms=0.5, count=1),
            LayerRecord("cast", "Convert", time_ms=0.25, count=1),
        ],
        layer_detail=True,
    )
    assert profile.transfer_ms == pytest.approx(0.75)
    assert [layer["name"] for layer in profile.to_dict()["layers"]] == ["conv", "to_nchw", "cast"]
    assert profile.host_overhead_ms == 0.0  # no device time measured: no overhead claimed
    assert np.isclose(
        Profile("b", "CPU", "FP32", wall_time_ms=3, device_time_ms=2).host_overhead_ms, 1
    )


def test_in_graph_conversion_is_tagged_as_transfer(runtime, backend, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(backend), profiling=True)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for _ in range(3):
        model.run(runtime.tensor_from_numpy(frame, layout="HWC"))
    profile = model.get_profiling()
    added = [layer for layer in profile.layers if layer.preprocessing]
    assert added, [(layer.name, layer.type) for layer in profile.layers]
    assert all(layer.count == 3 and layer.transfer for layer in added)
    assert profile.transfer_ms >= sum(layer.time_ms for layer in added) > 0
    assert any(layer["preprocessing"] for layer in profile.to_dict()["layers"])


def test_call_times_counts_stops_and_reports_progress():
    calls: list[int] = []
    times = CallTimes.measure(lambda: calls.append(1), iterations=70_000)  # past the prealloc
    assert len(calls) == len(times.latencies_ns) == 70_000
    assert all(latency >= 0 for latency in times.latencies_ns)
    assert times.wall_ns >= sum(times.latencies_ns)
    assert CallTimes.measure(lambda: None, iterations=0).latencies_ns == []
    timed = CallTimes.measure(lambda: None, seconds=0.02)
    assert timed.wall_ns >= 0.02e9 and len(timed.latencies_ns) >= 1
    reports: list[tuple[int, float]] = []
    CallTimes.measure(lambda: None, iterations=5, progress=lambda *a: reports.append(a))
    assert reports[-1][0] == 5
    with pytest.raises(InvalidInputError, match="iterations or seconds"):
        CallTimes.measure(lambda: None)


def test_call_times_median():
    assert CallTimes([3_000_000, 1_000_000, 2_000_000], 6_000_000).median_ms == 2.0
    assert CallTimes([1_000_000, 2_000_000], 3_000_000).median_ms == 1.5
    assert CallTimes([], 0).median_ms == 0.0
