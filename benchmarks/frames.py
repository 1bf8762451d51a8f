"""The frames section of ``python -m benchmarks``: the layouts/shapes contract, measured.

For every backend, in f32, with interleaved rounds like :mod:`benchmarks.runtime`:

1. Camera frames. uint8 HWC frames as a decoder gives them (1080p, 720p) into a float NCHW
   ResNet-class model with dynamic H and W (the builder's bottleneck ResNet, fully
   convolutional up to the global average pool, input dims ``[1, 3, height, width]``):

   * ``ours_ingraph``: ``model.run(runtime.tensor_from_numpy(frame, layout="HWC"))``, the
     conversion compiled into the graph;
   * ``ours_numpy``: numpy's ``transpose`` + ``astype`` to float NCHW, then ``model.run``;
   * ``raw_numpy``: the same numpy conversion fed to the raw backend (an OpenVINO
     ``InferRequest`` compiled with the f32 hint, an ONNX Runtime session) on the same model;
   * ``numpy_convert``: the numpy conversion alone, for reference.

   The figure of merit is in-graph / numpy path (target <= 1.0), the median of per-round
   ratios so drift between rounds cancels; (a) and (b) must give the same outputs.
2. New shapes. Float NCHW inputs at shapes the model has not seen: the first run there (a
   shape-cache miss) against the median of the runs after it (hits), on a freshly loaded
   model each repetition, with ``get_profiling().shapes``; on OpenVINO also with
   ``static_shapes=True`` (a reshape + compile per shape) to show the trade-off.

:func:`main` is what ``python -m benchmarks`` runs: the runtime section
(:func:`benchmarks.runtime.main`) and then this one, as ``--sections`` picks, into one JSON
(this section's figures under ``"frames"``, its checks in ``"checks"`` with
``"section": "frames"``).
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import report, runtime
from .models import resnet_proto

__all__ = ["FrameSettings", "build_frames_model", "main", "run_frames", "to_nchw_float"]

#: The checks of this section (see :func:`frames_checks`).
INGRAPH_RATIO_MAX = 1.0  # in-graph / numpy path, median ms per frame (paired)
AGREEMENT_REL_MAX = 1e-4  # max |in-graph - numpy| / max |numpy|

LABELS = {
    "ours_ingraph": "ours: run(uint8 HWC frame), converted in graph",
    "ours_numpy": "ours: numpy transpose+astype, run(float NCHW)",
    "raw_numpy": "raw: numpy transpose+astype, {raw}",
    "numpy_convert": "numpy transpose+astype alone (reference)",
}
RAW_CALLS = {
    "openvino": "InferRequest.infer({0: x}, share_inputs=True)",
    "onnxruntime": "session.run(None, {'input': x})",
}


@dataclass(frozen=True)
class FrameSettings:
    """What the frames section measures and for how long (``--quick`` shrinks it)."""

    quick: bool = False
    resolutions: tuple[tuple[int, int], ...] = ((1080, 1920), (720, 1280))
    new_shapes: tuple[tuple[int, int], ...] = ((480, 640), (544, 960), (720, 1280))
    #: The model: the benchmark's bottleneck ResNet, shrunk so a 1080p frame costs ~35 ms on
    #: 2 cores (full ResNet-50 would take ~1 s a frame there).
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    width: int = 16
    classes: int = 1000
    seconds: float = 2.0  # per variant per resolution, spread over the rounds
    rounds: int = 8
    settle: float = runtime.SETTLE_S
    pool: int = 3  # distinct frames cycled through per resolution
    repeats: int = 2  # fresh loads per shape mode (a new shape is new only once per load)
    cached_runs: int = 5  # runs after the first at each new shape
    warmup_shape: tuple[int, int] = (224, 224)  # run first on every fresh load (not measured)
    static_compare: bool = True  # OpenVINO: also static_shapes=True

    @classmethod
    def make(
        cls,
        *,
        quick: bool = False,
        model: str = "resnet50",
        seconds: float | None = None,
        rounds: int | None = None,
    ) -> FrameSettings:
        """Full, quick (``--quick``) or smoke (``--model small``: a tiny model on small
        frames); ``seconds``/``rounds`` override the preset's."""
        if model == "small":
            base = cls.smoke()
        elif quick:
            base = cls(quick=True, seconds=0.25, rounds=3, settle=0.05, repeats=1, cached_runs=3)
        else:
            base = cls()
        changes: dict[str, Any] = {"quick": quick}
        if seconds is not None:
            changes["seconds"] = seconds
        if rounds is not None:
            changes["rounds"] = rounds
        return cls(**{**asdict(base), **changes})

    @classmethod
    def smoke(cls) -> FrameSettings:
        """The quickest form: a tiny model on small frames (for tests, a second or two)."""
        return cls(
            quick=True,
            resolutions=((96, 128), (64, 96)),
            new_shapes=((48, 64), (72, 80)),
            width=4,
            classes=10,
            seconds=0.02,
            rounds=2,
            settle=0.0,
            pool=2,
            repeats=1,
            cached_runs=2,
            warmup_shape=(32, 32),
        )


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FramesModel:
    name: str
    path: Path
    blocks: tuple[int, ...]
    width: int
    classes: int
    conv_count: int
    parameters: int

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "blocks": list(self.blocks),
            "width": self.width,
            "classes": self.classes,
            "conv_nodes": self.conv_count,
            "parameters": self.parameters,
            "input": ["float32", 1, 3, "height", "width"],
            "layout": "NCHW",
            "onnx_bytes": self.path.stat().st_size,
        }


def build_frames_model(
    directory: str | Path,
    *,
    blocks: Sequence[int] = (1, 1, 1, 1),
    width: int = 16,
    classes: int = 1000,
    seed: int = 0,
) -> FramesModel:
    """The benchmark's ResNet with its input's H and W made symbolic (``[1, 3, height,
    width]``): convolutions, pooling, then a global average pool, so any H, W runs. The
    same file serves ours and the raw backends."""
    model, convs, parameters = resnet_proto(
        blocks=blocks, width=width, image=224, classes=classes, seed=seed
    )
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis, name in ((2, "height"), (3, "width")):
        dims[axis].ClearField("dim_value")
        dims[axis].dim_param = name
    onnx.checker.check_model(model)
    name = f"resnet_b{''.join(map(str, blocks))}_w{width}_dynamic"
    path = Path(directory) / f"{name}.onnx"
    onnx.save(model, str(path))
    return FramesModel(name, path, tuple(blocks), width, classes, convs, parameters)


def to_nchw_float(frame: np.ndarray) -> np.ndarray:
    """What a careful numpy user does with a uint8 HWC frame for a float NCHW model."""
    return np.ascontiguousarray(frame.transpose(2, 0, 1)[None]).astype(np.float32)


def _camera_frames(height: int, width: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _cycling(call: Callable[[np.ndarray], Any], frames: list[np.ndarray]) -> Callable[[], Any]:
    """A no-argument call that feeds the next frame of the pool each time."""
    pool = itertools.cycle(frames)
    return lambda: call(next(pool))


# -- the raw backends ------------------------------------------------------------------------------
class _RawOpenVINO:
    """One InferRequest of the model compiled as the runtime section's raw baseline."""

    def __init__(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(str(path), "CPU", runtime.OV_LATENCY)
        self.precision_hint = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: x}, share_inputs=True)
        return self.request.get_output_tensor(0).data

    def close(self) -> None:
        self.request = self.compiled = None


class _RawONNXRuntime:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=runtime.ORT_CPU)
        self.precision_hint = "f32 (the model's own)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": x})[0]

    def close(self) -> None:
        self.session = None


RAW = {"openvino": _RawOpenVINO, "onnxruntime": _RawONNXRuntime}


# -- 1. camera frames ------------------------------------------------------------------------------
def _camera(
    settings: FrameSettings, log: _Log, model: Any, rt: Any, raw: Any, seed: int
) -> dict[str, Any]:
    """Every resolution: agreement, then interleaved rounds of the four variants."""
    found: dict[str, Any] = {}
    for index, (height, width) in enumerate(settings.resolutions):
        frames = _camera_frames(height, width, settings.pool, seed + index)

        def ingraph(frame: np.ndarray) -> Any:
            return model.run(rt.tensor_from_numpy(frame, layout="HWC"))

        def numpy_ours(frame: np.ndarray) -> Any:
            return model.run(rt.tensor_from_numpy(to_nchw_float(frame)))

        def numpy_raw(frame: np.ndarray) -> Any:
            return raw(to_nchw_float(frame))

        frame = frames[0]
        started = time.perf_counter()
        a = ingraph(frame)["output"].to_numpy()
        first_ms = (time.perf_counter() - started) * 1e3
        b = numpy_ours(frame)["output"].to_numpy()
        c = np.array(numpy_raw(frame))
        scale = float(np.abs(b).max()) or 1.0
        agreement = {
            "max_abs_diff_ingraph_vs_numpy": float(np.abs(a - b).max()),
            "max_abs_diff_ingraph_vs_raw": float(np.abs(a - c).max()),
            "output_max_abs": scale,
        }
        agreement["relative_ingraph_vs_numpy"] = agreement["max_abs_diff_ingraph_vs_numpy"] / scale
        variants = {
            "ours_ingraph": _cycling(ingraph, frames),
            "ours_numpy": _cycling(numpy_ours, frames),
            "raw_numpy": _cycling(numpy_raw, frames),
            "numpy_convert": _cycling(to_nchw_float, frames),
        }
        meter = report.LoadMeter()
        samples, calls = runtime.measure_latency(
            variants, settings.seconds, settings.rounds, settings.settle
        )
        foreign = meter.foreign_percent()
        summary = {name: runtime._latency_summary(values) for name, values in samples.items()}
        ratio = functools.partial(_ratio_of, summary)

        found[f"{height}x{width}"] = {
            "frame": {"shape": [height, width, 3], "dtype": "uint8", "layout": "HWC"},
            "first_ingraph_ms": first_ms,
            "rounds": settings.rounds,
            "calls_per_round": calls,
            "variants": summary,
            "ratios": {
                "ingraph_over_numpy": ratio("ours_ingraph", "ours_numpy"),
                "ingraph_over_raw_numpy": ratio("ours_ingraph", "raw_numpy"),
                "numpy_over_raw_numpy": ratio("ours_numpy", "raw_numpy"),
            },
            "agreement": agreement,
            "foreign_cpu_percent": foreign,
        }
        paired = found[f"{height}x{width}"]["ratios"]["ingraph_over_numpy"]["paired"]
        log(
            f"{height}x{width} uint8 HWC: in-graph {summary['ours_ingraph']['median_ms']:.2f} ms, "
            f"numpy path {summary['ours_numpy']['median_ms']:.2f} ms, in-graph/numpy "
            f"x{paired:.3f}{runtime._load_note(foreign)}",
        )
    return found


def _ratio_of(summary: dict[str, Any], name: str, base: str) -> dict[str, float]:
    """``name`` / ``base``: median of per-round ratios (paired) and ratio of the medians."""
    return {
        "paired": runtime._paired(
            summary[name]["rounds_median_ms"], summary[base]["rounds_median_ms"], runtime._ratio
        ),
        "median": summary[name]["median_ms"] / summary[base]["median_ms"],
    }


# -- 2. new shapes ---------------------------------------------------------------------------------
def _shape_modes(settings: FrameSettings, backend: str) -> dict[str, bool | None]:
    modes: dict[str, bool | None] = {"dynamic": None}
    if backend == "openvino" and settings.static_compare:
        modes["static"] = True
    return modes


def _one_load(
    settings: FrameSettings, rt: Any, path: Path, static: bool | None, seed: int
) -> dict[str, Any]:
    """A fresh load; every new shape once: its first run, then the cached runs."""
    size = len(settings.new_shapes) + 1
    started = time.perf_counter()
    model = rt.load_model(path, device="CPU", static_shapes=static, shape_cache_size=size)
    load_ms = (time.perf_counter() - started) * 1e3
    runtime._require_fp32(model)
    rng = np.random.default_rng(seed)
    warm = rng.standard_normal((1, 3, *settings.warmup_shape), dtype=np.float32)
    model.run(warm)  # the first run of a load (requests, allocations) is not a shape's cost
    model.run(warm)
    shapes = []
    for height, width in settings.new_shapes:
        x = rng.standard_normal((1, 3, height, width), dtype=np.float32)
        before = model.shape_cache_info()
        started = time.perf_counter_ns()
        model.run(x)
        first_ms = (time.perf_counter_ns() - started) / 1e6
        after_first = model.shape_cache_info()
        cached = []
        for _ in range(settings.cached_runs):
            started = time.perf_counter_ns()
            model.run(x)
            cached.append((time.perf_counter_ns() - started) / 1e6)
        after = model.shape_cache_info()
        shapes.append(
            {
                "shape": [1, 3, height, width],
                "first_ms": first_ms,
                "cached_ms": float(np.median(cached)),
                "first_was_miss": after_first.misses == before.misses + 1
                and after_first.hits == before.hits,
                "later_were_hits": after.hits == after_first.hits + settings.cached_runs
                and after.misses == after_first.misses,
            }
        )
    profile = model.get_profiling()
    info = model.shape_cache_info()
    model.close()
    return {
        "load_ms": load_ms,
        "shapes": shapes,
        "profile_shapes": [asdict(record) for record in profile.shapes],
        "compile_ms": profile.compile_ms,
        "cache_info": info._asdict(),
    }


def _new_shapes(settings: FrameSettings, log: _Log, rt: Any, path: Path) -> dict[str, Any]:
    modes = _shape_modes(settings, log.backend)
    loads: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
    meter = report.LoadMeter()
    gc.collect()
    for repeat, order in enumerate(runtime._rotations(list(modes), settings.repeats)):
        for name in order:
            runtime._settle(settings.settle)
            loads[name].append(_one_load(settings, rt, path, modes[name], seed=10 + repeat))
    foreign = meter.foreign_percent()
    found: dict[str, Any] = {}
    for name, runs in loads.items():
        rows = []
        for index, (height, width) in enumerate(settings.new_shapes):
            per_load = [run["shapes"][index] for run in runs]
            first = [entry["first_ms"] for entry in per_load]
            cached = [entry["cached_ms"] for entry in per_load]
            rows.append(
                {
                    "shape": [1, 3, height, width],
                    "first_ms": float(np.median(first)),
                    "cached_ms": float(np.median(cached)),
                    "extra_first_ms": float(np.median([f - c for f, c in zip(first, cached)])),
                    "first_ms_per_load": first,
                    "cached_ms_per_load": cached,
                    "first_was_miss": all(entry["first_was_miss"] for entry in per_load),
                    "second_run_hit": all(entry["later_were_hits"] for entry in per_load),
                }
            )
        last = runs[-1]
        found[name] = {
            "static_shapes": modes[name],
            "input": "float32 NCHW (no conversion)",
            "loads": len(runs),
            "cached_runs": settings.cached_runs,
            "load_ms": [run["load_ms"] for run in runs],
            "shapes": rows,
            "profile_shapes": last["profile_shapes"],
            "compile_ms": last["compile_ms"],
            "cache_info": last["cache_info"],
        }
    result: dict[str, Any] = {"modes": found, "foreign_cpu_percent": foreign}
    if "static" in found:
        dynamic, static = found["dynamic"]["shapes"], found["static"]["shapes"]
        result["static_vs_dynamic"] = {
            "first_ms_ratio": float(
                np.median([s["first_ms"] / d["first_ms"] for s, d in zip(static, dynamic)])
            ),
            "cached_ms_ratio": float(
                np.median([s["cached_ms"] / d["cached_ms"] for s, d in zip(static, dynamic)])
            ),
        }
    for name in modes:
        rows = found[name]["shapes"]
        log(
            f"new shapes ({name}): first "
            + ", ".join(f"{r['first_ms']:.1f}" for r in rows)
            + " ms; cached "
            + ", ".join(f"{r['cached_ms']:.1f}" for r in rows)
            + f" ms{runtime._load_note(foreign)}",
        )
    return result


# -- one backend, every backend ----------------------------------------------------------------
class _Log:
    """Progress lines like the runtime section's: ``[backend frames  12.3 s] ...``."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.started = time.perf_counter()

    def __call__(self, what: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"  [{self.backend} frames {elapsed:6.1f} s] {what}", flush=True)


def bench_backend(settings: FrameSettings, backend: str, built: FramesModel) -> dict[str, Any]:
    from atriva_inference import InferenceRuntime

    log = _Log(backend)
    result: dict[str, Any] = {"backend": backend, "device": "CPU"}
    with InferenceRuntime(backend) as rt:
        model = rt.load_model(built.path, device="CPU")
        runtime._require_fp32(model)
        raw = RAW[backend](built.path)
        try:
            result.update(
                precision=model.precision,
                raw=RAW_CALLS[backend],
                raw_precision_hint=raw.precision_hint,
                model_input=str(model.inputs[0]),
            )
            result["camera"] = _camera(settings, log, model, rt, raw, seed=1)
            result["camera_profile_shapes"] = [
                asdict(record) for record in model.get_profiling().shapes
            ]
        finally:
            raw.close()
            model.close()
        gc.collect()
        result["shapes"] = _new_shapes(settings, log, rt, built.path)
    return result


def run_frames(settings: FrameSettings, backends: Sequence[str]) -> dict[str, Any]:
    """Build the model, measure every usable backend; returns what goes under ``"frames"``
    and the section's checks (``"checks"``)."""
    from atriva_inference import available_backends

    started = time.perf_counter()
    usable = {status.name: status for status in available_backends()}
    found: dict[str, Any] = {
        "settings": asdict(settings),
        "targets": {
            "ingraph_over_numpy_max": INGRAPH_RATIO_MAX,
            "agreement_relative_max": AGREEMENT_REL_MAX,
        },
        "backends": {},
        "skipped": {},
    }
    with tempfile.TemporaryDirectory(prefix="atriva-bench-frames-") as directory:
        built = build_frames_model(
            directory, blocks=settings.blocks, width=settings.width, classes=settings.classes
        )
        found["model"] = built.describe()
        print(
            f"frames model: {built.name} ({built.conv_count} Conv, "
            f"{built.parameters / 1e6:.2f} M parameters, input float32[1, 3, height, width] "
            f"NCHW); frames uint8 HWC " + ", ".join(f"{h}x{w}" for h, w in settings.resolutions),
            flush=True,
        )
        for backend in backends:
            status = usable.get(backend)
            if status is None or not status.usable:
                reason = getattr(status, "reason", None) or "not available"
                found["skipped"][backend] = reason
                print(f"== frames, {backend}: skipped ({reason})", flush=True)
                continue
            found["backends"][backend] = bench_backend(settings, backend, built)
            gc.collect()
    found["checks"] = frames_checks(found)
    found["elapsed_s"] = time.perf_counter() - started
    return runtime._jsonable(found)


# -- checks, tables ----------------------------------------------------------------------------
def frames_checks(found: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for backend, result in found["backends"].items():
        for key, camera in result["camera"].items():
            checks.append(
                runtime._check(
                    backend,
                    f"frames {key}: in-graph / numpy path (median, paired)",
                    camera["ratios"]["ingraph_over_numpy"]["paired"],
                    "<=",
                    INGRAPH_RATIO_MAX,
                )
            )
            relative = camera["agreement"]["relative_ingraph_vs_numpy"]
            check = runtime._check(
                backend,
                f"frames {key}: |in-graph - numpy| / max|out|",
                relative,
                "<=",
                AGREEMENT_REL_MAX,
            )
            check["shown"] = f"{relative:.2e}"
            checks.append(check)
        for mode, entry in result["shapes"]["modes"].items():
            rows = entry["shapes"]
            good = sum(1 for row in rows if row["first_was_miss"] and row["second_run_hit"])
            checks.append(
                runtime._check(
                    backend,
                    f"new shapes ({mode}): 1st run a miss, later runs hits",
                    good,
                    ">=",
                    len(rows),
                    "shapes",
                    0,
                )
            )
    for check in checks:
        check["section"] = "frames"
    return checks


def frames_tables(found: dict[str, Any]) -> str:
    lines = []
    model = found["model"]
    settings = found["settings"]
    for backend, result in found["backends"].items():
        lines.append(
            f"== frames: {backend} (CPU, ours {result['precision']}; raw {RAW_CALLS[backend]}, "
            f"f32; {model['name']}, float32[1, 3, height, width]; interleaved rounds) =="
        )
        lines.append(
            "1. camera frames, uint8 HWC -> float NCHW model (ms per frame; ratios to the "
            "numpy path ours: of medians / paired)"
        )
        rows = []
        for key, camera in result["camera"].items():
            variants = camera["variants"]
            base = variants["ours_numpy"]["median_ms"]
            for name, s in variants.items():
                paired = None
                if name == "ours_ingraph":
                    paired = camera["ratios"]["ingraph_over_numpy"]["paired"]
                rows.append(
                    [
                        key,
                        LABELS[name].format(raw=RAW_CALLS[backend]),
                        s["median_ms"],
                        s["p90_ms"],
                        s["median_ms"] / base,
                        paired,
                        f"{camera['calls_per_round']}x{camera['rounds']}",
                    ]
                )
        headers = ["frame", "variant", "median ms", "p90 ms", "/ numpy", "paired", "calls"]
        lines.append(report.table(headers, rows, "   "))
        for key, camera in result["camera"].items():
            agreement = camera["agreement"]
            lines.append(
                f"   {key}: outputs max |in-graph - numpy| "
                f"{agreement['max_abs_diff_ingraph_vs_numpy']:.3g}, |in-graph - raw| "
                f"{agreement['max_abs_diff_ingraph_vs_raw']:.3g} (outputs up to "
                f"{agreement['output_max_abs']:.3g}); first in-graph run "
                f"{camera['first_ingraph_ms']:.1f} ms"
                f"{runtime._load_note(camera['foreign_cpu_percent'])}"
            )
        shapes = result["shapes"]
        lines.append(
            f"2. new shapes, float32 NCHW (first run at a shape vs the median of the "
            f"{settings['cached_runs']} after it; median of {settings['repeats']} fresh "
            f"load(s)){runtime._load_note(shapes['foreign_cpu_percent'])}"
        )
        rows = []
        for mode, entry in shapes["modes"].items():
            records = {tuple(r["shapes"][0]): r for r in entry["profile_shapes"]}
            for row in entry["shapes"]:
                record = records.get(tuple(row["shape"]), {})
                rows.append(
                    [
                        mode,
                        f"{row['shape'][2]}x{row['shape'][3]}",
                        row["first_ms"],
                        row["cached_ms"],
                        row["extra_first_ms"],
                        record.get("compile_ms"),
                        record.get("first_call_ms"),
                        record.get("specialized"),
                        row["first_was_miss"] and row["second_run_hit"],
                    ]
                )
        headers = [
            "mode",
            "shape",
            "first ms",
            "cached ms",
            "extra ms",
            "prep ms",
            "rec 1st ms",
            "own compile",
            "miss->hit",
        ]
        lines.append(report.table(headers, rows, "   "))
        lines.append(
            "   (prep ms, rec 1st ms, own compile: get_profiling().shapes of the last load)"
        )
        if "static_vs_dynamic" in shapes:
            vs = shapes["static_vs_dynamic"]
            lines.append(
                f"   static_shapes=True vs dynamic: first run x{vs['first_ms_ratio']:.2f}, "
                f"cached runs x{vs['cached_ms_ratio']:.2f}"
            )
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------------------
def _base_document(argv: Sequence[str] | None) -> dict[str, Any]:
    """The JSON's frame when the runtime section did not run (and write one)."""
    return {
        "schema": runtime.SCHEMA,
        "command": ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)],
        "machine": report.machine(),
        "versions": report.versions(),
        "backends": {},
        "skipped": {},
        "checks": [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks``: the sections ``--sections`` names, into one JSON."""
    args = runtime.parse_args(argv)
    status = 0
    document: dict[str, Any] | None = None
    if "runtime" in args.sections:
        status = runtime.main(argv)
        print(flush=True)
        with open(args.json, encoding="utf-8") as written:
            document = json.load(written)
    if "frames" not in args.sections:
        return status
    if document is None:
        document = _base_document(argv)
        print(
            f"atriva-inference benchmark, frames section{' -- quick' if args.quick else ''}\n"
            f"machine: {document['machine']['cpu']}, {document['machine']['cores']} cores; "
            + ", ".join(
                f"{name} {version or 'absent'}" for name, version in document["versions"].items()
            ),
            flush=True,
        )
    settings = FrameSettings.make(
        quick=args.quick, model=args.model, seconds=args.seconds, rounds=args.rounds
    )
    found = run_frames(settings, args.backends)
    print(frames_tables(found) + "\n", flush=True)
    checks = found.pop("checks")
    document["sections"] = list(args.sections)
    document["frames"] = found
    document["checks"] = [*document.get("checks", []), *checks]
    misses = [c for c in checks if c["result"] != "PASS"]
    print("== frames checks ==")
    print(runtime.checks_table(checks))
    noisy = _noisy(found)
    print(
        f"\nframes: {len(checks) - len(misses)} PASS, {len(misses)} MISS; "
        f"{found['elapsed_s']:.1f} s"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    if noisy:
        print(
            "WARNING: other processes used the CPU while these were measured: "
            + ", ".join(noisy)
            + ". Their figures are skewed; rerun on a quiet machine."
        )
    print(f"wrote {args.json}")
    return 1 if (status or (args.strict and misses)) else 0


def _noisy(found: dict[str, Any]) -> list[str]:
    noisy = []
    for backend, result in found["backends"].items():
        parts = [(f"frames {key}", c["foreign_cpu_percent"]) for key, c in result["camera"].items()]
        parts.append(("new shapes", result["shapes"]["foreign_cpu_percent"]))
        for what, foreign in parts:
            if foreign is not None and foreign > runtime.FOREIGN_WARN_PERCENT:
                noisy.append(f"{backend} {what} ({foreign:.0f}%)")
    return noisy
