"""The two quantizers: NNCF for anything OpenVINO reads (an IR out), ONNX Runtime's own
``onnxruntime.quantization`` for ONNX (an ONNX QDQ model out).

Both take the float model as it is and calibration tensors that are already what its first
layer sees (see :mod:`.calibration`); ``progress(stage, done, total)`` follows them
(``"calibrating"``: samples consumed; NNCF's later stages under their own names; a total
of 0 when unknown). Each
translates its library's failure into an ``InferenceRuntimeError`` subclass naming the
model, with the cause chained.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._layouts import axes_to_free, wanted_layout
from ..errors import BackendUnavailableError, InferenceFailedError, ModelLoadError
from ..tensor import TensorInfo

__all__ = ["INSTALL_HINT", "MIN_OPSET", "quantize_nncf", "quantize_onnxruntime"]

INSTALL_HINT = "pip install 'atriva-inference[quantize]'"
#: Per-channel QDQ needs opset 13 (per-axis QuantizeLinear/DequantizeLinear); an older model
#: quantized per channel writes a file neither backend loads.
MIN_OPSET = 13

#: ``progress(stage, done, total)``.
Progress = Callable[[str, int, int], None]
#: ``to_tensor(frame)``: the calibration tensor (batch of one) the model's first layer sees.
ToTensor = Callable[[np.ndarray], np.ndarray]


# -- NNCF -> OpenVINO IR ---------------------------------------------------------------------
def quantize_nncf(
    source: Path,
    output: Path,
    input_name: str,
    frames: Sequence[np.ndarray],
    to_tensor: ToTensor,
    *,
    free_dims: str | None,
    progress: Progress | None = None,
) -> None:
    """``nncf.quantize`` of the model OpenVINO reads from ``source``, saved as IR at
    ``output`` with f32 weights kept (``compress_to_fp16=False``). NNCF calibrates on
    ``to_tensor(frame)`` for each of ``frames``, made as it asks for them.

    ``free_dims``: the input's layout when its declared static dims must be freed first
    (the frames' shape is not the declared one), as ``load_model(dynamic=True)`` frees them.
    """
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailableError(
            f"quantizing for OpenVINO needs NNCF, which is not installed: {INSTALL_HINT}"
        ) from exc
    import openvino as ov

    try:
        model = ov.Core().read_model(str(source))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise ModelLoadError(f"OpenVINO cannot read '{source}': {exc}") from exc
    if free_dims is not None:
        port = next(p for p in model.inputs if input_name in p.get_names())
        shape = port.get_partial_shape()
        info = TensorInfo(input_name, (None,) * len(shape), np.dtype(np.float32))
        free = axes_to_free(len(shape), wanted_layout(info, {"*": free_dims}))
        model.reshape(
            {port: ov.PartialShape([-1 if a in free else d for a, d in enumerate(shape)])}
        )
    dataset = nncf.Dataset(frames, to_tensor)
    try:
        with _nncf_display(progress):
            quantized = nncf.quantize(
                model, dataset, subset_size=len(frames), fast_bias_correction=True
            )
        ov.save_model(quantized, str(output), compress_to_fp16=False)
    except Exception as exc:
        raise InferenceFailedError(f"NNCF could not quantize '{source}': {exc}") from exc


@contextlib.contextmanager
def _nncf_display(progress: Progress | None) -> Iterator[None]:
    """NNCF's INFO lines and its own rich bars off, its stages reported to ``progress``
    instead, so the caller shows one display (and none when not on a terminal).

    NNCF has no switch for its bars: its ``track`` class is patched for this call only,
    built with ``disable=True`` and its iteration reporting ``(stage, done, total)``; the
    statistics pass is the ``"calibrating"`` stage, the others keep NNCF's own names. (So
    two NNCF quantizations on two threads at once would share one display.)"""
    from nncf.common.logging import nncf_logger
    from nncf.common.logging.track_progress import track

    level = nncf_logger.level
    original_init, original_iter = track.__init__, track.__iter__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **{**kwargs, "disable": True})

    def iterate(self: Any) -> Iterator[Any]:
        total = self.total
        if total is None and hasattr(self.sequence, "__len__"):
            total = len(self.sequence)
        description = str(self.description)
        stage = "calibrating" if description == "Statistics collection" else description.lower()
        for done, item in enumerate(original_iter(self), 1):
            if progress is not None:  # total 0: not known beforehand
                progress(stage, min(done, int(total)) if total else done, int(total or 0))
            yield item

    nncf_logger.setLevel(logging.WARNING)
    track.__init__, track.__iter__ = init, iterate  # type: ignore[method-assign]
    try:
        yield
    finally:
        track.__init__, track.__iter__ = original_init, original_iter  # type: ignore[method-assign]
        nncf_logger.setLevel(level)


# -- ONNX Runtime -> ONNX QDQ ------------------------------------------------------------------
class _Reader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over the frames, each made a
    tensor when asked for (one at a time, not all held)."""

    def __init__(
        self,
        input_name: str,
        frames: Sequence[np.ndarray],
        to_tensor: ToTensor,
        progress: Progress | None,
    ):
        self._input_name = input_name
        self._frames = frames
        self._to_tensor = to_tensor
        self._next = 0
        self._progress = progress

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._frames):
            return None
        batch = self._to_tensor(self._frames[self._next])
        self._next += 1
        if self._progress is not None:
            self._progress("calibrating", self._next, len(self._frames))
        return {self._input_name: batch}

    def rewind(self) -> None:
        self._next = 0


def quantize_onnxruntime(
    source: Path,
    output: Path,
    input_name: str,
    frames: Sequence[np.ndarray],
    to_tensor: ToTensor,
    *,
    free_dims: str | None,
    progress: Progress | None = None,
) -> None:
    """Static QDQ quantization, activations QUInt8 and weights QInt8 per channel (U8S8: the
    build ONNX Runtime's CPU provider really fuses into QLinearConv; its S8S8 default stays
    mostly DequantizeLinear -> f32 Conv -> QuantizeLinear and runs slower than f32).

    The model is first upgraded to opset :data:`MIN_OPSET` when older, its declared dims
    freed where the frames' shape is not the declared one, then pre-processed
    (``quant_pre_process``: ONNX Runtime's graph optimizations and shape inference; the
    symbolic shape inference only where ``sympy`` is installed)."""
    try:
        import onnx
        from onnx import version_converter
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )
    except ImportError as exc:
        raise BackendUnavailableError(
            f"quantizing ONNX models needs onnx and onnxruntime: {INSTALL_HINT}"
        ) from exc
    from ..backends import onnx_graph

    try:
        model = onnx.load(str(source))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelLoadError(f"cannot read '{source}' as ONNX: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="atriva-quantize-") as scratch:
        try:
            opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
            if opset < MIN_OPSET:
                model = version_converter.convert_version(model, MIN_OPSET)
            if free_dims is not None:
                onnx_graph.free_dims(model, {input_name: free_dims})
            else:
                onnx_graph.initializers_out_of_inputs(model)
            prepared = Path(scratch) / "prepared.onnx"
            onnx.save(model, str(prepared))
            preprocessed = Path(scratch) / "preprocessed.onnx"
            quant_pre_process(
                str(prepared),
                str(preprocessed),
                skip_symbolic_shape=importlib.util.find_spec("sympy") is None,
            )
            quantize_static(
                str(preprocessed),
                str(output),
                _Reader(input_name, frames, to_tensor, progress),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:
            raise InferenceFailedError(
                f"onnxruntime.quantization could not quantize '{source}' (opset {opset}): {exc}"
            ) from exc
