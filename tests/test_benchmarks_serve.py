"""The serve section of the benchmark (``python -m benchmarks --sections serve``), in its
smallest form: the structure of what it measures and prints, no timing asserted."""

from __future__ import annotations

import pytest

from atriva_inference import available_backends
from benchmarks import runtime
from benchmarks.serve import (
    CLIENTS,
    PROTOCOLS,
    SECTION,
    ServeSettings,
    checks_for,
    main,
    run_serve,
    serve_tables,
)

pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
pytest.importorskip("tritonclient.grpc", reason="the benchmark drives it with tritonclient")

USABLE = [s.name for s in available_backends() if s.usable and s.name in runtime.BACKENDS]


@pytest.fixture(scope="module")
def smoke():
    return run_serve(ServeSettings.smoke(), USABLE[0])


def test_section_is_registered():
    assert SECTION in runtime.SECTIONS
    assert main(["--sections", "runtime"]) == 0  # not named: runs nothing, writes nothing


def test_settings_presets():
    full, quick = ServeSettings.make(), ServeSettings.make(quick=True)
    assert full.image == 224 and full.ray and not full.quick
    assert quick.quick and quick.rounds < full.rounds and quick.seconds < full.seconds
    assert (ServeSettings.make(quick=True, seconds=0.2, rounds=4).seconds, 4) == (0.2, 4)
    assert not ServeSettings.smoke().ray


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_smoke_run_structure(smoke):
    settings = ServeSettings.smoke()
    assert set(smoke["overhead"]) == {f"{t}_{c}" for t in ("small", "image") for c in (1, CLIENTS)}
    for key, cell in smoke["overhead"].items():
        assert cell["clients"] == int(key.rsplit("_", 1)[1])
        assert set(cell["variants"]) == {"direct", *PROTOCOLS}
        for name, entry in cell["variants"].items():
            assert entry["agrees_with_direct"], (key, name)
            assert entry["median_ms"] > 0 and entry["requests"] >= settings.rounds
            assert len(entry["rounds_median_ms"]) == settings.rounds
            assert ("overhead_ms" in entry) == (name != "direct")
    assert smoke["overhead"]["image_1"]["input_bytes"] == 3 * 32 * 32 * 4
    throughput = smoke["throughput"]
    assert set(throughput["per_s"]) == {"queue", "http_binary", "grpc", "queue_batch"}
    assert all(rate > 0 for rate in throughput["per_s"].values())
    assert set(throughput["ratio_to_queue"]) == {"http_binary", "grpc", "queue_batch"}
    assert smoke["server_exit_status"] == 0  # SIGTERM: drained and exited cleanly
    assert "ray" not in smoke


@pytest.mark.skipif(not USABLE, reason="no backend usable here")
def test_tables_and_checks(smoke):
    text = serve_tables(smoke)
    assert "per-request overhead over model.run" in text
    for header in ("tensor", "protocol", "clients", "overhead ms", "x direct", "same answer"):
        assert header in text
    assert text.count("http_json") == 4  # small and image, 1 and 8 clients
    assert "x queue" in text and "queue_batch" in text
    checks = checks_for(smoke)
    assert {c["section"] for c in checks} == {"serve"}
    assert {c["result"] for c in checks} <= {"PASS", "MISS"}
    assert sum("overhead" in c["name"] for c in checks) == 4
    assert runtime.checks_table(checks).count("serve:") == len(checks)
