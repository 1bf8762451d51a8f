"""INT8 post-training quantization from the frames users already have, with a guard.

:func:`quantize` reads a folder of images or a video (or takes arrays), calibrates the model
on some frames with the tensors its first layer really sees in production (the runtime's
in-graph conversion and ``mean``/``scale``, done the same way), writes the INT8 model -- NNCF
to OpenVINO IR, or ``onnxruntime.quantization`` U8S8 per-channel QDQ to ONNX -- then loads
both through :class:`~atriva_inference.InferenceRuntime` and compares them on held-out
frames: latency (paired, interleaved, one run) and an accuracy metric. The
:class:`QuantReport` says whether INT8 is worth it (``passed``, ``reasons``).

The comparison metrics (cosine, top1, matched-box IoU) and the output differences are in
:mod:`atriva_inference.quantization.compare`; ``atriva-infer bench --against`` reports them
too, with the same numbers.

Needs the ``[quantize]`` extra (NNCF; ONNX Runtime for ONNX models). See
``docs/quantization.md``.
"""

from __future__ import annotations

from .compare import DECODERS, METRICS, Decoder
from .core import BACKENDS, ProgressFn, default_output, quantize
from .report import QuantReport

__all__ = [
    "BACKENDS",
    "DECODERS",
    "METRICS",
    "Decoder",
    "ProgressFn",
    "QuantReport",
    "default_output",
    "quantize",
]
