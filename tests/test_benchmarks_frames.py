"""The frames section of the benchmark (``python -m benchmarks --sections frames``)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from atriva_inference import InferenceRuntime, available_backends
from benchmarks.frames import FrameSettings, build_frames_model, main, run_frames, to_nchw_float
from benchmarks.runtime import BACKENDS

USABLE = [s.name for s in available_backends() if s.usable and s.name in BACKENDS]
VARIANTS = {"ours_ingraph", "ours_numpy", "raw_numpy", "numpy_convert"}


@pytest.fixture(scope="module")
def smoke():
    """The section in its quickest form: a tiny ResNet on small frames."""
    return run_frames(FrameSettings.smoke(), USABLE)


def test_frames_model_takes_any_height_and_width(tmp_path):
    built = build_frames_model(tmp_path, width=4, classes=10)
    model = onnx.load(str(built.path))
    onnx.checker.check_model(model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [1, 3, "height", "width"]
    ops = [node.op_type for node in model.graph.node]
    assert "GlobalAveragePool" in ops and "BatchNormalization" not in ops
    for backend in USABLE:
        with InferenceRuntime(backend) as runtime:
            loaded = runtime.load_model(built.path, device="CPU")
            for height, width in ((32, 48), (40, 24)):
                x = np.zeros((1, 3, height, width), np.float32)
                assert loaded.run(x)["output"].to_numpy().shape == (1, 10)


def test_numpy_conversion_is_float_nchw_and_contiguous():
    frame = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    x = to_nchw_float(frame)
    assert x.shape == (1, 3, 4, 5) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x[0, 2], frame[:, :, 2])


def test_settings_presets():
    full, quick, small = (
        FrameSettings.make(),
        FrameSettings.make(quick=True),
        FrameSettings.make(model="small"),
    )
    assert full.resolutions == ((1080, 1920), (720, 1280)) and not full.quick
    assert quick.quick and quick.rounds < full.rounds and quick.seconds < full.seconds
    assert max(h for h, _ in small.resolutions) <= 128
    overridden = FrameSettings.make(quick=True, seconds=0.5, rounds=4)
    assert (overridden.seconds, overridden.rounds) == (0.5, 4)


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_smoke_run_structure(smoke):
    settings = FrameSettings.smoke()
    assert smoke["settings"]["quick"] is True
    assert smoke["model"]["input"] == ["float32", 1, 3, "height", "width"]
    assert set(smoke["backends"]) == set(USABLE)
    keys = {f"{h}x{w}" for h, w in settings.resolutions}
    for backend, result in smoke["backends"].items():
        assert result["precision"] == "FP32"
        assert set(result["camera"]) == keys
        for camera in result["camera"].values():
            assert set(camera["variants"]) == VARIANTS
            for summary in camera["variants"].values():
                assert summary["median_ms"] > 0
                assert len(summary["rounds_median_ms"]) == settings.rounds
            for ratio in camera["ratios"].values():
                assert ratio["paired"] > 0 and ratio["median"] > 0
            assert camera["frame"]["dtype"] == "uint8" and camera["frame"]["layout"] == "HWC"
        signatures = [record["signature"] for record in result["camera_profile_shapes"]]
        assert any("converted in graph" in text for text in signatures)
        shapes = result["shapes"]
        expected_modes = {"dynamic", "static"} if backend == "openvino" else {"dynamic"}
        assert set(shapes["modes"]) == expected_modes
        assert ("static_vs_dynamic" in shapes) == (backend == "openvino")
        for mode, entry in shapes["modes"].items():
            assert [row["shape"][2:] for row in entry["shapes"]] == [
                list(shape) for shape in settings.new_shapes
            ]
            for row in entry["shapes"]:
                assert row["first_was_miss"] and row["second_run_hit"]
                assert row["first_ms"] > 0 and row["cached_ms"] > 0
            recorded = {tuple(record["shapes"][0]) for record in entry["profile_shapes"]}
            assert {tuple(row["shape"]) for row in entry["shapes"]} <= recorded
            for record in entry["profile_shapes"]:
                assert {"compile_ms", "first_call_ms", "specialized", "signature"} <= set(record)
            specialized = [
                record["specialized"]
                for record in entry["profile_shapes"]
                if tuple(record["shapes"][0][2:]) in set(settings.new_shapes)
            ]
            assert all(specialized) if mode == "static" else not any(specialized)
    checks = smoke["checks"]
    assert checks and all(c["section"] == "frames" for c in checks)
    assert all(c["result"] in ("PASS", "MISS") for c in checks)
    structural = [c for c in checks if "new shapes" in c["name"]]
    assert structural and all(c["result"] == "PASS" for c in structural)


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_in_graph_and_numpy_outputs_agree(smoke):
    for result in smoke["backends"].values():
        for camera in result["camera"].values():
            agreement = camera["agreement"]
            assert agreement["output_max_abs"] > 0
            assert agreement["relative_ingraph_vs_numpy"] <= 1e-5
            assert agreement["max_abs_diff_ingraph_vs_raw"] <= 1e-5 * agreement["output_max_abs"]
    agree = [c for c in smoke["checks"] if "in-graph - numpy" in c["name"]]
    assert agree and all(c["result"] == "PASS" for c in agree)


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_main_frames_section_writes_the_json(tmp_path, capsys):
    path = tmp_path / "out" / "bench.json"
    assert main(["--sections", "frames", "--model", "small", "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "== frames checks ==" in printed and "1. camera frames" in printed
    document = json.loads(path.read_text())
    for key in ("schema", "command", "machine", "versions", "checks", "frames", "sections"):
        assert key in document
    assert document["sections"] == ["frames"]
    frames = document["frames"]
    for key in ("settings", "model", "backends", "skipped", "elapsed_s"):
        assert key in frames
    assert set(frames["backends"]) == set(USABLE)
    assert document["checks"] and all(c["section"] == "frames" for c in document["checks"])


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--sections", "video"])
    assert "--sections" in capsys.readouterr().err
