"""The profiling page's picture (``python -m benchmarks.trace_picture``): a real profiled run,
the trace file the runtime writes, and its rendering."""

from __future__ import annotations

import json

import pytest

from atriva_inference import available_backends
from benchmarks import trace_picture

Image = pytest.importorskip("PIL.Image", reason="the picture is drawn with Pillow")

USABLE = [s.name for s in available_backends() if s.usable and s.name != "tensorrt"]


@pytest.mark.parametrize("backend", USABLE)
def test_the_command_writes_the_trace_and_a_picture_of_it(backend, conv_net, tmp_path, capsys):
    path = conv_net.path_for(backend)
    argv = ["--model", str(path), "--backend", backend, "--frames", "6", "--out", str(tmp_path)]
    assert trace_picture.main(argv) == 0
    assert "picture:" in capsys.readouterr().out

    trace = json.loads((tmp_path / trace_picture.TRACE_NAME).read_text())
    events = trace["traceEvents"]
    runs = [e for e in events if e.get("pid") == 1 and e.get("ph") == "X"]
    layers = [e for e in events if e.get("pid") == 2 and e.get("ph") == "X"]
    # 2 cameras x 6 frames, each camera's stream its own track; warm-up runs left out.
    assert len(runs) == 12
    assert {e["tid"] for e in runs} == {0, 1}
    assert all(e["name"] == "run" and e["dur"] > 0 for e in runs)
    # The layers of the conv net (two convolutions at least), with their types.
    types = {e["args"]["type"] for e in layers}
    assert sum("Conv" in t for t in types) >= 1
    assert sum(e["dur"] for e in layers) > 0

    with Image.open(tmp_path / trace_picture.PICTURE_NAME) as picture:
        assert picture.format == "PNG"
        assert picture.width == 1600 and picture.height > 250
        pixels = picture.convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 20)
    counts = {colour: count for count, colour in colours}
    # The run bars are drawn: a sizeable area in the runs' colour, and more than text's grey.
    assert counts.get(trace_picture.RUN_COLOUR, 0) > 5_000
    assert len(counts) > 20


def test_render_counts_what_the_trace_holds(tmp_path):
    """A hand-written trace in the runtime's format: the summary counts its events."""
    events = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "openvino CPU FP32: runs"}},
        {"name": "process_name", "ph": "M", "pid": 2, "args": {"name": "layers"}},
    ]
    for index in range(4):
        events.append(
            {"name": "run", "cat": "run", "ph": "X", "pid": 1, "tid": index % 2,
             "ts": index * 1000.0, "dur": 900.0}
        )  # fmt: skip
    for index, (kind, cat) in enumerate([("Reorder", "transfer"), ("Convolution", "layer")]):
        events.append(
            {"name": f"n{index}", "cat": cat, "ph": "X", "pid": 2, "tid": 0,
             "ts": index * 300.0, "dur": 300.0, "args": {"type": kind}}
        )  # fmt: skip
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"traceEvents": events}))
    summary = trace_picture.render(trace, tmp_path / "out.png", width=800)
    assert summary == trace_picture.TraceSummary(
        runs=4, tracks=2, layers=2, transfer_layers=1, span_ms=3.9, mean_run_ms=0.6
    )
    with Image.open(tmp_path / "out.png") as picture:
        assert picture.size[0] == 800


def test_a_bad_shape_is_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        trace_picture.main(["--shape", "1x3xA", "--out", "/nonexistent"])
    assert exit_info.value.code == 2
    assert "expected a shape like 1x3x224x224, got '1x3xA'" in capsys.readouterr().err
