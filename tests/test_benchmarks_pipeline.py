"""The pipeline section of the benchmark (``python -m benchmarks --sections pipeline``), in its
smoke form: the ONNX stand-in on a tiny synthetic clip. Structure only, no timing asserted."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, available_backends
from benchmarks import pipeline as section
from benchmarks.pipeline import (
    Clip,
    PipelineSettings,
    SourceCounts,
    build_standin,
    pipeline_tables,
    run_pipeline,
)
from benchmarks.runtime import BACKENDS

pytest.importorskip("av")
USABLE = [s.name for s in available_backends() if s.usable and s.name in BACKENDS]
ROW_KEYS = {
    "cameras",
    "mode",
    "max_batch",
    "max_delay_ms",
    "offered_fps",
    "seconds",
    "frames",
    "fps",
    "captured",
    "missed",
    "dropped",
    "backlog_growth",
    "latency_p50_ms",
    "latency_p99_ms",
    "process_cpu_s",
    "decode_cpu_s",
    "busy_cores",
    "decode_share",
    "foreign_cpu_percent",
}


@pytest.fixture(scope="module")
def smoke():
    return run_pipeline(PipelineSettings.smoke(), USABLE, log=lambda line: None)


def test_settings_presets():
    full, quick = PipelineSettings.make(), PipelineSettings.make(quick=True)
    assert full.cameras == (1, 2, 4, 8, 16) and full.delays_ms == (0.0, 5.0, 20.0)
    assert full.model == "detector" and not full.quick
    assert quick.quick and len(quick.cameras) < len(full.cameras)
    assert quick.seconds < full.seconds and quick.compare_rounds < full.compare_rounds
    assert PipelineSettings.make(model="small").model == "small"
    overridden = PipelineSettings.make(quick=True, seconds=0.5, rounds=4)
    assert (overridden.seconds, overridden.compare_rounds) == (0.5, 4)


def test_standin_takes_uint8_frames_of_any_batch_and_size(tmp_path):
    path = build_standin(tmp_path, width=4)
    for backend in USABLE:
        with InferenceRuntime(backend) as runtime:
            model = runtime.load_model(path, "CPU")
            assert [info.name for info in model.inputs] == ["frames"]
            for shape in ((1, 48, 64, 3), (3, 30, 40, 3)):
                frames = np.zeros(shape, np.uint8)
                assert model.run(frames)["scores"].to_numpy().shape == (shape[0], 10)


def test_clip_loops_converts_and_stops():
    clip = Clip.synthetic(64, 48, 5)
    assert (clip.width, clip.height, clip.frames) == (64, 48, 5)
    stop, counts = threading.Event(), SourceCounts.zeros(2)
    camera = clip.camera(stop, fps=None, counts=counts, index=1, size=(32, 24))
    frames = [next(camera) for _ in range(12)]  # past the clip's end: it starts again
    assert all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[0], frames[5])
    assert counts.frames == [0, 12] and counts.missed == [0, 0] and counts.decode_cpu[1] > 0
    stop.set()
    assert next(camera, None) is None


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_smoke_run_structure(smoke):
    settings = PipelineSettings.smoke()
    assert smoke["settings"]["quick"] is True
    assert smoke["clip"]["name"].startswith("synthetic")
    assert set(smoke["backends"]) == set(USABLE)
    for result in smoke["backends"].values():
        grid = result["grid"]
        expected = [(1, "async"), (2, "async"), (2, "batch d=5ms")]
        assert [(row["cameras"], row["mode"]) for row in grid] == expected
        for row in grid:
            assert set(row) == ROW_KEYS
            assert row["offered_fps"] == row["cameras"] * settings.fps
            assert row["frames"] > 0 and row["captured"] > 0
            assert row["max_batch"] == (1 if row["mode"] == "async" else 2)
        assert set(result["summary"]) == {"async", "batch d=5ms"}
        for entry in result["summary"].values():
            assert set(entry) == {
                "most_cameras_zero_drops",
                "capacity_fps",
                "frames_per_cpu_s",
                "at_cameras",
            }
            assert entry["at_cameras"] == 2
        decision = result["decision"]
        assert decision["best_mode"] in result["summary"]
        assert decision["batching_wins"] == (decision["best_mode"] != "async")
        (compare,) = result["compare"]
        assert compare["cameras"] == 2 and compare["ratio"] > 0 and compare["cpu_ratio"] > 0
        assert len(compare["ours_rounds"]) == len(compare["raw_rounds"]) == 1
        assert result["raw"].startswith("raw: ")
    assert [c["section"] for c in smoke["checks"]] == ["pipeline"] * len(USABLE)
    text = pipeline_tables(smoke)
    assert "batching decision:" in text and "ours/raw" in text and "missed" in text


def test_summary_and_decision_follow_the_rows():
    def row(cameras, mode, fps, dropped=0, missed=0, cpu_s=1.0):
        lost = {"buffer_full": dropped} if dropped else {}
        return {
            "cameras": cameras,
            "mode": mode,
            "fps": fps,
            "frames": fps,  # a one-second row
            "process_cpu_s": cpu_s,
            "dropped": lost,
            "missed": missed,
        }

    rows = [
        row(2, "async", 10.0),
        row(4, "async", 19.0, dropped=3),
        row(8, "async", 20.0, dropped=50),
        row(2, "batch", 10.0),
        row(4, "batch", 20.0),
        row(8, "batch", 30.0, missed=5),
    ]
    summary = section._summary(rows)
    assert summary["async"] == {
        "most_cameras_zero_drops": 2,
        "capacity_fps": 20.0,
        "frames_per_cpu_s": 20.0,
        "at_cameras": 8,
    }
    assert summary["batch"]["most_cameras_zero_drops"] == 4
    assert summary["batch"]["capacity_fps"] == 30.0
    decision = section._decision(summary)
    assert decision["best_mode"] == "batch" and decision["batching_wins"]
    assert decision["capacity_gain"] == {"batch": pytest.approx(0.5)}
    # the same, but each batched frame costs twice the CPU time: async stays
    rows[5] = row(8, "batch", 30.0, missed=5, cpu_s=3.0)
    assert section._decision(section._summary(rows))["best_mode"] == "async"
    # more cameras held but far less capacity (an edge case of noise): async stays
    rows[5] = row(8, "batch", 10.0, dropped=9)
    assert section._decision(section._summary(rows))["best_mode"] == "async"
    # as many cameras and a 2% gain: not enough to turn batching on
    rows[4] = row(4, "batch", 20.0, dropped=1)
    rows[5] = row(8, "batch", 20.4, dropped=9)
    assert section._decision(section._summary(rows))["best_mode"] == "async"
    # a backlog growing by more than a frame per camera is falling behind, not held
    rows[1] = row(4, "async", 19.0)
    assert section._summary(rows)["async"]["most_cameras_zero_drops"] == 4
    rows[1]["backlog_growth"] = 5
    assert section._summary(rows)["async"]["most_cameras_zero_drops"] == 2


@pytest.mark.skipif("openvino" not in USABLE, reason="OpenVINO is not usable here")
def test_main_writes_the_section_into_the_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(PipelineSettings, "make", classmethod(lambda cls, **_: cls.smoke()))
    path = tmp_path / "out" / "bench.json"
    argv = ["--sections", "pipeline", "--backends", "openvino", "--json", str(path)]
    assert section.main(argv) == 0
    printed = capsys.readouterr().out
    assert "== pipeline checks ==" in printed and f"wrote {path}" in printed
    document = json.loads(path.read_text())
    assert document["sections"] == ["pipeline"]
    assert set(document["pipeline"]["backends"]) == {"openvino"}
    assert [c["section"] for c in document["checks"]] == ["pipeline"]
    # a run without the section leaves the JSON alone
    assert section.main(["--sections", "frames", "--json", str(tmp_path / "none.json")]) == 0
    assert not (tmp_path / "none.json").exists()
