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
    "warn_if_mostly_float",
]

#: Below this fraction of compute layers in INT8 a quantized model is reported as running
#: mostly in float: little to gain, and Q/DQ (FakeQuantize) steps around float layers can
#: cost more (issue 14: ORT S8S8 QDQ PP-LCNet, 4 of 32 convolutions INT8, 4.1x slower).
MOSTLY_FLOAT_FRACTION = 0.5

_QUANTIZE_HINT = "atriva-infer quantize MODEL --frames DIR"


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

    @property
    def fraction(self) -> float:
        """``int8_layers / compute_layers`` (0.0 for a graph without compute layers)."""
        return self.int8_layers / self.compute_layers if self.compute_layers else 0.0

    @property
    def mostly_float(self) -> bool:
        """Fewer than half the compute layers run INT8."""
        return self.fraction < MOSTLY_FLOAT_FRACTION

    def __str__(self) -> str:
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
    """A quantized model whose compute layers run mostly in float: it gains little over its
    float original and can be slower (quantize/dequantize steps around float layers)."""


def summarize(
    layers: Iterable[tuple[bool, str]], *, quantized_graph: bool, default_float: str
) -> Quantization | None:
    """A :class:`Quantization` from the executed graph's compute layers.

    ``layers``: one ``(runs_int8, float_precision)`` per compute layer (``float_precision``
    is ignored for INT8 layers). ``quantized_graph``: the graph carries quantization
    (Q/DQ, FakeQuantize, integer operators) even where no compute layer runs INT8.
    ``default_float``: the float precision when no compute layer runs in float (the
    precision hint in effect). ``None`` for a float model: no INT8 layer, nothing quantized.
    """
    int8 = 0
    floats: Counter[str] = Counter()
    for runs_int8, precision in layers:
        if runs_int8:
            int8 += 1
        else:
            floats[precision] += 1
    if not int8 and not quantized_graph:
        return None
    float_precision = floats.most_common(1)[0][0] if floats else default_float
    return Quantization(int8, int8 + sum(floats.values()), float_precision)


def label(quantization: Quantization | None, float_precision: str) -> str:
    """The model's precision: ``"INT8"`` when INT8 kernels run, else its float precision."""
    if quantization is not None and quantization.int8_layers > 0:
        return "INT8"
    return float_precision


def warn_if_mostly_float(quantization: Quantization | None, path: str, backend: str) -> None:
    """Warn (:class:`QuantizationWarning`) when a quantized model runs mostly in float."""
    if quantization is None or not quantization.mostly_float:
        return
    warnings.warn(
        f"'{path}' is quantized, but on {backend} only {quantization}: it gains little over "
        f"its float model and can be slower (quantize/dequantize steps around float layers); "
        f"quantize the float model again, e.g. {_QUANTIZE_HINT}",
        QuantizationWarning,
        stacklevel=4,  # the caller of load_model (via runtime._check_quantization)
    )


def not_quantized_error(
    quantization: Quantization | None, float_precision: str, path: str, backend: str
) -> ModelLoadError:
    """The error for ``precision="INT8"`` on a model with no compute layer in INT8."""
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
