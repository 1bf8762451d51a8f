"""The quantized section of the benchmark (``python -m benchmarks --sections quantized``), in
its smallest form: the rows, their keys and finite ratios; no timing asserted."""

from __future__ import annotations

import math

import pytest

from atriva_inference import available_backends
from benchmarks import runtime
from benchmarks.quantized import (
    BUILDS,
    SECTION,
    QuantizedSettings,
    main,
    quantized_tables,
    run_quantized,
)

pytest.importorskip("nncf", reason="the NNCF build needs the [quantize] extra")
pytest.importorskip("onnxruntime.quantization")

USABLE = [s.name for s in available_backends() if s.usable and s.name in runtime.BACKENDS]
ROW_KEYS = {
    "model",
    "backend",
    "build",
    "shape",
    "raw_median_ms",
    "ours_median_ms",
    "ours_vs_raw",
    "raw_dynamic_median_ms",
    "rounds_median_ms",
    "precision",
    "quantization",
    "int8_fraction",
    "max_abs_diff_ours_vs_raw",
    "foreign_cpu_percent",
}
INT8_KEYS = {"speedup_raw", "speedup_ours", "cosine_vs_f32", "top1_agrees_with_f32"}


@pytest.fixture(scope="module")
def smoke(int8_zoo):
    """The classifier only, on the session's INT8 builds (tests/conftest.py: built once,
    shared with tests/test_precision.py and the command-line tests)."""
    return run_quantized(
        QuantizedSettings.smoke(), USABLE, int8_zoo.directory, models=["classifier"]
    )


def test_section_is_registered():
    assert SECTION in runtime.SECTIONS
    assert main(["--sections", "runtime"]) == 0  # not named: runs nothing, writes nothing


def test_settings_presets():
    full, quick = QuantizedSettings.make(), QuantizedSettings.make(quick=True)
    assert quick.quick and quick.seconds < full.seconds and quick.rounds < full.rounds
    assert full.centerface_size == (480, 640)
    assert QuantizedSettings.make(seconds=1.5, rounds=4).seconds == 1.5


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_smoke_run_rows(smoke):
    rows = smoke["rows"]
    expected = {(b, build) for build, backends in BUILDS.items() for b in backends if b in USABLE}
    assert {(row["backend"], row["build"]) for row in rows} == expected
    for row in rows:
        assert set(row) >= ROW_KEYS, row["build"]
        assert row["model"] == "classifier" and row["shape"] == {"x": [1, 3, 224, 224]}
        assert row["raw_median_ms"] > 0 and row["ours_median_ms"] > 0
        assert math.isfinite(row["ours_vs_raw"]) and row["ours_vs_raw"] > 0
        assert len(row["rounds_median_ms"]["raw"]) == QuantizedSettings.smoke().rounds
        assert row["max_abs_diff_ours_vs_raw"] < 1e-3  # the same file, the same answers
        dynamic = row["raw_dynamic_median_ms"]  # raw's dynamic compile: OpenVINO only
        assert (dynamic is not None and dynamic > 0) == (row["backend"] == "openvino")
        if row["build"] == "f32":
            assert row["precision"] == "FP32" and row["quantization"] is None
            assert not INT8_KEYS & set(row)
        else:
            assert row["precision"] == "INT8" and 0 < row["int8_fraction"] <= 1
            assert set(row) >= INT8_KEYS
            assert math.isfinite(row["speedup_raw"]) and math.isfinite(row["speedup_ours"])
            assert row["cosine_vs_f32"] > 0.99 and row["top1_agrees_with_f32"]


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_table_has_a_line_per_row(smoke):
    text = quantized_tables(smoke)
    lines = [line.split() for line in text.splitlines() if line.split()[:1] == ["classifier"]]
    assert len(lines) == len(smoke["rows"])
    assert "ours/raw" in text and "INT8 speed-up raw" in text
