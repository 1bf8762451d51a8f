"""``quantize``: frames in, a guarded INT8 model out (see the package docstring)."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._layouts import wanted_layout
from ..errors import BackendUnavailableError, InvalidInputError, ModelLoadError
from ..runtime import InferenceRuntime
from ..tensor import TensorInfo
from .calibration import MIN_HELD_OUT, FramePlan, split_frames
from .compare import METRICS, Decoder, compare, resolve_decoder
from .quantizers import INSTALL_HINT, quantize_nncf, quantize_onnxruntime
from .report import QuantReport

__all__ = ["BACKENDS", "ProgressFn", "default_output", "quantize"]

#: The backends that quantize, and the file each writes.
BACKENDS = {"openvino": ".xml", "onnxruntime": ".onnx"}

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``stage`` is ``"calibrating"`` (calibration samples
consumed), a later stage of NNCF's under its own name (e.g. ``"applying fast bias
correction"``), or ``"comparing"`` (held-out frames run through both models); ``total`` 0
when not known beforehand."""


def default_output(model_path: str | os.PathLike[str], backend: str) -> Path:
    """``<stem>-int8.xml`` (openvino) or ``<stem>-int8.onnx`` next to the model."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}-int8{BACKENDS[backend]}")


def _choose_backend(path: Path, backend: str | None) -> str:
    suffix = path.suffix.lower()
    if backend is None:
        return "onnxruntime" if suffix == ".onnx" else "openvino"
    if backend not in BACKENDS:
        raise InvalidInputError(
            f"backend: expected one of {', '.join(BACKENDS)} (the backends that quantize), "
            f"got {backend!r}"
        )
    if backend == "onnxruntime" and suffix != ".onnx":
        raise InvalidInputError(
            f"backend 'onnxruntime' quantizes ONNX models (.onnx), got '{path.name}': use "
            f"backend='openvino' (NNCF, for anything OpenVINO reads) or export ONNX"
        )
    return backend


def _require_tools(backend: str) -> None:
    """Fail before reading any frame when the quantizer is not installed."""
    needed = ("nncf", "openvino") if backend == "openvino" else ("onnx", "onnxruntime")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise BackendUnavailableError(
            f"quantizing for {backend} needs {' and '.join(missing)}, not installed: {INSTALL_HINT}"
        )


def _positive_int(value: Any, what: str, least: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise InvalidInputError(f"{what}: expected an integer >= {least}, got {value!r}")
    return value


def quantize(
    model_path: str | os.PathLike[str],
    frames: str | os.PathLike[str] | Sequence[np.ndarray],
    output: str | os.PathLike[str] | None = None,
    *,
    backend: str | None = None,
    device: str = "CPU",
    layout: str | None = None,
    mean: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    shape: Sequence[int] | None = None,
    subset_size: int = 300,
    held_out: int = 50,
    max_drop: float | None = None,
    min_speedup: float | None = 1.0,
    metric: str = "cosine",
    decode: Decoder | str | None = None,
    progress: ProgressFn | None = None,
) -> QuantReport:
    """Quantize a one-input image model to INT8 from real frames and check it against f32.

    ``frames``: a folder of images, a video file, or a sequence of uint8 HWC RGB arrays.
    ``subset_size`` frames calibrate, up to ``held_out`` others (at least 4) check the
    result. ``layout``/``mean``/``scale`` are what you pass to ``load_model`` in production
    (the model's layout where it does not say; ``(x - mean) / scale`` per channel):
    calibration sees exactly the values the model will see. ``shape``: the input shape to
    calibrate at, in the model's layout (e.g. ``(1, 3, 320, 320)``); frames are resized to
    its height and width. Without it, frames are resized to the model's declared size, or go
    at their own size where it is dynamic.

    ``backend``: ``"openvino"`` (NNCF, writes IR ``.xml``/``.bin``; reads anything OpenVINO
    reads) or ``"onnxruntime"`` (``onnxruntime.quantization``, U8S8 per-channel QDQ, writes
    ``.onnx``); by default ``onnxruntime`` for ``.onnx`` files and ``openvino`` otherwise.
    ``output`` defaults to ``<stem>-int8.xml``/``.onnx`` next to the model.

    ``metric``: ``"cosine"``, ``"top1"`` or ``"iou"`` (needs ``decode``: ``"centerface"``,
    ``"tf-od"``, or a callable ``(outputs, frame) -> Detections``). ``max_drop``: the largest
    ``1 - value`` that passes. ``min_speedup``: the least ``f32_ms / int8_ms`` that passes
    (1.0: INT8 must not be slower; ``None`` or 0: speed not guarded). The report's
    ``passed`` is False (with ``reasons``) when INT8 is slower than that or the drop is over
    ``max_drop``; a failed guard never raises, the INT8 file is written either way. Bad
    arguments raise ``InvalidInputError``, a missing quantizer ``BackendUnavailableError``,
    an unreadable model ``ModelLoadError``.
    """
    started = time.perf_counter()
    if not isinstance(model_path, (str, os.PathLike)):
        raise InvalidInputError(f"model_path: expected a path, got {type(model_path).__name__}")
    path = Path(model_path)
    if not path.exists():
        raise ModelLoadError(f"model file '{path}' does not exist")
    if metric not in METRICS:
        raise InvalidInputError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    decoder = resolve_decoder(decode, metric)
    subset_size = _positive_int(subset_size, "subset_size")
    held_out = _positive_int(held_out, "held_out", MIN_HELD_OUT)
    if max_drop is not None and (
        isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not max_drop >= 0
    ):
        raise InvalidInputError(f"max_drop: expected a number >= 0 or None, got {max_drop!r}")
    if min_speedup is not None and (
        isinstance(min_speedup, bool)
        or not isinstance(min_speedup, (int, float))
        or not min_speedup >= 0
    ):
        raise InvalidInputError(f"min_speedup: expected a number >= 0 or None, got {min_speedup!r}")
    if shape is not None and (
        isinstance(shape, (str, bytes))
        or len(shape) != 4
        or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape)
    ):
        raise InvalidInputError(
            f"shape: expected the input's 4 dims in the model's layout, such as (1, 3, 320, "
            f"320), got {shape!r}"
        )
    chosen = _choose_backend(path, backend)
    target = Path(output) if output is not None else default_output(path, chosen)
    if target.suffix.lower() != BACKENDS[chosen]:
        raise InvalidInputError(
            f"output: backend '{chosen}' writes a {BACKENDS[chosen]} file, got '{target.name}'"
        )
    if target.resolve() == path.resolve():
        raise InvalidInputError(f"output: expected a new file, got the model itself '{target}'")
    if not target.parent.is_dir():
        raise InvalidInputError(f"output {target}: the folder '{target.parent}' does not exist")
    _require_tools(chosen)

    load = {"device": device, "layout": layout, "mean": mean, "scale": scale}
    with InferenceRuntime(backend=chosen) as runtime:
        # ONNX: the declared input read from the file, so a model that needs its dims freed
        # compiles once, freed (ONNX Runtime also warns about old exporters' quirks on the
        # declared graph). Other formats: as the backend loads them.
        inputs = _onnx_inputs(path) if path.suffix.lower() == ".onnx" else None
        f32 = None
        if inputs is None:
            f32 = runtime.load_model(path, **load)
            inputs = f32.inputs
        plan = _plan(path, inputs, layout, mean, scale, shape)
        if f32 is None or not plan.fits:  # the declared dims refuse the frames: free them
            if f32 is not None:
                f32.close()
            f32 = runtime.load_model(path, dynamic=not plan.fits, **load)
        info = f32.inputs[0]
        # Frames are resized (and made grayscale for a 1-channel input) as they are read:
        # only subset_size + held_out frames of the model's size are held. Calibration
        # tensors are made one at a time as the quantizer asks for them.
        split = split_frames(frames, subset_size, held_out, convert=plan.frame)
        quantizer = quantize_nncf if chosen == "openvino" else quantize_onnxruntime
        quantizer(
            path,
            target,
            info.name,
            split.calibration,
            plan.tensor,
            free_dims=None if plan.fits else plan.layout,
            progress=progress,
        )
        quantized_at = time.perf_counter()
        int8 = runtime.load_model(target, dynamic=not plan.fits, **load)
        shown = split.held_out
        feeds = [runtime.tensor_from_numpy(frame, layout="HWC") for frame in shown]
        result = compare(
            f32,
            int8,
            feeds,
            shown,
            metric=metric,
            decode=decoder,
            progress=None if progress is None else partial(progress, "comparing"),
        )
        quantization = getattr(int8, "quantization", None)
        report = QuantReport(
            model=str(path),
            output=str(target),
            backend=chosen,
            device=int8.device,
            calibration_frames=len(split.calibration),
            held_out_frames=len(split.held_out),
            input_shape=list(plan.shape),
            f32_ms=result.f32_ms,
            int8_ms=result.int8_ms,
            speedup=result.speedup,
            metric=metric,
            value=result.value,
            drop=max(0.0, 1.0 - result.value),
            max_drop=None if max_drop is None else float(max_drop),
            min_speedup=float(min_speedup or 0.0),
            max_abs_diff=result.max_abs_diff,
            max_rel_diff=result.max_rel_diff,
            quantization=None if quantization is None else str(quantization),
            int8_layers=getattr(quantization, "int8_layers", None),
            compute_layers=getattr(quantization, "compute_layers", None),
            f32_precision=f32.precision,
            int8_precision=int8.precision,
            quantize_s=quantized_at - started,
        )
    report.reasons = _guard(report)
    report.passed = not report.reasons
    return report


def _onnx_inputs(path: Path) -> list[TensorInfo] | None:
    """The graph inputs an ONNX file declares (initializers excepted), ``None`` when it
    cannot be read here (the backend's load then says why)."""
    try:
        import onnx
        from onnx.helper import tensor_dtype_to_np_dtype

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # no onnx, or not ONNX after all: the backend's own load reports it
        return None
    weights = {initializer.name for initializer in graph.initializer}
    inputs = []
    for value in graph.input:
        if value.name in weights:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        inputs.append(TensorInfo(value.name, dims, tensor_dtype_to_np_dtype(tensor.elem_type)))
    return inputs


def _plan(
    path: Path,
    inputs: Sequence[TensorInfo],
    layout: str | None,
    mean: Sequence[float] | None,
    scale: Sequence[float] | None,
    shape: Sequence[int] | None,
) -> FramePlan:
    if len(inputs) != 1:
        raise InvalidInputError(
            f"quantize calibrates models with one image input, '{path.name}' has "
            f"{len(inputs)}: {', '.join(info.name for info in inputs)}"
        )
    info = inputs[0]
    wanted = wanted_layout(info, {"*": layout} if layout else {})
    if wanted is None:
        raise InvalidInputError(
            f"input '{info.name}' {list(info.shape or [])}: its layout is unknown; pass "
            f"layout='NCHW' or 'NHWC'"
        )
    return FramePlan(info, wanted, mean=mean, scale=scale, shape=shape)


def _guard(report: QuantReport) -> list[str]:
    """Why the INT8 model is refused, one line per reason (empty: it passes)."""
    reasons = []
    if report.speedup < report.min_speedup:
        wanted = "" if report.min_speedup == 1 else f" (min speed-up {report.min_speedup:g}x)"
        slower = "slower than" if report.speedup < 1 else "not enough faster than"
        reasons.append(
            f"INT8 is {slower} f32: {report.int8_ms:.2f} ms vs {report.f32_ms:.2f} ms "
            f"({1 / report.speedup:.2f}x the f32 time){wanted}"
        )
    if report.max_drop is not None and report.drop > report.max_drop:
        reasons.append(
            f"the {report.metric} drop {report.drop:.4g} is over max_drop {report.max_drop:g} "
            f"({report.metric} {report.value:.4f} on {report.held_out_frames} held-out frames)"
        )
    if report.int8_layers == 0 and report.compute_layers:
        reasons.append(
            f"nothing runs INT8: 0 of {report.compute_layers} compute layers of "
            f"'{report.output}' (the backend kept every layer in float)"
        )
    elif report.int8_layers == 0:  # quantized, but the backend could not tell what runs INT8
        reasons.append(f"could not tell what runs INT8 in '{report.output}': {report.quantization}")
    return reasons
