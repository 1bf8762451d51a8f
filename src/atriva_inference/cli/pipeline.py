"""``atriva-infer pipeline``: run MODEL on cameras and files, watch them, keep a summary.

::

    atriva-infer pipeline detector.pb street.mp4 rtsp://10.0.0.7/live --seconds 60
    atriva-infer pipeline detector.pb bikes.mp4 --output annotated.mp4 --json summary.json
    atriva-infer pipeline model.xml door=rtsp://cam1/live yard=rtsp://cam2/live --fps 5

Each SOURCE is a camera (``cam0``, ``cam1``, ... or ``NAME=SOURCE``) of one
:class:`~atriva_inference.pipeline.Pipeline`. While it runs, a table per camera (state,
fps, drops by cause, latency, detections in the last frame) is redrawn on stderr when it
is a terminal; at the end the same table is printed on stdout, and ``--json`` writes it as
JSON. It ends after ``--seconds``, when every camera has ended, or on Ctrl-C.

**Detections.** ``--decoder auto`` (the default) reads boxes from the model's outputs when
their names say how: ``detection_boxes``, ``detection_scores`` and ``detection_classes``
(the TF Object Detection API's detectors, COCO labels) give ``tf-od``; anything else gives
no boxes. ``--decoder tf-od|centerface|none`` chooses explicitly (``centerface``: the
face detector's four heat-map outputs). Boxes scoring at most ``--score`` are left out.

**Annotated video.** ``--output FILE`` writes the frames the model saw, boxes drawn, with
PyAV (H.264 where FFmpeg has it, else MPEG-4): one camera writes FILE, several write
``FILE-<camera>.<suffix>`` each. Timestamps follow the source's (its PTS, else capture
time), so a file read faster than real time still plays at its own speed.

Errors before the pipeline starts (arguments, the model, a source's form) print one line
and exit 2; a camera that failed is reported on one line each and the exit status is 2.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..backends import choose_backend
from ..errors import InvalidInputError
from ..runtime import InferenceRuntime
from ..vision.centerface import OUTPUT_NAMES as CENTERFACE_OUTPUT_NAMES
from ..vision.tensorflow import OUTPUT_NAMES as TF_OUTPUT_NAMES
from .options import (
    add_model_options,
    check_writable,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    write_json,
)

__all__ = ["DECODERS", "add_command", "run"]

#: ``--decoder`` choices (``auto`` picks from the output names, see the module docstring).
DECODERS = ("auto", "tf-od", "centerface", "none")
POLICIES = ("auto", "wait", "latest", "drop_newest")
#: The outputs each decoder reads (TF frozen graphs add ``:0`` to the names).
DECODER_OUTPUTS = {"tf-od": TF_OUTPUT_NAMES, "centerface": CENTERFACE_OUTPUT_NAMES}
DEFAULT_SCORE = 0.5
#: How often the live table is redrawn (per second).
REFRESH_PER_SECOND = 2
#: A camera's name in ``NAME=SOURCE``: a word, never a URL's scheme or a path.
_NAMED = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.+)$")
_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


def add_command(commands: Any) -> None:
    """Register the ``pipeline`` subcommand on the ``atriva-infer`` parser."""
    parser = commands.add_parser(
        "pipeline",
        help="run MODEL on cameras/files, with a live status table per camera",
        description="Run MODEL on every SOURCE (a video file, an rtsp:// / http(s):// / "
        "tcp:// URL; NAME=SOURCE names the camera) through one pipeline: a live table per "
        "camera on stderr when it is a terminal (state, fps, drops by cause, latency, "
        "detections), the final table on stdout, optionally a JSON summary and an annotated "
        "video.",
        epilog="--decoder auto draws boxes for models with TF Object Detection API outputs "
        "(detection_boxes, detection_scores, detection_classes). Errors print one line and "
        "exit with status 2; so does a camera that failed.",
    )
    add_model_options(parser)
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a video file or a stream URL; NAME=SOURCE names the camera (default cam0, ...)",
    )
    parser.add_argument(
        "--seconds",
        "-t",
        type=positive_float,
        metavar="S",
        help="stop after S seconds (default: when every camera has ended, or Ctrl-C)",
    )
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="auto",
        help="what a full buffer does: wait (never drop), latest (drop the oldest), "
        "drop_newest; auto: wait for files, latest for live URLs (default: auto)",
    )
    parser.add_argument(
        "--fps", type=positive_float, metavar="F", help="at most F frames per second per camera"
    )
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=1,
        metavar="N",
        help="batch up to N cameras' frames in one inference (default: 1, per-camera async; "
        "see docs/pipeline-benchmark.md)",
    )
    parser.add_argument(
        "--max-delay-ms",
        type=non_negative_float,
        metavar="MS",
        help="with --max-batch: wait at most MS after a batch's first frame",
    )
    parser.add_argument(
        "--size", type=_size, metavar="WxH", help="scale frames to WxH for the model"
    )
    parser.add_argument("--loop", action="store_true", help="start files again at their end")
    parser.add_argument(
        "--decoder",
        choices=DECODERS,
        default="auto",
        help="how outputs become boxes (default: auto, from the output names)",
    )
    parser.add_argument(
        "--score",
        type=fraction,
        default=DEFAULT_SCORE,
        metavar="S",
        help=f"keep detections scoring above S (default: {DEFAULT_SCORE})",
    )
    parser.add_argument("--json", metavar="FILE", help="write the summary as JSON to FILE")
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="write the frames with their boxes as a video (FILE-<camera>.<suffix> each "
        "when there are several cameras)",
    )


def _size(text: str) -> tuple[int, int]:
    match = _SIZE.match(text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x360, got {text!r}")
    return int(match[1]), int(match[2])


# -- sources and decoders ------------------------------------------------------------------
def camera_sources(sources: list[str]) -> dict[str, str]:
    """``{camera: source}``: ``NAME=SOURCE`` keeps its name, the others are ``cam<index>``."""
    cameras: dict[str, str] = {}
    for index, text in enumerate(sources):
        match = _NAMED.match(text)
        name, source = (match[1], match[2]) if match else (f"cam{index}", text)
        if name in cameras:
            raise InvalidInputError(f"SOURCE {text!r}: camera name '{name}' given twice")
        cameras[name] = source
    return cameras


def _bare(name: str) -> str:
    """An output's name without the ``:0`` port suffix of TF graphs."""
    return re.sub(r":\d+$", "", name)


def choose_decoder(requested: str, output_names: list[str]) -> str | None:
    """The decoder ``--decoder`` means for a model with these outputs (``None``: no boxes).

    ``auto``: ``tf-od`` when the outputs include the TF Object Detection API's four
    (``detection_boxes``, ``detection_scores``, ``detection_classes``, ``num_detections``,
    with or without ``:0``), ``centerface`` when they are CenterFace's maps (``537`` to
    ``540``), else none. An explicit decoder whose outputs are missing is an error.
    """
    bare = {_bare(name) for name in output_names}
    found = [name for name, needs in DECODER_OUTPUTS.items() if bare.issuperset(needs)]
    if requested == "auto":
        return found[0] if found else None
    if requested == "none":
        return None
    if requested not in found:
        raise InvalidInputError(
            f"--decoder {requested}: expected outputs {', '.join(DECODER_OUTPUTS[requested])}, "
            f"the model has {', '.join(output_names)}"
        )
    return requested


def _processing(decoder: str | None, score: float) -> dict[str, Any]:
    """The pipeline's ``preprocess``/``postprocess`` for ``decoder``: ``postprocess(outputs,
    frame)`` returns the frame's ``Detections`` scoring above ``score``."""
    if decoder is None:
        return {}
    from .. import vision

    if decoder == "tf-od":

        def tf_od(outputs: Any, frame: Any) -> Any:
            return vision.decode_tf_detections(outputs, frame.shape, threshold=score)

        return {"postprocess": tf_od}

    def pad(frame: Any) -> Any:
        return vision.pad_to_multiple(frame)[0]  # CenterFace takes multiples of 32

    def centerface(outputs: Any, frame: Any) -> Any:
        return vision.decode_centerface(outputs, frame.shape, threshold=score)

    return {"preprocess": pad, "postprocess": centerface}


# -- the annotated video -------------------------------------------------------------------
def output_paths(output: str, cameras: list[str]) -> dict[str, Path]:
    """Where each camera's annotated video goes: ``output`` itself for one camera, else
    ``<stem>-<camera><suffix>`` beside it."""
    path = Path(output)
    if len(cameras) == 1:
        return {cameras[0]: path}
    return {name: path.with_name(f"{path.stem}-{name}{path.suffix}") for name in cameras}


class VideoWriter:
    """One annotated video, opened at the first frame (its size), timed by the frames' own
    clock: the source's PTS where it has one, else the capture time, shifted forward when
    it steps back (a file looping, a stream reconnecting)."""

    TIME_BASE = Fraction(1, 1000)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None
        self._offset = 0.0
        self._last: float | None = None
        self._step = 0.04
        self._first_time: float | None = None

    def write(self, image: Any, pts: float | None, captured: float) -> None:
        from ..pipeline.frames import require_av

        av = require_av()
        if self._container is None:
            self._open(av, image.shape[1], image.shape[0])
        if self._first_time is None:
            self._first_time = captured
        clock = pts if pts is not None else captured - self._first_time
        if self._last is not None and clock + self._offset <= self._last:
            self._offset = self._last + self._step - clock
        value = clock + self._offset
        if self._last is not None:
            self._step = max(value - self._last, 0.001)
        self._last = value
        height, width = self._stream.height, self._stream.width
        frame = av.VideoFrame.from_ndarray(image[:height, :width], format="rgb24")
        frame.pts = round(value / self.TIME_BASE)
        frame.time_base = self.TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _open(self, av: Any, width: int, height: int) -> None:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        container = av.open(str(self.path), "w")
        try:
            stream = container.add_stream(codec, rate=25)
            # yuv420p halves the chroma planes: even sizes only (one column/row cut at most)
            stream.width, stream.height = width - width % 2, height - height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = self.TIME_BASE
            stream.codec_context.time_base = self.TIME_BASE
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream

    def close(self) -> None:
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._container = None


# -- the status table ----------------------------------------------------------------------
@dataclass
class _Tally:
    """What the consumer saw of one camera's results."""

    last: dict[str, int] = field(default_factory=dict)  # labels in the latest frame
    seen: Counter[str] = field(default_factory=Counter)  # detections summed over frames
    frames_with: int = 0  # results with at least one detection


def _detections_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {count}" for label, count in counts.items()) or "-"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _drops_text(dropped: dict[str, int]) -> str:
    return ", ".join(f"{cause} {count}" for cause, count in sorted(dropped.items())) or "0"


def status_table(
    stats: dict[str, Any],
    tallies: dict[str, _Tally] | None,
    title: str | None = None,
    seconds: float | None = None,
) -> Any:
    """A ``rich`` table of ``pipe.stats()`` (and the detections seen), a row per camera.
    ``fps`` is the pipeline's recent rate, or the average over ``seconds`` when given (the
    final table: a recent rate says little once the cameras have ended)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("camera", "state", "captured", "delivered", "fps", "dropped", "in flight"):
        table.add_column(header, justify="left" if header in ("camera", "state") else "right")
    for header in ("p50 ms", "p99 ms", "reconnects"):
        table.add_column(header, justify="right")
    if tallies is not None:
        table.add_column("detections (last frame)")
    for name, snapshot in stats.items():
        state = snapshot.state
        if snapshot.error is not None and state == "failed":
            state = "[red]failed[/red]"
        row = [
            name,
            state,
            str(snapshot.captured),
            str(snapshot.delivered),
            _number(snapshot.fps if seconds is None else snapshot.delivered / seconds),
            _drops_text(snapshot.dropped),
            str(snapshot.in_flight),
            _number(snapshot.latency_p50_ms),
            _number(snapshot.latency_p99_ms),
            str(snapshot.reconnects),
        ]
        if tallies is not None:
            row.append(_detections_text(tallies[name].last))
        table.add_row(*row)
    return table


class _LiveTable:
    """The table redrawn from ``pipe.stats()`` by rich's own refresh thread (so it moves
    while no result arrives), on stderr, only when stderr is a terminal."""

    def __init__(self, pipe: Any, tallies: dict[str, _Tally] | None) -> None:
        self._pipe = pipe
        self._tallies = tallies
        self._live: Any = None

    def __rich__(self) -> Any:
        return status_table(self._pipe.stats(), self._tallies, "atriva-infer pipeline (live)")

    def __enter__(self) -> _LiveTable:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self,
                console=Console(stderr=True),
                refresh_per_second=REFRESH_PER_SECOND,
                transient=True,
            )
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()


# -- the summary ---------------------------------------------------------------------------
def _stats_dict(snapshot: Any) -> dict[str, Any]:
    return {
        "state": snapshot.state,
        "captured": snapshot.captured,
        "inferred": snapshot.inferred,
        "delivered": snapshot.delivered,
        "dropped": dict(snapshot.dropped),
        "in_flight": snapshot.in_flight,
        "reconnects": snapshot.reconnects,
        "fps": snapshot.fps,
        "latency_p50_ms": snapshot.latency_p50_ms,
        "latency_p99_ms": snapshot.latency_p99_ms,
        "error": None if snapshot.error is None else str(snapshot.error),
    }


def summary(
    args: argparse.Namespace,
    model: Any,
    cameras: dict[str, str],
    decoder: str | None,
    stats: dict[str, Any],
    tallies: dict[str, _Tally] | None,
    elapsed: float,
    outputs: dict[str, VideoWriter],
) -> dict[str, Any]:
    """The JSON summary: the run's settings, then per camera its stats and detections."""
    per_camera: dict[str, Any] = {}
    for name, snapshot in stats.items():
        entry = {"source": cameras[name], **_stats_dict(snapshot)}
        entry["average_fps"] = snapshot.delivered / elapsed if elapsed > 0 else 0.0
        if tallies is not None:
            tally = tallies[name]
            entry["detections"] = dict(tally.seen.most_common())
            entry["frames_with_detections"] = tally.frames_with
        if name in outputs:
            entry["output"] = {"path": str(outputs[name].path), "frames": outputs[name].frames}
        per_camera[name] = entry
    delivered = sum(s.delivered for s in stats.values())
    return {
        "model": args.model,
        "backend": model.backend,
        "device": model.device,
        "precision": model.precision,
        "seconds": elapsed,
        "policy": args.policy,
        "fps_limit": args.fps,
        "max_batch": args.max_batch,
        "decoder": decoder,
        "score_threshold": args.score if decoder is not None else None,
        "cameras": per_camera,
        "totals": {
            "captured": sum(s.captured for s in stats.values()),
            "delivered": delivered,
            "dropped": sum(sum(s.dropped.values()) for s in stats.values()),
            "fps": delivered / elapsed if elapsed > 0 else 0.0,
        },
    }


# -- the command ---------------------------------------------------------------------------
def _options(args: argparse.Namespace, decoder: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "policy": args.policy,
        "fps": args.fps,
        "size": args.size,
        "max_batch": args.max_batch,
        "loop": args.loop,
        **_processing(decoder, args.score),
    }
    if args.max_delay_ms is not None:
        options["max_delay_ms"] = args.max_delay_ms
    return options


def run(args: argparse.Namespace) -> int:
    """Run ``atriva-infer pipeline``; return the exit status."""
    from ..pipeline import Pipeline

    cameras = camera_sources(args.sources)
    check_writable(args.json, "--json")
    check_writable(args.output, "--output")
    backend = choose_backend(args.backend)
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = runtime.load_model(
            args.model, args.device, precision=args.precision, dynamic=args.dynamic
        )
        decoder = choose_decoder(args.decoder, [info.name for info in model.outputs])
        tallies = {name: _Tally() for name in cameras} if decoder is not None else None
        paths = output_paths(args.output, list(cameras)) if args.output else {}
        writers = {name: VideoWriter(path) for name, path in paths.items()}
        print(
            f"model: {model.path}  backend={model.backend}  device={model.device}  "
            f"precision={model.precision}  decoder={decoder or 'none'}",
            flush=True,
        )
        started = time.perf_counter()
        with contextlib.ExitStack() as stack:
            for writer in writers.values():
                stack.callback(writer.close)
            pipe = stack.enter_context(Pipeline(model, cameras, **_options(args, decoder)))
            timer = threading.Timer(args.seconds or 0.0, pipe.stop)
            if args.seconds is not None:
                timer.daemon = True
                timer.start()
            # Ctrl-C ends the run like --seconds does: the summary still follows
            with _LiveTable(pipe, tallies), contextlib.suppress(KeyboardInterrupt):
                for result in pipe:
                    _consume(result, tallies, writers)
            elapsed = time.perf_counter() - started
            timer.cancel()
            if timer.is_alive():
                timer.join()  # a stop() under way on the timer's thread: let it finish
            pipe.stop()
            stats = pipe.stats()
        data = summary(args, model, cameras, decoder, stats, tallies, elapsed, writers)
    _print_summary(stats, tallies, data)
    if args.json is not None:
        write_json(args.json, data)
        print(f"json: {args.json}")
    failed = {name: s.error for name, s in stats.items() if s.state == "failed"}
    for name, error in failed.items():
        print(f"atriva-infer: error: camera {name} failed: {error}", file=sys.stderr)
    return 2 if failed else 0


def _consume(result: Any, tallies: dict[str, _Tally] | None, writers: dict[str, VideoWriter]):
    detections = result.outputs if tallies is not None else None
    if detections is not None:
        tally = tallies[result.camera]  # type: ignore[index]
        tally.last = detections.counts()
        tally.seen.update(tally.last)
        tally.frames_with += bool(len(detections))
    writer = writers.get(result.camera)
    if writer is not None:
        image = result.frame
        if detections is not None and len(detections):
            from .. import vision

            image = vision.draw(image, detections)
        writer.write(image, result.pts, result.time)


def _print_summary(stats: dict[str, Any], tallies: dict[str, _Tally] | None, data: dict) -> None:
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
    totals = data["totals"]
    console.print(
        status_table(
            stats,
            tallies,
            f"after {data['seconds']:.1f} s: {totals['delivered']} "
            f"results, {totals['fps']:.1f} fps, {totals['dropped']} dropped",
            data["seconds"] or None,
        )
    )
    if tallies is not None:
        for name, tally in tallies.items():
            seen = _detections_text(dict(tally.seen.most_common()))
            console.print(f"{name}: detections over all frames: {seen}")
    for name, entry in data["cameras"].items():
        if "output" in entry:
            output = entry["output"]
            console.print(f"{name}: wrote {output['frames']} frames to {output['path']}")
