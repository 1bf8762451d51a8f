"""How much of a loaded model really runs in INT8, decided the same way for every backend.

Backends report facts about the graph they really execute (OpenVINO: each layer's
``runtimePrecision`` in the compiled model's runtime graph; ONNX Runtime: the operators of
the optimized graph). This module turns those facts into a :class:`Quantization`, the model's
truthful precision label, the warning for a "quantized" model that runs mostly in float, and
the error for ``precision="INT8"`` on a model with no INT8 layer.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ModelLoadError

__all__ = [
    "MOSTLY_FLOAT_FRACTION",
    "Quantization",
    "QuantizationWarning",
    "label",
    "not_quantized_error",
    "summarize",
    "unknown",
    "warn_about_quantization",
]

#: Below this fraction of compute layers in INT8 a quantized model is reported as running
#: mostly in float: little to gain, and Q/DQ (FakeQuantize) steps around float layers can
#: cost more (issue 14: ORT S8S8 QDQ PP-LCNet, 4 of 32 convolutions INT8, 4.1x slower).
MOSTLY_FLOAT_FRACTION = 0.5

_QUANTIZE_HINT = "atriva-infer quantize MODEL --frames DIR"
#: Why nothing was counted in a quantized graph whose layers we could read: e.g. Q/DQ only
#: around other operators, or a plugin (GPU, NPU) naming its layers otherwise.
_NO_COMPUTE_LAYER = (
    "no compute layer (convolution, matrix multiplication) recognised in the executed graph"
)


@dataclass(frozen=True)
class Quantization:
    """How much of a loaded model really runs in INT8."""

    #: Compute layers (Convolution, GroupConvolution, MatMul, FullyConnected, Gemm, ...) whose
    #: kernels really run INT8 (OpenVINO runtimePrecision i8/u8; ONNX Runtime QLinearConv,
    #: QLinearMatMul, QGemm, ConvInteger, MatMulInteger in the optimized graph).
    int8_layers: int
    #: All compute layers of the executed graph.
    compute_layers: int
    #: What the remaining float layers run in: "FP32", "BF16", "FP16".
    float_precision: str
    #: Why the executed graph could not tell which compute layers run INT8 (it could not be
    #: read, or none of its layers is a compute layer we know); empty when they were counted.
    unknown: str = ""

    @property
    def known(self) -> bool:
        """The compute layers were counted: ``int8_layers`` and ``compute_layers`` are facts."""
        return not self.unknown and self.compute_layers > 0

    @property
    def fraction(self) -> float:
        """``int8_layers / compute_layers`` (0.0 when nothing was counted)."""
        return self.int8_layers / self.compute_layers if self.compute_layers else 0.0

    @property
    def mostly_float(self) -> bool:
        """Fewer than half the compute layers run INT8 (False when nothing was counted:
        that is not known either)."""
        return self.known and self.fraction < MOSTLY_FLOAT_FRACTION

    def __str__(self) -> str:
        if not self.known:
            return f"unknown how much runs INT8: {self.unknown or _NO_COMPUTE_LAYER}"
        if self.int8_layers == self.compute_layers:
            return f"all {self.compute_layers} compute layers in INT8"
        if self.int8_layers == 0:
            return (
                f"0 of {self.compute_layers} compute layers in INT8, all in {self.float_precision}"
            )
        return (
            f"{self.int8_layers} of {self.compute_layers} compute layers in INT8, "
            f"the rest in {self.float_precision}"
        )


class QuantizationWarning(UserWarning):
    """A quantized model whose compute layers run mostly in float (it gains little over its
    float original and can be slower: quantize/dequantize steps around float layers), or
    one whose executed graph could not tell what runs INT8."""


def summarize(
    layers: Iterable[tuple[bool, str]],
    *,
    quantized_graph: bool,
    default_float: str,
    asked: bool = False,
) -> Quantization | None:
    """A :class:`Quantization` from the executed graph's compute layers.

    ``layers``: one ``(runs_int8, float_precision)`` per compute layer (``float_precision``
    is ignored for INT8 layers). ``quantized_graph``: the graph carries quantization
    (Q/DQ, FakeQuantize, integer operators) even where no compute layer runs INT8.
    ``default_float``: the float precision when no compute layer runs in float (the
    precision hint in effect). ``asked``: ``precision="INT8"`` was asked, so a float graph's
    layers are counted too (the refusal says how many run float). ``None`` for a float
    model: no INT8 layer, nothing quantized. A quantized graph without a compute layer we
    know gives an unknown :class:`Quantization` (never "all 0 layers in INT8").
    """
    int8 = 0
    floats: Counter[str] = Counter()
    for runs_int8, precision in layers:
        if runs_int8:
            int8 += 1
        else:
            floats[precision] += 1
    compute = int8 + sum(floats.values())
    if not int8 and not quantized_graph and not (asked and compute):
        return None
    float_precision = floats.most_common(1)[0][0] if floats else default_float
    if not compute:
        return unknown(float_precision, _NO_COMPUTE_LAYER)
    return Quantization(int8, compute, float_precision)


def unknown(float_precision: str, why: str) -> Quantization:
    """A quantized model whose INT8 layers could not be counted, and why."""
    return Quantization(0, 0, float_precision, unknown=why)


def label(quantization: Quantization | None, float_precision: str) -> str:
    """The model's precision: ``"INT8"`` when INT8 kernels run, else its float precision."""
    if quantization is not None and quantization.int8_layers > 0:
        return "INT8"
    return float_precision


def warn_about_quantization(quantization: Quantization | None, path: str, backend: str) -> None:
    """Warn (:class:`QuantizationWarning`) when a quantized model runs mostly in float, or
    when what it runs in INT8 could not be told."""
    if quantization is None:
        return
    if not quantization.known:
        message = (
            f"'{path}' is quantized (Q/DQ or FakeQuantize found), but could not tell what "
            f"runs INT8 on {backend}: {quantization.unknown or _NO_COMPUTE_LAYER}; it is "
            f"reported as {quantization.float_precision} (no INT8 layer confirmed), though "
            f"INT8 kernels may run"
        )
    elif quantization.mostly_float:
        message = (
            f"'{path}' is quantized, but on {backend} only {quantization}: it gains little "
            f"over its float model and can be slower (quantize/dequantize steps around float "
            f"layers); quantize the float model again, e.g. {_QUANTIZE_HINT}"
        )
    else:
        return
    warnings.warn(
        message,
        QuantizationWarning,
        stacklevel=4,  # the caller of load_model (via runtime._check_quantization)
    )


def not_quantized_error(
    quantization: Quantization | None, float_precision: str, path: str, backend: str
) -> ModelLoadError:
    """The error for ``precision="INT8"`` on a model with no compute layer in INT8 (or
    none known to be: its executed graph could not say)."""
    if quantization is not None and not quantization.known:
        return ModelLoadError(
            f"precision='INT8': expected a model with INT8 layers, got one that is quantized "
            f"(Q/DQ or FakeQuantize found) but where {backend} could not tell what runs INT8 "
            f"({quantization.unknown or _NO_COMPUTE_LAYER}), so no INT8 layer is confirmed: "
            f"'{path}'. Load it with precision=None to run it as it is"
        )
    if quantization is None:
        found = f"a float model (nothing quantized in its graph; it runs in {float_precision})"
    else:
        found = (
            f"one whose {quantization.compute_layers} compute layers all run "
            f"{quantization.float_precision} on {backend} (no INT8 kernel)"
        )
    return ModelLoadError(
        f"precision='INT8': expected a quantized model, got {found}: '{path}'. "
        f"Make an INT8 model from frames you have with `{_QUANTIZE_HINT}`, "
        f"or load this one with precision=None"
    )
