"""Precision and typing: how a TensorRT network is created and built for the
``precision=`` asked, decided by feature (which ``BuilderFlag`` members this TensorRT has),
not by version. Pure decisions over enum member names, tested without TensorRT.

TensorRT 11 removed weak typing (``BuilderFlag.FP16/BF16/INT8/...``, INT8 calibration): every
network is strongly typed and runs the model's own types. So ``precision=None`` builds the
model as it is on both versions; ``"INT8"`` is an explicitly quantized (Q/DQ) model;
``"FP16"``/``"BF16"`` for an FP32 model are builder flags on TensorRT 10 and refused on 11,
saying how to convert the model.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from ...errors import DeviceUnavailableError, InvalidInputError, ModelLoadError

__all__ = [
    "PRECISIONS",
    "BuildPlan",
    "has_fast_fp16",
    "is_quantized",
    "model_precision",
    "network_creation_flags",
    "plan_build",
    "weak_typing",
]

#: What ``precision=`` may ask of TensorRT (INT8: explicitly quantized, Q/DQ, models).
PRECISIONS = ("FP32", "FP16", "BF16", "INT8")


def weak_typing(builder_flags: Collection[str]) -> bool:
    """Whether this TensorRT can lower precision by builder flag (TensorRT 10 can; 11
    removed ``BuilderFlag.FP16`` with the rest of weak typing). ``builder_flags``: the
    member names of ``trt.BuilderFlag``."""
    return "FP16" in builder_flags


def has_fast_fp16(compute_capability: tuple[int, int]) -> bool:
    """Native fast FP16 by compute capability: 5.3 and newer except 6.1 (consumer Pascal,
    1/64 rate). Replaces ``Builder.platform_has_fast_fp16``, deprecated in TensorRT 10.5
    ("query data type support from CUDA directly") and removed in 11."""
    major, minor = compute_capability
    return (major, minor) >= (5, 3) and (major, minor) != (6, 1)


def _requested_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    text = str(precision).upper()
    if text not in PRECISIONS:
        raise InvalidInputError(
            f"precision: expected None or one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return text


def network_creation_flags(
    precision: str | None,
    builder_flags: Collection[str],
    network_flags: Collection[str],
) -> tuple[str, ...]:
    """The ``NetworkDefinitionCreationFlag`` member names to create the network with.

    Strong typing (the model's own types) for ``None`` and ``"INT8"`` (a Q/DQ model) where
    the builder still has weak typing (TensorRT 10) and offers ``STRONGLY_TYPED``; nothing
    where weak typing is gone (TensorRT 11: always strongly typed, the flag deprecated and
    ignored) or where a reduced precision is asked by builder flag (TensorRT 10 refuses
    precision flags on strongly typed networks). Raises ``InvalidInputError`` for an
    unknown precision.
    """
    requested = _requested_precision(precision)
    if not weak_typing(builder_flags):
        return ()
    if requested in (None, "INT8") and "STRONGLY_TYPED" in network_flags:
        return ("STRONGLY_TYPED",)
    return ()


_QDQ_LAYERS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def is_quantized(tensors: Iterable[tuple[str, str]]) -> bool:
    """Whether a network has Q/DQ layers. ``tensors``: ``(layer type name, dtype name)``
    for each layer output (``trt.LayerType`` and ``trt.DataType`` member names)."""
    return any(layer in _QDQ_LAYERS for layer, _ in tensors)


def model_precision(tensors: Iterable[tuple[str, str]]) -> str:
    """The precision a strongly typed network computes in, from the dtypes of its tensors.

    ``tensors``: ``(layer type name, dtype name)`` per network input (layer ``"INPUT"``)
    and layer output. ``"INT8"`` for a model quantizing to INT8 (Q/DQ layers), else the
    reduced float type it uses anywhere (``"FP16"``, then ``"BF16"``: a mixed-precision
    model from AutoCast keeps some FP32 layers and is still an FP16 model), else
    ``"FP32"``.
    """
    pairs = list(tensors)
    if any(layer == "QUANTIZE" and dtype == "INT8" for layer, dtype in pairs):
        return "INT8"
    dtypes = {dtype for _, dtype in pairs}
    for dtype, precision in (("HALF", "FP16"), ("BF16", "BF16")):
        if dtype in dtypes:
            return precision
    return "FP32"


@dataclass(frozen=True)
class BuildPlan:
    """How to build: the precision the model reports and the builder flags to change."""

    precision: str
    set_flags: tuple[str, ...] = ()
    clear_flags: tuple[str, ...] = ()


def _convert_hint(precision: str) -> str:
    """How to get a model that computes in ``precision`` (FP16/BF16) from an FP32 one."""
    autocast = (
        "python -m modelopt.onnx.autocast --onnx_path model.onnx --output_path "
        f"model_{precision.lower()}.onnx"
        + (" --low_precision_type bf16" if precision == "BF16" else "")
    )
    converter = (
        "; or onnxconverter-common: float16.convert_float_to_float16(onnx.load('model.onnx'))"
        if precision == "FP16"
        else ""
    )
    return (
        f"convert the model to {precision} beforehand (NVIDIA ModelOpt AutoCast: {autocast}"
        f"{converter}) and load the converted model, or load this one with precision=None"
    )


def plan_build(
    precision: str | None,
    *,
    builder_flags: Collection[str],
    strongly_typed: bool,
    network_precision: str,
    quantized: bool,
    compute_capability: tuple[int, int],
    gpu_name: str = "this GPU",
    model_name: str = "the model",
    tensorrt_version: str = "",
) -> BuildPlan:
    """The build for ``precision`` on this TensorRT, or the error saying why there is none.

    ``builder_flags``: the member names of ``trt.BuilderFlag`` (what this TensorRT can do);
    ``strongly_typed``: how the network was created (:func:`network_creation_flags`);
    ``network_precision``/``quantized``: what the parsed network computes in
    (:func:`model_precision`, :func:`is_quantized`).

    * Strongly typed (``None``, ``"INT8"``; every precision on TensorRT 11): the model runs
      its own types. ``None`` reports them; ``"INT8"`` needs INT8 Q/DQ layers
      (``ModelLoadError``: calibration is not supported); ``"FP32"``/``"FP16"``/``"BF16"``
      are accepted when the model already computes in them, else refused with
      ``DeviceUnavailableError`` saying how to convert the model.
    * Weakly typed (``"FP32"``/``"FP16"``/``"BF16"`` on TensorRT 10): the builder flag of
      the precision, plus ``INT8`` for a Q/DQ model (for weakly typed networks the developer
      guide requires the INT8 flag for any quantization operation). FP16 needs fast native
      FP16, BF16 an Ampere GPU.

    TF32 is cleared unless FP16/BF16 was asked for: TensorRT allows TF32 (10-bit mantissa)
    in FP32 layers by default, and FP32 means FP32 here.
    """
    requested = _requested_precision(precision)
    major, minor = compute_capability
    trt_name = f"TensorRT {tensorrt_version}".strip()
    if requested == "BF16" and (major, minor) < (8, 0):
        raise DeviceUnavailableError(
            f"precision BF16 needs compute capability 8.0 (Ampere) or newer, {gpu_name} "
            f"has {major}.{minor}: load with precision='FP16' or None"
        )
    clear = ("TF32",) if "TF32" in builder_flags and requested not in ("FP16", "BF16") else ()
    if requested == "INT8" or (strongly_typed and requested is None):
        if requested == "INT8" and network_precision != "INT8":
            raise ModelLoadError(
                f"precision INT8 needs an explicitly quantized model (QuantizeLinear/"
                f"DequantizeLinear nodes to INT8), and {model_name} has none: INT8 "
                f"calibration is not supported (TensorRT 11 removed it); quantize the model "
                f"first (e.g. NVIDIA TensorRT Model Optimizer, or onnxruntime.quantization "
                f"with QDQ format), or load with precision=None"
            )
        if strongly_typed:
            return BuildPlan(network_precision, (), clear)
        # No strong typing on offer (TensorRT before 9): Q/DQ layers need the INT8 flag.
        return BuildPlan(network_precision, ("INT8",) if quantized else (), clear)
    if strongly_typed and requested is not None:  # (None was built as it is, above)
        if network_precision != requested:
            remedy = (
                _convert_hint(requested)
                if requested in ("FP16", "BF16") and network_precision == "FP32"
                else f"load it with precision=None to run it in {network_precision}"
            )
            raise DeviceUnavailableError(
                f"precision {requested} is not offered by {trt_name} for {model_name}, which "
                f"computes in {network_precision}: this TensorRT builds strongly typed "
                f"networks only (TensorRT 11 removed the FP16/BF16 builder flags) and runs "
                f"the model's own types; {remedy}"
            )
        return BuildPlan(requested, (), clear)
    # Weak typing (TensorRT 10): the model's types are hints, the flags allow more.
    requested = requested or "FP32"
    if requested == "FP16" and not has_fast_fp16(compute_capability):
        raise DeviceUnavailableError(
            f"precision FP16 is not offered by TensorRT on {gpu_name} (compute capability "
            f"{major}.{minor}): it has no fast native FP16; load with precision=None"
        )
    if requested == "BF16" and "BF16" not in builder_flags:
        raise DeviceUnavailableError(
            f"precision BF16 needs a TensorRT with BuilderFlag.BF16, which {trt_name} lacks: "
            f"load with precision='FP16' or None"
        )
    flags = (requested,) if requested in ("FP16", "BF16") else ()
    if quantized:
        flags += ("INT8",)
    return BuildPlan(requested, flags, clear)
