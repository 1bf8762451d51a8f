"""``python -m benchmarks``: the performance contract (SPEC §8), measured in one run.

For every backend it compares this runtime with the raw backend API called the way a careful
user would call it, at the same precision (f32), in the same process, interleaved: each
measurement alternates short rounds of every variant (the order rotating every round) so that
machine drift -- turbo, a noisy neighbour -- hits raw and ours alike. Each check compares ours
with the fastest raw variant round by round and takes the median of those per-round ratios
(or differences), so drift between rounds cancels; the plain ratio of the overall medians is
reported beside it. Other processes' CPU use is measured during every section and flagged.

1. Sync latency on ResNet-50: ``model.run`` and ``stream.run`` vs the raw best call.
2. Per-call overhead on a tiny model (a + b): microseconds ours vs the raw best call.
3. Async throughput on ResNet-50: ``create_async_queue().map`` vs the raw throughput API.
4. Memory: RSS before and after 10,000 ``stream.run`` calls (after a warm-up).
5. Input copies per frame on the stream path (structural, not timed).

The models are built here with onnx.helper (:mod:`benchmarks.models`); nothing downloads.
Threads are used only where the measurement is about them (throughput).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import report
from .models import BuiltModel, build_resnet, build_small, build_tiny

__all__ = ["BACKENDS", "Settings", "main", "run_benchmarks"]

BACKENDS = ("openvino", "onnxruntime")
SECTIONS = ("runtime", "frames", "pipeline", "serve", "quantized")  # --sections (benchmarks.<name>)
DEFAULT_JSON = Path("results") / "benchmark.json"
SCHEMA = "atriva-inference-benchmark/1"

OV_LATENCY = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
OV_THROUGHPUT = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"}
ORT_CPU = ["CPUExecutionProvider"]
#: Pause before each timed block (see :func:`_settle`).
SETTLE_S = 0.1

# -- the contract's targets ------------------------------------------------------------------
LATENCY_RATIO_MAX = 1.02  # ours / raw best, median latency (median of per-round ratios)
OVERHEAD_US_MAX = 10.0  # ours - raw best, per call on the tiny model
THROUGHPUT_RATIO_MIN = 1.0  # ours / raw best, frames per second
RSS_GROWTH_MIB_MAX = 1.0  # over the measured stream.run calls
COPIES_MAX = 0  # input copies per frame on the stream path

#: What each variant runs, as the tables name it.
LABELS = {
    "raw_bound": "raw: set_input_tensor(shared) once + infer()",
    "raw_infer_dict": "raw: infer({0: x}) default (context)",
    "raw_run": "raw: session.run(None, feed)",
    "raw_iobinding": "raw: IOBinding bound once + run_with_iobinding",
    "ours_run": "ours: model.run(feed)",
    "ours_stream": "ours: stream.run(feed)",
    "raw_async_queue": "raw: AsyncInferQueue(jobs) start_async + wait_all",
    "raw_threads_1t": "raw: N threads, 1 shared session, intra_op=1",
    "raw_threads_2n_1t": "raw: 2N threads, 1 shared session, intra_op=1",
    "raw_threads_default": "raw: N threads, 1 default session",
    "raw_pipeline_2n_1t": "raw: 2N threads pull frames, outputs in order (a pipeline)",
    "ours_queue": "ours: create_async_queue().map(frames)",
}
OURS = ("ours_run", "ours_stream")


@dataclass(frozen=True)
class Settings:
    """How long and how much to measure (``--quick`` shrinks everything)."""

    quick: bool = False
    model: str = "resnet50"  # or "small": the same topology shrunk, for smoke tests
    seconds: float = 6.0  # per variant in each timed model section (latency, throughput)
    rounds: int = 12  # interleaved rounds of every timed section
    calls: int = 20_000  # tiny-model calls per variant per round
    memory_warmup: int = 2_000
    memory_calls: int = 10_000
    frame_pool: int = 8  # distinct frames cycled through in the throughput runs

    @classmethod
    def make(
        cls,
        *,
        quick: bool,
        model: str,
        seconds: float | None,
        rounds: int | None,
        calls: int | None,
    ) -> Settings:
        base = cls(quick=True, seconds=0.6, rounds=3, calls=2_000) if quick else cls()
        return cls(
            quick=quick,
            model=model,
            seconds=base.seconds if seconds is None else seconds,
            rounds=base.rounds if rounds is None else rounds,
            calls=base.calls if calls is None else calls,
        )


# -- measuring ---------------------------------------------------------------------------------
def _rotations(names: Sequence[str], rounds: int) -> Iterator[list[str]]:
    """Every variant once per round, the starting one rotating (no variant always first)."""
    names = list(names)
    for index in range(rounds):
        shift = index % len(names)
        yield names[shift:] + names[:shift]


def _settle(seconds: float) -> None:
    """Let the previous variant's thread pool go idle before the next block starts.

    ONNX Runtime's intra-op workers spin for tens of milliseconds after a run; on 2 cores a
    block that starts while another session's workers still spin runs its first calls at
    half speed. Every block of every variant gets the same pause, so none is favoured.
    """
    if seconds > 0:
        time.sleep(seconds)


def measure_latency(
    variants: dict[str, Callable[[], Any]], seconds: float, rounds: int, settle: float = SETTLE_S
) -> tuple[dict[str, list[np.ndarray]], int]:
    """Per-call latencies (ms) of each variant, per round; each round runs ``calls`` calls of
    every variant in a block."""
    clock = time.perf_counter_ns
    estimates = []
    for call in variants.values():
        call()
        call()  # warm-up: first runs allocate and pick kernels
        started = clock()
        call()
        estimates.append(clock() - started)
    per_call_s = float(np.median(estimates)) / 1e9
    calls = max(1, round(seconds / max(rounds, 1) / per_call_s))
    samples: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    block = [0] * calls
    gc.collect()
    for order in _rotations(list(variants), rounds):
        for name in order:
            call = variants[name]
            _settle(settle)
            for index in range(calls):
                started = clock()
                call()
                block[index] = clock() - started
            samples[name].append(np.asarray(block, np.float64) / 1e6)
    return samples, calls


def measure_overhead(
    variants: dict[str, tuple[Callable[[], Any], int]],
    rounds: int,
    settle: float = SETTLE_S / 5,
) -> dict[str, list[float]]:
    """Mean microseconds per call of each variant, one figure per round."""
    clock = time.perf_counter_ns
    for call, count in variants.values():
        for _ in range(min(count, 1_000)):
            call()
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    gc.collect()
    for order in _rotations(list(variants), rounds):
        for name in order:
            call, count = variants[name]
            _settle(settle)
            started = clock()
            for _ in range(count):
                call()
            per_round[name].append((clock() - started) / count / 1e3)
    return per_round


def measure_throughput(
    variants: dict[str, Callable[[list[np.ndarray]], int]],
    frames: list[np.ndarray],
    rounds: int,
    warmup: list[np.ndarray],
    settle: float = SETTLE_S,
) -> dict[str, list[float]]:
    """Frames per second of each variant over ``frames``, one figure per round."""
    for run in variants.values():
        run(warmup)
    fps: dict[str, list[float]] = {name: [] for name in variants}
    gc.collect()
    for order in _rotations(list(variants), rounds):
        for name in order:
            _settle(settle)
            started = time.perf_counter()
            done = variants[name](frames)
            elapsed = time.perf_counter() - started
            if done != len(frames):
                raise RuntimeError(f"{name}: {done} results for {len(frames)} frames")
            fps[name].append(len(frames) / elapsed)
    return fps


def _latency_summary(rounds: list[np.ndarray]) -> dict[str, Any]:
    samples = np.concatenate(rounds)
    return {
        "median_ms": float(np.median(samples)),
        "p90_ms": float(np.percentile(samples, 90)),
        "mean_ms": float(samples.mean()),
        "min_ms": float(samples.min()),
        "calls": int(samples.size),
        "rounds_median_ms": [float(np.median(block)) for block in rounds],
    }


#: Above this share of the CPU used by other processes during a section, say so loudly.
FOREIGN_WARN_PERCENT = 5.0


def _load_note(foreign: float | None) -> str:
    if foreign is None:
        return ""
    warn = " -- NOISY" if foreign > FOREIGN_WARN_PERCENT else ""
    return f" (other processes: {foreign:.0f}% CPU{warn})"


def _ratio(a: float, b: float) -> float:
    return a / b


def _minus(a: float, b: float) -> float:
    return a - b


def _paired(ours: Sequence[float], raw: Sequence[float], op: Callable[[float, float], float]):
    """Median over rounds of ``op(ours, raw)`` within each round: drift between rounds cancels."""
    return float(np.median([op(a, b) for a, b in zip(ours, raw)]))


def _best(values: dict[str, float], lowest: bool = True) -> str:
    pick = min if lowest else max
    return pick(values, key=values.__getitem__)


def _require_fp32(model: Any) -> None:
    if model.precision != "FP32":
        raise RuntimeError(
            f"{model.backend}: the model runs in {model.precision}, expected FP32 (the raw "
            f"baseline is f32; comparing other precisions would be meaningless)"
        )


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _frames(big: BuiltModel, settings: Settings, latency_ms: float, depth: int) -> tuple:
    """The frames one throughput round runs (a pool of distinct frames, cycled)."""
    pool = [big.make_inputs(seed=100 + i)["input"] for i in range(settings.frame_pool)]
    per_round = settings.seconds / settings.rounds
    # Steady state, not pipeline fill and drain: measured with 27-frame rounds, when the last
    # frames of a round finish one by one decided ~1% of the ratio, either way.
    count = max(16 * depth, round(per_round * 1e3 / max(latency_ms, 1e-3)))
    frames = [pool[i % len(pool)] for i in range(count)]
    return frames, frames[: 2 * depth]


# -- the shared parts of every backend's run ---------------------------------------------------
class _Section:
    """Builds one backend's result dict, section by section, and prints as it goes."""

    def __init__(self, backend: str, settings: Settings, big: BuiltModel, tiny: BuiltModel):
        self.backend = backend
        self.settings = settings
        self.big = big
        self.tiny = tiny
        self.result: dict[str, Any] = {"backend": backend, "device": "CPU"}
        self.started = time.perf_counter()

    def log(self, what: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"  [{self.backend} {elapsed:6.1f} s] {what}", flush=True)

    def latency(self, variants: dict[str, Callable[[], Any]]) -> float:
        settings = self.settings
        meter = report.LoadMeter()
        samples, calls = measure_latency(variants, settings.seconds, settings.rounds)
        foreign = meter.foreign_percent()
        summary = {name: _latency_summary(values) for name, values in samples.items()}
        medians = {name: s["median_ms"] for name, s in summary.items() if name.startswith("raw")}
        best = _best(medians)
        best_rounds = summary[best]["rounds_median_ms"]
        ratios = {
            name: {
                "paired": _paired(summary[name]["rounds_median_ms"], best_rounds, _ratio),
                "median": summary[name]["median_ms"] / summary[best]["median_ms"],
                "p90": summary[name]["p90_ms"] / summary[best]["p90_ms"],
                "per_raw_median": {
                    raw: summary[name]["median_ms"] / summary[raw]["median_ms"] for raw in medians
                },
            }
            for name in OURS
        }
        self.result["latency"] = {
            "model": self.big.name,
            "rounds": settings.rounds,
            "calls_per_round": calls,
            "variants": summary,
            "raw_best": best,
            "ratios": ratios,
            "foreign_cpu_percent": foreign,
        }
        self.log(
            f"sync latency: raw best {summary[best]['median_ms']:.2f} ms, ours run "
            f"x{ratios['ours_run']['paired']:.3f}, stream x{ratios['ours_stream']['paired']:.3f}"
            f"{_load_note(foreign)}"
        )
        return summary["ours_stream"]["median_ms"]

    def overhead(self, variants: dict[str, tuple[Callable[[], Any], int]]) -> None:
        meter = report.LoadMeter()
        per_round = measure_overhead(variants, self.settings.rounds)
        foreign = meter.foreign_percent()
        summary = {
            name: {
                "median_us": float(np.median(values)),
                "min_us": float(np.min(values)),
                "rounds_us": [float(v) for v in values],
                "calls_per_round": variants[name][1],
            }
            for name, values in per_round.items()
        }
        medians = {name: s["median_us"] for name, s in summary.items() if name.startswith("raw")}
        best = _best(medians)
        difference = {
            name: {
                "paired": _paired(per_round[name], per_round[best], _minus),
                "median": summary[name]["median_us"] - medians[best],
            }
            for name in OURS
        }
        self.result["overhead"] = {
            "model": self.tiny.name,
            "rounds": self.settings.rounds,
            "variants": summary,
            "raw_best": best,
            "difference_us": difference,
            "foreign_cpu_percent": foreign,
        }
        self.log(
            f"per-call overhead: raw best {medians[best]:.2f} us, ours run "
            f"+{difference['ours_run']['paired']:.2f} us, "
            f"stream +{difference['ours_stream']['paired']:.2f} us{_load_note(foreign)}"
        )

    def throughput(
        self,
        variants: dict[str, Callable[[list[np.ndarray]], int]],
        latency_ms: float,
        depth: int,
        extra: dict[str, Any],
    ) -> None:
        frames, warmup = _frames(self.big, self.settings, latency_ms, depth)
        rounds = self.settings.rounds
        meter = report.LoadMeter()
        fps = measure_throughput(variants, frames, rounds, warmup)
        foreign = meter.foreign_percent()
        summary = {
            name: {"median_fps": float(np.median(values)), "rounds_fps": [float(v) for v in values]}
            for name, values in fps.items()
        }
        raws = {name: s["median_fps"] for name, s in summary.items() if name.startswith("raw")}
        best = _best(raws, lowest=False)
        ratio = {
            "paired": _paired(fps["ours_queue"], fps[best], _ratio),
            "median": summary["ours_queue"]["median_fps"] / raws[best],
        }
        pipelines = [name for name in raws if name.startswith("raw_pipeline")]
        if pipelines:  # like for like: raw written as a pipeline, outputs in order
            ratio["paired_vs_raw_pipeline"] = _paired(fps["ours_queue"], fps[pipelines[0]], _ratio)
        self.result["throughput"] = {
            "model": self.big.name,
            "rounds": rounds,
            "frames_per_round": len(frames),
            "variants": summary,
            "raw_best": best,
            "ratio": ratio,
            "foreign_cpu_percent": foreign,
            **extra,
        }
        versus_pipeline = ratio.get("paired_vs_raw_pipeline")
        self.log(
            f"throughput: raw best {raws[best]:.1f} fps, ours x{ratio['paired']:.3f}"
            + (f" (x{versus_pipeline:.3f} of raw as a pipeline)" if versus_pipeline else "")
            + _load_note(foreign)
        )

    def memory(self, model: Any, runtime: Any) -> None:
        settings = self.settings
        frames = [
            {name: runtime.tensor_from_numpy(a) for name, a in self.tiny.make_inputs(s).items()}
            for s in (1, 2)
        ]
        found: dict[str, Any] = {
            "model": self.tiny.name,
            "warmup": settings.memory_warmup,
            "calls": settings.memory_calls,
        }
        for name, run in (("stream", model.create_stream().run), ("run", model.run)):
            for index in range(settings.memory_warmup):
                run(frames[index & 1])
            gc.collect()
            before = report.rss_kib()
            for index in range(settings.memory_calls):
                run(frames[index & 1])  # alternating frames: every call binds anew
            gc.collect()
            after = report.rss_kib()
            growth = None if before is None or after is None else (after - before) / 1024
            found[name] = {"rss_before_kib": before, "rss_after_kib": after, "growth_mib": growth}
        self.result["memory"] = found
        self.log(
            f"memory: RSS growth over {settings.memory_calls} stream.run "
            f"{found['stream']['growth_mib']} MiB"
        )

    def copies(self, checks: dict[str, Any]) -> None:
        zero = checks.get("backend_sees_rewrite") and checks.get("shares_memory", True)
        checks["input_copies_per_frame"] = 0 if zero else 1
        self.result["copies"] = checks
        self.log(f"input copies per frame (stream): {checks['input_copies_per_frame']}")


def _copy_probe(model: Any, big: BuiltModel) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """A stream run on a fresh frame; returns (stream, frame, its output, another frame's
    expected output) for the in-place rewrite check."""
    frame = big.make_inputs(seed=3)["input"]
    other = big.make_inputs(seed=4)["input"]
    stream = model.create_stream()
    before = stream.run({"input": frame})["output"].to_numpy(copy=True)
    expected = model.run({"input": other})["output"].to_numpy(copy=True)
    frame[...] = other  # rewrite the frame in place: the bound input must see it
    return stream, frame, before, expected


def _stream_request(stream: Any) -> Any:
    """The backend request a stream ran on (after one run): the stream's internals, read
    only to check what the backend was handed."""
    requests = list(stream._holder.requests.values())
    if len(requests) != 1:
        raise AttributeError(f"the stream holds {len(requests)} requests, expected 1")
    return requests[0]


def _sees(rerun: np.ndarray, before: np.ndarray, expected: np.ndarray) -> bool:
    return bool(
        np.allclose(rerun, expected, rtol=1e-5, atol=1e-5)
        and not np.allclose(rerun, before, rtol=1e-5, atol=1e-5)
    )


def _tiny_feed(runtime: Any, tiny: BuiltModel) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = tiny.make_inputs(seed=0)
    return arrays, {name: runtime.tensor_from_numpy(array) for name, array in arrays.items()}


def _count_map(queue: Any) -> Callable[[list[np.ndarray]], int]:
    def run(frames: list[np.ndarray]) -> int:
        count = 0
        for _ in queue.map(frames):
            count += 1
        return count

    return run


# -- OpenVINO -----------------------------------------------------------------------------------
def bench_openvino(settings: Settings, big: BuiltModel, tiny: BuiltModel) -> dict[str, Any]:
    import openvino as ov

    from atriva_inference import InferenceRuntime

    section = _Section("openvino", settings, big, tiny)
    result = section.result
    core = ov.Core()
    x = big.make_inputs(seed=0)["input"]
    with InferenceRuntime("openvino") as runtime:
        model = runtime.load_model(big.path, device="CPU")
        _require_fp32(model)
        started = time.perf_counter()
        raw = core.compile_model(str(big.path), "CPU", OV_LATENCY)
        raw_compile_ms = (time.perf_counter() - started) * 1e3
        result.update(
            precision=model.precision,
            raw_config=OV_LATENCY,
            raw_precision_hint=str(raw.get_property("INFERENCE_PRECISION_HINT")),
            capabilities=list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
            compile_ms={"ours": model.get_profiling().compile_ms, "raw": raw_compile_ms},
        )

        # 5. input copies: the stream's bound input tensor is the frame itself
        stream, frame, before, expected = _copy_probe(model, big)
        probe: dict[str, Any] = {"model": big.name}
        try:
            request = _stream_request(stream)._request
            probe["shares_memory"] = bool(np.shares_memory(request.get_input_tensor(0).data, frame))
            request.infer()  # the backend alone, after the rewrite
            probe["backend_sees_rewrite"] = _sees(
                request.get_output_tensor(0).data.copy(), before, expected
            )
        except AttributeError as exc:  # the internals moved: say so rather than guess
            probe["error"] = f"cannot reach the bound OpenVINO request: {exc}"
        after = stream.run({"input": frame})["output"].to_numpy(copy=True)
        probe["stream_rerun_correct"] = bool(np.allclose(after, expected, rtol=1e-5, atol=1e-5))
        section.copies(probe)

        # 1. sync latency
        feed = {"input": runtime.tensor_from_numpy(x)}
        stream = model.create_stream()
        bound = raw.create_infer_request()
        bound.set_input_tensor(ov.Tensor(x, shared_memory=True))
        plain = raw.create_infer_request()
        bound.infer()
        reference = bound.get_output_tensor(0).data.copy()
        ours = model.run(feed)["output"].to_numpy()
        result["output"] = ours
        result["agreement"] = {"max_abs_diff_ours_vs_raw": float(np.abs(ours - reference).max())}
        latency_ms = section.latency(
            {
                "raw_bound": bound.infer,
                "raw_infer_dict": functools.partial(plain.infer, {0: x}),
                "ours_run": functools.partial(model.run, feed),
                "ours_stream": functools.partial(stream.run, feed),
            }
        )

        # 2. per-call overhead and 4. memory, on the tiny model
        tiny_model = runtime.load_model(tiny.path, device="CPU")
        _require_fp32(tiny_model)
        raw_tiny = core.compile_model(str(tiny.path), "CPU", OV_LATENCY)
        arrays, tiny_feed = _tiny_feed(runtime, tiny)
        tiny_bound = raw_tiny.create_infer_request()
        for index, array in enumerate(arrays.values()):
            tiny_bound.set_input_tensor(index, ov.Tensor(array, shared_memory=True))
        tiny_plain = raw_tiny.create_infer_request()
        positional = dict(enumerate(arrays.values()))
        calls = settings.calls
        section.overhead(
            {
                "raw_bound": (tiny_bound.infer, calls),
                "raw_infer_dict": (functools.partial(tiny_plain.infer, positional), calls // 4),
                "ours_run": (functools.partial(tiny_model.run, tiny_feed), calls),
                "ours_stream": (
                    functools.partial(tiny_model.create_stream().run, tiny_feed),
                    calls,
                ),
            }
        )
        section.memory(tiny_model, runtime)

        # 3. async throughput
        queue = model.create_async_queue()
        raw_tp = core.compile_model(str(big.path), "CPU", OV_THROUGHPUT)
        jobs = int(raw_tp.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        async_queue = ov.AsyncInferQueue(raw_tp, jobs)
        sink: list[np.ndarray] = []
        async_queue.set_callback(
            lambda request, _userdata: sink.append(request.get_output_tensor(0).data.copy())
        )

        def raw_async(frames: list[np.ndarray]) -> int:
            sink.clear()
            for frame in frames:
                async_queue.start_async({0: frame}, share_inputs=True)
            async_queue.wait_all()
            return len(sink)

        section.throughput(
            {"raw_async_queue": raw_async, "ours_queue": _count_map(queue)},
            latency_ms,
            max(queue.depth, jobs),
            {
                "ours_depth": queue.depth,
                "raw_jobs": jobs,
                "raw_config": OV_THROUGHPUT,
                "raw_streams": int(raw_tp.get_property("NUM_STREAMS")),
            },
        )
    return result


# -- ONNX Runtime -------------------------------------------------------------------------------
def bench_onnxruntime(settings: Settings, big: BuiltModel, tiny: BuiltModel) -> dict[str, Any]:
    import onnxruntime as ort

    from atriva_inference import InferenceRuntime

    section = _Section("onnxruntime", settings, big, tiny)
    result = section.result
    x = big.make_inputs(seed=0)["input"]
    with InferenceRuntime("onnxruntime") as runtime:
        model = runtime.load_model(big.path, device="CPU")
        _require_fp32(model)
        started = time.perf_counter()
        session = ort.InferenceSession(str(big.path), providers=ORT_CPU)
        raw_compile_ms = (time.perf_counter() - started) * 1e3
        result.update(
            precision=model.precision,
            raw_config={"session_options": "default", "providers": ORT_CPU},
            compile_ms={"ours": model.get_profiling().compile_ms, "raw": raw_compile_ms},
        )

        # 5. input copies: the stream's IOBinding reads the frame's own memory
        stream, _frame, before, expected = _copy_probe(model, big)
        probe: dict[str, Any] = {"model": big.name}
        try:
            request = _stream_request(stream)
            request._session.run_with_iobinding(request._binding)  # the backend alone
            probe["backend_sees_rewrite"] = _sees(
                request._binding.copy_outputs_to_cpu()[0], before, expected
            )
        except AttributeError as exc:
            probe["error"] = f"cannot reach the stream's IOBinding: {exc}"
        after = stream.run({"input": _frame})["output"].to_numpy(copy=True)
        probe["stream_rerun_correct"] = bool(np.allclose(after, expected, rtol=1e-5, atol=1e-5))
        section.copies(probe)

        # 1. sync latency
        feed = {"input": runtime.tensor_from_numpy(x)}
        stream = model.create_stream()
        binding, _buffers = _io_binding(session, {"input": x}, big.outputs)
        reference = session.run(None, {"input": x})[0]
        ours = model.run(feed)["output"].to_numpy()
        result["output"] = ours
        result["agreement"] = {"max_abs_diff_ours_vs_raw": float(np.abs(ours - reference).max())}
        latency_ms = section.latency(
            {
                "raw_run": functools.partial(session.run, None, {"input": x}),
                "raw_iobinding": functools.partial(session.run_with_iobinding, binding),
                "ours_run": functools.partial(model.run, feed),
                "ours_stream": functools.partial(stream.run, feed),
            }
        )

        # 2. per-call overhead and 4. memory, on the tiny model
        tiny_model = runtime.load_model(tiny.path, device="CPU")
        _require_fp32(tiny_model)
        tiny_session = ort.InferenceSession(str(tiny.path), providers=ORT_CPU)
        arrays, tiny_feed = _tiny_feed(runtime, tiny)
        tiny_binding, _tiny_buffers = _io_binding(tiny_session, arrays, tiny.outputs)
        calls = settings.calls
        section.overhead(
            {
                "raw_iobinding": (
                    functools.partial(tiny_session.run_with_iobinding, tiny_binding),
                    calls,
                ),
                "raw_run": (functools.partial(tiny_session.run, None, arrays), calls),
                "ours_run": (functools.partial(tiny_model.run, tiny_feed), calls),
                "ours_stream": (
                    functools.partial(tiny_model.create_stream().run, tiny_feed),
                    calls,
                ),
            }
        )
        section.memory(tiny_model, runtime)

        # 3. async throughput
        queue = model.create_async_queue()
        threads = _usable_cores()
        one_thread = ort.SessionOptions()
        one_thread.intra_op_num_threads = 1
        one_thread.inter_op_num_threads = 1
        single = ort.InferenceSession(str(big.path), one_thread, providers=ORT_CPU)
        section.throughput(
            {
                "raw_threads_1t": _threaded(single, threads),
                # As many threads as our queue has frames in flight: raw gets the same chance.
                "raw_threads_2n_1t": _threaded(single, 2 * threads),
                "raw_threads_default": _threaded(session, threads),
                "raw_pipeline_2n_1t": _pipelined(single, 2 * threads),
                "ours_queue": _count_map(queue),
            },
            latency_ms,
            max(queue.depth, threads),
            {"ours_depth": queue.depth, "raw_threads": threads},
        )
    return result


def _io_binding(
    session: Any, inputs: dict[str, np.ndarray], outputs: dict[str, tuple[int, ...]]
) -> tuple[Any, list[np.ndarray]]:
    """An IOBinding with inputs bound once and outputs written into buffers made once."""
    binding = session.io_binding()
    for name, array in inputs.items():
        binding.bind_cpu_input(name, array)
    buffers = []
    for name, shape in outputs.items():
        buffer = np.empty(shape, np.float32)
        binding.bind_output(name, "cpu", 0, np.float32, list(shape), buffer.ctypes.data)
        buffers.append(buffer)
    return binding, buffers


def _threaded(session: Any, threads: int) -> Callable[[list[np.ndarray]], int]:
    """``threads`` threads each running its share of the frames on one shared session."""
    name = session.get_inputs()[0].name

    def run(frames: list[np.ndarray]) -> int:
        counts = [0] * threads

        def work(index: int) -> None:
            done = 0
            for frame in frames[index::threads]:
                session.run(None, {name: frame})
                done += 1
            counts[index] = done

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return sum(counts)

    return run


def _pipelined(session: Any, threads: int) -> Callable[[list[np.ndarray]], int]:
    """Raw code written as a pipeline must be: ``threads`` threads pull the next frame from
    one source and the caller takes the outputs in frame order (a video pipeline cannot
    split a stream it has not received yet, and publishes results in order)."""
    name = session.get_inputs()[0].name

    def run(frames: list[np.ndarray]) -> int:
        source = iter(enumerate(frames))
        pulling = threading.Lock()
        ready = threading.Condition()
        outputs: dict[int, Any] = {}

        def work() -> None:
            while True:
                with pulling:
                    taken = next(source, None)
                if taken is None:
                    return
                index, frame = taken
                result = session.run(None, {name: frame})
                with ready:
                    outputs[index] = result
                    ready.notify()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        delivered = 0
        for index in range(len(frames)):
            with ready:
                while index not in outputs:
                    ready.wait()
                outputs.pop(index)
            delivered += 1
        for worker in workers:
            worker.join()
        return delivered

    return run


RUNNERS: dict[str, Callable[[Settings, BuiltModel, BuiltModel], dict[str, Any]]] = {
    "openvino": bench_openvino,
    "onnxruntime": bench_onnxruntime,
}


# -- checks, tables, JSON ---------------------------------------------------------------------
def _check(
    backend: str, name: str, value: Any, op: str, target: float, unit: str = "", digits: int = 3
) -> dict:
    if value is None:
        ok = False
    elif op == "<=":
        ok = value <= target
    elif op == ">=":
        ok = value >= target
    else:  # "<"
        ok = value < target
    return {
        "backend": backend,
        "name": name,
        "value": value,
        "shown": "-" if value is None else f"{value:.{digits}f}",
        "unit": unit,
        "target": f"{op} {target:g}{f' {unit}' if unit else ''}",
        "result": "PASS" if ok else "MISS",
    }


def checks_for(result: dict[str, Any]) -> list[dict[str, Any]]:
    backend = result["backend"]
    found = []
    latency = result["latency"]
    for name, what in (("ours_run", "run"), ("ours_stream", "stream.run")):
        found.append(
            _check(
                backend,
                f"latency {what} / raw best (median, paired)",
                latency["ratios"][name]["paired"],
                "<=",
                LATENCY_RATIO_MAX,
            )
        )
    overhead = result["overhead"]
    for name, what in (("ours_run", "run"), ("ours_stream", "stream.run")):
        found.append(
            _check(
                backend,
                f"overhead {what} - raw best (paired)",
                overhead["difference_us"][name]["paired"],
                "<=",
                OVERHEAD_US_MAX,
                "us",
                2,
            )
        )
    found.append(
        _check(
            backend,
            "throughput ours / raw best (paired)",
            result["throughput"]["ratio"]["paired"],
            ">=",
            THROUGHPUT_RATIO_MIN,
        )
    )
    memory = result["memory"]
    found.append(
        _check(
            backend,
            f"RSS growth, {memory['calls']} stream.run",
            memory["stream"]["growth_mib"],
            "<",
            RSS_GROWTH_MIB_MAX,
            "MiB",
        )
    )
    found.append(
        _check(
            backend,
            "input copies per frame (stream)",
            result["copies"]["input_copies_per_frame"],
            "<=",
            COPIES_MAX,
            digits=0,
        )
    )
    return found


def backend_tables(result: dict[str, Any]) -> str:
    """The detailed figures of one backend."""
    lines = [
        f"== {result['backend']} (CPU, ours {result['precision']}; raw f32; same process, "
        f"interleaved rounds) =="
    ]
    latency = result["latency"]
    variants = latency["variants"]
    best = latency["raw_best"]
    lines.append(
        f"1. sync latency, {latency['model']} ({latency['calls_per_round']} calls x "
        f"{latency['rounds']} rounds per variant; ratios to {best}: of medians / paired)"
        f"{_load_note(latency['foreign_cpu_percent'])}"
    )
    rows = []
    for name, s in variants.items():
        ratio = s["median_ms"] / variants[best]["median_ms"]
        paired = latency["ratios"][name]["paired"] if name in OURS else None
        rows.append([LABELS[name], s["median_ms"], s["p90_ms"], ratio, paired, s["calls"]])
    headers = ["variant", "median ms", "p90 ms", "/ raw best", "paired", "calls"]
    lines.append(report.table(headers, rows, "   "))
    overhead = result["overhead"]
    variants = overhead["variants"]
    best = overhead["raw_best"]
    lines.append(
        f"2. per-call overhead, {overhead['model']} (median of {overhead['rounds']} rounds; "
        f"differences to {best}: of medians / paired)"
        f"{_load_note(overhead['foreign_cpu_percent'])}"
    )
    rows = []
    for name, s in variants.items():
        diff = s["median_us"] - variants[best]["median_us"]
        paired = overhead["difference_us"][name]["paired"] if name in OURS else None
        rows.append([LABELS[name], s["median_us"], diff, paired, s["calls_per_round"]])
    headers = ["variant", "us/call", "- raw best", "paired", "calls/round"]
    lines.append(report.table(headers, rows, "   "))
    throughput = result["throughput"]
    variants = throughput["variants"]
    best = throughput["raw_best"]
    lines.append(
        f"3. async throughput, {throughput['model']} ({throughput['frames_per_round']} frames x "
        f"{throughput['rounds']} rounds per variant; ours depth {throughput['ours_depth']})"
        f"{_load_note(throughput['foreign_cpu_percent'])}"
    )
    rows = []
    for name, s in variants.items():
        ratio = s["median_fps"] / variants[best]["median_fps"]
        paired = throughput["ratio"]["paired"] if name == "ours_queue" else None
        rows.append([LABELS[name], s["median_fps"], ratio, paired])
    lines.append(report.table(["variant", "fps", "/ raw best", "paired"], rows, "   "))
    if "paired_vs_raw_pipeline" in throughput["ratio"]:
        lines.append(
            f"   ours / raw written as a pipeline (paired): "
            f"{throughput['ratio']['paired_vs_raw_pipeline']:.3f}"
        )
    memory = result["memory"]
    lines.append(
        f"4. memory, {memory['model']} (VmRSS around {memory['calls']} calls after "
        f"{memory['warmup']} warm-up calls)"
    )
    rows = [
        [f"ours: {name}", m["rss_before_kib"], m["rss_after_kib"], m["growth_mib"]]
        for name, m in ((n, memory[n]) for n in ("stream", "run"))
    ]
    lines.append(report.table(["calls", "before KiB", "after KiB", "growth MiB"], rows, "   "))
    copies = result["copies"]
    lines.append(
        f"5. input copies per frame, stream path: {copies['input_copies_per_frame']} "
        f"(bound input shares the frame's memory: {copies.get('shares_memory', 'n/a')}; "
        f"the backend alone, rerun after an in-place rewrite of the frame, sees it: "
        f"{copies.get('backend_sees_rewrite')}; stream rerun correct: "
        f"{copies.get('stream_rerun_correct')})"
    )
    if "error" in copies:
        lines.append(f"   {copies['error']}")
    diff = result["agreement"]["max_abs_diff_ours_vs_raw"]
    lines.append(f"   ours vs raw output max |diff|: {diff:.3g}")
    return "\n".join(lines)


def checks_table(checks: list[dict[str, Any]]) -> str:
    rows = [[c["backend"], c["name"], c["shown"], c["target"], c["result"]] for c in checks]
    return report.table(["backend", "check", "value", "target", "result"], rows, "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# -- the command ----------------------------------------------------------------------------------
def run_benchmarks(
    settings: Settings, backends: Sequence[str], argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Build the models, run every backend, return everything the JSON holds."""
    from atriva_inference import available_backends

    started = time.perf_counter()
    cpu_before = report.cpu_times()
    meter = report.LoadMeter()
    machine = report.machine()
    usable = {status.name: status for status in available_backends()}
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "command": ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)],
        "settings": asdict(settings),
        "machine": machine,
        "versions": report.versions(),
        "targets": {
            "latency_ratio_max": LATENCY_RATIO_MAX,
            "overhead_us_max": OVERHEAD_US_MAX,
            "throughput_ratio_min": THROUGHPUT_RATIO_MIN,
            "rss_growth_mib_max": RSS_GROWTH_MIB_MAX,
            "input_copies_max": COPIES_MAX,
        },
        "backends": {},
        "skipped": {},
        "checks": [],
    }
    print(_header(document), flush=True)
    with tempfile.TemporaryDirectory(prefix="atriva-bench-") as directory:
        build_started = time.perf_counter()
        big = build_small(directory) if settings.model == "small" else build_resnet(directory)
        tiny = build_tiny(directory)
        document["models"] = {
            "big": {
                "name": big.name,
                "conv_nodes": big.conv_count,
                "parameters": big.parameters,
                "inputs": big.inputs,
                "outputs": big.outputs,
                "onnx_bytes": big.path.stat().st_size,
            },
            "tiny": {"name": tiny.name, "inputs": tiny.inputs, "outputs": tiny.outputs},
            "build_s": time.perf_counter() - build_started,
        }
        print(
            f"models: {big.name} ({big.conv_count} Conv, {big.parameters / 1e6:.1f} M parameters, "
            f"input float32{list(big.inputs['input'])}), {tiny.name} (a + b, float32[2, 4]); "
            f"built in {document['models']['build_s']:.1f} s\n",
            flush=True,
        )
        outputs = {}
        for backend in backends:
            status = usable.get(backend)
            if status is None or not status.usable:
                reason = getattr(status, "reason", None) or "not available"
                document["skipped"][backend] = reason
                print(f"== {backend}: skipped ({reason})\n", flush=True)
                continue
            result = RUNNERS[backend](settings, big, tiny)
            outputs[backend] = result.pop("output")
            document["backends"][backend] = result
            document["checks"].extend(checks_for(result))
            print(backend_tables(result) + "\n", flush=True)
            gc.collect()
    if len(outputs) == 2:
        first, second = outputs.values()
        document["cross_backend_max_abs_diff"] = float(np.abs(first - second).max())
    document["elapsed_s"] = time.perf_counter() - started
    steal = report.steal_percent(cpu_before, report.cpu_times())
    document["machine"]["cpu_steal_percent_during_run"] = steal
    document["machine"]["foreign_cpu_percent_during_run"] = meter.foreign_percent()
    return _jsonable(document)


def _noisy_sections(document: dict[str, Any]) -> list[str]:
    noisy = []
    for backend, result in document["backends"].items():
        for section in ("latency", "overhead", "throughput"):
            foreign = result[section].get("foreign_cpu_percent")
            if foreign is not None and foreign > FOREIGN_WARN_PERCENT:
                noisy.append(f"{backend} {section} ({foreign:.0f}%)")
    return noisy


def _header(document: dict[str, Any]) -> str:
    machine, versions, settings = document["machine"], document["versions"], document["settings"]
    amx = ", ".join(machine["amx_flags"]) if machine["amx"] else "no"
    return "\n".join(
        [
            f"atriva-inference benchmark (SPEC §8){' -- quick' if settings['quick'] else ''}",
            f"machine: {machine['cpu']}, {machine['cores']} cores "
            f"({machine['cores_usable']} usable), AMX: {amx}, "
            f"avx512_bf16: {'yes' if machine['avx512_bf16'] else 'no'}",
            "versions: "
            + ", ".join(f"{name} {version or 'absent'}" for name, version in versions.items())
            + f", python {machine['python']}",
            f"settings: {settings['seconds']:g} s per variant per model section, "
            f"{settings['rounds']} rounds, {settings['calls']} tiny calls per round",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the runtime against the raw backends (SPEC §8) and write JSON.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run (~30 s; frames ~15 s more)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated sections: runtime (latency, overhead, throughput, memory, "
        "copies), frames (camera frames, new shapes; benchmarks.frames), pipeline, serve, "
        "quantized (INT8 vs f32 and ours vs raw on the wheels' models; benchmarks.quantized) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"where to write (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated backends to measure (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        choices=("resnet50", "small"),
        default="resnet50",
        help="the model of the latency/throughput sections; 'small' is a shrunk ResNet "
        "(and makes the frames section a smoke run on small frames)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="seconds per variant per model section (6; quick 0.6; frames: per frame size, "
        "2; quick 0.25)",
    )
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds (12; quick 3; frames: 8; quick 3)"
    )
    parser.add_argument("--calls", type=int, help="tiny-model calls per round (20000; quick 2000)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown or not backends:
        parser.error(f"--backends: expected some of {', '.join(BACKENDS)}, got {args.backends!r}")
    args.backends = backends
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    if not sections or any(name not in SECTIONS for name in sections):
        parser.error(f"--sections: expected some of {', '.join(SECTIONS)}, got {args.sections!r}")
    args.sections = sections
    for option in ("seconds", "rounds", "calls"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            parser.error(f"--{option}: expected a positive number, got {value}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.make(
        quick=args.quick,
        model=args.model,
        seconds=args.seconds,
        rounds=args.rounds,
        calls=args.calls,
    )
    document = run_benchmarks(settings, args.backends, argv)
    checks = document["checks"]
    misses = [c for c in checks if c["result"] != "PASS"]
    print("== checks ==")
    print(checks_table(checks))
    if "cross_backend_max_abs_diff" in document:
        diff = document["cross_backend_max_abs_diff"]
        print(f"openvino vs onnxruntime output max |diff|: {diff:.3g}")
    steal = document["machine"]["cpu_steal_percent_during_run"]
    print(
        f"\n{len(checks) - len(misses)} PASS, {len(misses)} MISS; "
        f"total {document['elapsed_s']:.1f} s"
        + ("" if steal is None else f"; CPU time stolen by the hypervisor: {steal:.1f}%")
        + _load_note(document["machine"]["foreign_cpu_percent_during_run"])
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    noisy = _noisy_sections(document)
    if noisy:
        print(
            "WARNING: other processes used the CPU while these were measured: "
            + ", ".join(noisy)
            + ". Their figures (raw and ours alike) are skewed; rerun on a quiet machine."
        )
    print(f"wrote {args.json}")
    return 1 if (args.strict and misses) else 0


def section_document(
    args: argparse.Namespace, argv: Sequence[str] | None, section: str, earlier: set[str]
) -> dict[str, Any]:
    """The JSON document a later section adds its figures to: what the ``earlier`` sections
    wrote in this run, or a new one (and then the section's header is printed)."""
    if earlier & set(args.sections) and args.json.is_file():
        with open(args.json, encoding="utf-8") as written:
            return json.load(written)
    machine = report.machine()
    print(
        f"atriva-inference benchmark, {section} section{' -- quick' if args.quick else ''}\n"
        f"machine: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['cores_usable']} usable), python {machine['python']}",
        flush=True,
    )
    return {
        "schema": SCHEMA,
        "command": ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "versions": report.versions(),
        "checks": [],
    }
