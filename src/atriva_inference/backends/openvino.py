"""OpenVINO backend on CPU, GPU and NPU: IR (.xml + .bin), ONNX, TensorFlow frozen graphs (.pb)
and SavedModel directories, TensorFlow Lite (.tflite) and PaddlePaddle (.pdmodel)."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import openvino as ov
from openvino import layout_helpers

from .._layouts import axes_to_free, channel_axis, only_input, wanted_layout
from ..devices import Device
from ..dtypes import STRING, SUBBYTE_BITS, pack_subbyte, unpack_subbyte
from ..errors import (
    DeviceUnavailableError,
    InferenceFailedError,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
)
from ..precision import Quantization, label, summarize, unknown
from ..profiling import LayerRecord
from ..tensor import TensorInfo
from . import onnx_graph
from .base import (
    Backend,
    BackendRequest,
    DoneCallback,
    ErrorTranslator,
    InputConversion,
    LoadedModel,
    LoadOptions,
    Normalization,
)

__all__ = ["OpenVINOBackend"]

# OpenVINO element type name -> numpy dtype as this runtime shows it to users.
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "boolean": np.dtype(np.bool_),
    "i8": np.dtype(np.int8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "u8": np.dtype(np.uint8),
    "u16": np.dtype(np.uint16),
    "u32": np.dtype(np.uint32),
    "u64": np.dtype(np.uint64),
    "f16": np.dtype(np.float16),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "f8e4m3": np.dtype(ml_dtypes.float8_e4m3fn),
    "f8e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "f8e8m0": np.dtype(ml_dtypes.float8_e8m0fnu),
    "f4e2m1": np.dtype(ml_dtypes.float4_e2m1fn),
    "i4": np.dtype(ml_dtypes.int4),
    "u4": np.dtype(ml_dtypes.uint4),
    "string": STRING,
}
# numpy dtypes OpenVINO's Python API cannot take as they are: their bits go in through a
# same-width carrier dtype wrapped in an ov.Tensor of the port's element type.
# (OpenVINO converts ml_dtypes arrays by value, not by bits: bf16 -> f16 overflows.)
# Sub-byte types (int4, uint4, float4) go in and come out packed.
_CARRIERS: dict[str, np.dtype] = {
    "bfloat16": np.dtype(np.uint16),
    "float8_e4m3fn": np.dtype(np.uint8),
    "float8_e5m2": np.dtype(np.uint8),
    "float8_e8m0fnu": np.dtype(np.uint8),
}

_PRECISION_HINTS = {"FP32": "f32", "FP16": "f16", "BF16": "bf16"}
_PRECISION_NAMES = {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}
#: Layer types of the CPU/GPU plugins' runtime graph that do the arithmetic (a grouped or
#: depthwise convolution is a Convolution there), and the precisions that are INT8 kernels.
_COMPUTE_LAYERS = frozenset(
    {
        "Convolution",
        "GroupConvolution",
        "Deconvolution",
        "GroupDeconvolution",
        "MatMul",
        "FullyConnected",
    }
)
_INT8_PRECISIONS = frozenset({"i8", "u8"})


def _first_line(exc: BaseException) -> str:
    """OpenVINO messages start with a C++ source location; keep the lines that explain."""
    lines = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and not line.startswith(("Exception from", "Check '"))
    ]
    return " ".join(lines) or str(exc).strip() or type(exc).__name__


_translate = ErrorTranslator(describe=_first_line)
_log = logging.getLogger(__name__)


def _layout_of(port: Any) -> str | None:
    try:
        layout = layout_helpers.get_layout(port)
    except Exception:  # ports of compiled models from some plugins carry no rt_info
        return None
    if layout.empty:
        return None
    text = layout.to_string().strip("[]").replace(",", "")
    return text.upper() if text.isalpha() else None


_SINK_PORT = re.compile(r"/sink_port_\d+$")


def _graph_names(model: Any) -> tuple[list[str], list[str]]:
    """The names the model file gives its inputs and outputs, in port order.

    A port can carry several tensor names: a graph input that also names an internal or
    output tensor (an ``Identity``/``Dropout`` chain, a one-input ``Max``, an inlined ONNX
    function) has them all, and ``get_any_name()`` may pick the wrong one (a compiled
    model's ports are worse still). The file's own name is on the node: the ONNX frontend
    and IR name a ``Parameter`` after the graph input and a ``Result`` after the graph
    output (``y/sink_port_0``). Taken from the model as read, before anything is compiled.
    """
    outputs: list[str] = []
    for index, port in enumerate(model.outputs):
        names = port.get_names()
        own = _SINK_PORT.sub("", port.get_node().get_friendly_name())
        if own in names:
            outputs.append(own)
        else:
            outputs.append(sorted(names)[0] if names else f"output{index}")
    output_names = set(outputs)
    inputs: list[str] = []
    for index, port in enumerate(model.inputs):
        names = port.get_names()
        own = port.get_node().get_friendly_name()
        if not names:
            inputs.append(f"input{index}")
        elif own in names:
            inputs.append(own)
        else:
            # The IR of a graph whose input is also an output keeps only the output's name
            # on the port; a name that is no output's is the input's own.
            own_names = sorted(names - output_names)
            inputs.append(own_names[0] if own_names else own)
    return _unique(inputs, "input"), _unique(outputs, "output")


def _without_output_index(names: list[str]) -> list[str]:
    """TensorFlow graph names as TensorFlow users write them: ``image_tensor``, not
    ``image_tensor:0``. The frontend names a node's first output ``node:0``; the name stays
    as it is where the bare name would repeat another."""
    bare = [name.removesuffix(":0") for name in names]
    return [
        short if short not in names and bare.count(short) == 1 else name
        for short, name in zip(bare, names)
    ]


def _unique(names: list[str], prefix: str) -> list[str]:
    """Positional names for repeats, so every port keeps a name of its own."""
    seen: set[str] = set()
    unique = []
    for index, name in enumerate(names):
        unique.append(name if name not in seen else f"{prefix}{index}")
        seen.add(unique[-1])
    return unique


def _describe_port(port: Any, name: str, prefix: str) -> TensorInfo:
    partial = port.get_partial_shape()
    shape = (
        tuple(dim.get_length() if dim.is_static else None for dim in partial)
        if partial.rank.is_static
        else None
    )
    type_name = port.get_element_type().get_type_name()
    dtype = _NUMPY_DTYPES.get(type_name)
    if dtype is None:
        raise ModelLoadError(
            f"{prefix} '{name}' has element type {type_name}, which this runtime cannot "
            f"exchange with numpy"
        )
    return TensorInfo(name=name, shape=shape, dtype=dtype, layout=_layout_of(port))


#: File suffix -> the OpenVINO frontend that reads it ("ir": Core.read_model).
_FRAMEWORKS = {
    ".xml": "ir",
    ".onnx": "onnx",
    ".pb": "tf",
    ".tflite": "tflite",
    ".pdmodel": "paddle",
}
_FORMAT_NAMES = {
    "ir": "OpenVINO IR",
    "onnx": "ONNX",
    "tf": "a TensorFlow model",
    "tflite": "TensorFlow Lite",
    "paddle": "a PaddlePaddle model",
}
_FORMATS = (
    "OpenVINO IR (.xml + .bin), ONNX (.onnx), TensorFlow frozen graphs (.pb) and SavedModel "
    "directories, TensorFlow Lite (.tflite) or PaddlePaddle (.pdmodel)"
)


def _framework_of(path: Path) -> str:
    """Which frontend reads ``path``; a ``ModelLoadError`` for what none of them reads."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "tf"
        raise ModelLoadError(
            f"backend 'openvino' reads a directory only as a TensorFlow SavedModel "
            f"(saved_model.pb inside), and '{path}' has no saved_model.pb; it reads {_FORMATS}"
        )
    suffix = path.suffix.lower()
    framework = _FRAMEWORKS.get(suffix)
    if framework is None:
        raise ModelLoadError(f"backend 'openvino' reads {_FORMATS}, got '{path.name}'")
    if suffix == ".xml":
        weights = path.with_suffix(".bin")
        if not weights.is_file():
            raise ModelLoadError(
                f"OpenVINO IR '{path}' needs its weights file '{weights}', which is missing"
            )
    # A .pdmodel's weights are left to the frontend: besides .pdiparams beside it, Paddle's
    # older format keeps one file per parameter in the model's directory.
    return framework


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self._core = ov.Core()
        # Weights are read into memory, not mapped from the file: the CPU plugin runs on
        # mapped weights in place, so a file rewritten after load would change (or, cut
        # short while copied over, crash) a model already loaded.
        self._core.set_property({"ENABLE_MMAP": False})
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(cache_dir)})

    def devices(self) -> list[str]:
        return list(self._core.available_devices)

    def load(self, path: Path, device: Device, options: LoadOptions) -> LoadedModel:
        """Read ``path`` once and compile the model read; the file is not touched again.

        With ``cache_dir``, OpenVINO's compiled-model cache is keyed by the model's content
        (graph and weights as read, with any load-time edits) and the compile options, not
        by the path: a file replaced at the same path compiles anew, the same file again
        is a cache hit (``loaded_from_cache``). A hit still reads and hashes the model.
        """
        framework = _framework_of(path)
        config = self._compile_config(device.name, options)
        started = time.perf_counter()
        what = f"backend 'openvino' cannot load '{path}' (read as {_FORMAT_NAMES[framework]})"
        try:
            with _translate(ModelLoadError, what):
                model = self._read(path, framework)
                compiler = _Compiler(
                    self._core, model, device.name, config, options, tensorflow=framework == "tf"
                )
                compiled = compiler.compile(compiler.source)
        except ModelLoadError as exc:
            if framework == "onnx":
                # OpenVINO's converter says little about sequence or optional ports: name
                # them and the backend that runs them. Checked only on failure, so a good
                # model is still read once.
                try:
                    onnx_graph.refuse_non_tensor_ports(path, "openvino")
                except ModelLoadError as clearer:
                    raise clearer from exc
            raise
        compile_ms = (time.perf_counter() - started) * 1e3
        loaded = OpenVINOModel(compiled, compiler, compiler.source, compile_ms)
        loaded.quantization = _quantization(
            compiled, compiler.source, loaded.precision, inspect=options.precision == "INT8"
        )
        loaded.precision = label(loaded.quantization, loaded.precision)
        if options.static_shapes is None and loaded.precision == "INT8":
            # Quantized models on the CPU plugin run dynamic shapes slower than a static
            # compile at the same shape (INT8 CenterFace: 12-17% on an AVX-512 VNNI EPYC,
            # issue 14): one static compile per input shape, as on NPU/GPU.
            loaded.static_shapes = loaded.has_dynamic_inputs
        return loaded

    def _read(self, path: Path, framework: str) -> Any:
        if framework == "ir":
            model = self._core.read_model(str(path))
        else:
            # Ask the format's own frontend only: read_model would try every frontend on a
            # broken file. False: weights and external data are read into memory, not mapped
            # (see __init__).
            frontend = ov.frontend.FrontEndManager().load_by_framework(framework)
            model = frontend.convert(frontend.load(str(path), False))
        if not model.outputs:
            # OpenVINO reads an empty file or a graph-less ONNX model as a model of nothing.
            if path.is_dir():
                found = "no graph outputs"
            else:
                size = path.stat().st_size
                found = (
                    "an empty file (0 bytes)" if size == 0 else f"no graph outputs ({size} bytes)"
                )
            raise ModelLoadError(
                f"cannot load '{path}': expected a model whose graph has outputs, found {found}"
            )
        return model

    def _compile_config(self, device: str, options: LoadOptions) -> dict[str, Any]:
        # The model's own precision by default: the CPU plugin would otherwise pick bf16 on
        # CPUs with AVX-512 bf16 / AMX and change results silently.
        # INT8 asks for a quantized model; its float layers run in FP32 as a float model's
        # would (the device's default could be bf16: never silently).
        precision = options.precision or "FP32"
        if precision != "FP32":
            capabilities = self._capabilities(device)
            if precision not in capabilities:
                raise DeviceUnavailableError(
                    f"precision {precision} is not supported by OpenVINO on {device} "
                    f"(its capabilities: {', '.join(capabilities) or 'none reported'})"
                )
        return {
            "INFERENCE_PRECISION_HINT": _PRECISION_HINTS.get(precision, "f32"),
            "PERFORMANCE_HINT": "LATENCY",
            "PERF_COUNT": options.profiling,
        }

    def _capabilities(self, device: str) -> list[str]:
        with _translate(DeviceUnavailableError, f"cannot query {device}"):
            return list(self._core.get_property(device, "OPTIMIZATION_CAPABILITIES"))


class _Compiler:
    """The model as read at load (with its load-time edits) and how to compile it again:
    for the queue's THROUGHPUT hint, for a conversion compiled into the graph, for one
    static shape. Every compile starts from this in-memory model, never from the file, so
    one loaded model gives one model's answers whatever happens to the file."""

    def __init__(
        self,
        core: Any,
        model: Any,
        device: str,
        config: dict[str, Any],
        options: LoadOptions,
        *,
        tensorflow: bool = False,
    ) -> None:
        self.core = core
        self.device = device
        self.config = config
        self.options = options
        self.input_names, self.output_names = _graph_names(model)
        if tensorflow:
            self.input_names = _without_output_index(self.input_names)
            self.output_names = _without_output_index(self.output_names)
        hints = dict(options.layouts)
        if options.dynamic:
            _free_dims(model, hints, self.input_names)
        if options.normalization:
            model = _with_normalization(model, options.normalization, hints, self.input_names)
        self.source = model
        self._lock = threading.Lock()

    def model(self) -> Any:
        """A copy of the model to edit (the weights are shared, not copied)."""
        with self._lock:  # OpenVINO does not promise that two threads may clone one model
            return self.source.clone()

    def compile(self, source: Any, **changes: Any) -> Any:
        return self.core.compile_model(source, self.device, {**self.config, **changes})


def _quantization(
    compiled: Any, source: Any, hinted: str, *, inspect: bool = False
) -> Quantization | None:
    """What the compiled model really runs in INT8, from its runtime graph (read once, at
    load; an imported cache blob has one too). A model without FakeQuantize (ONNX Q/DQ pairs
    become FakeQuantize) is a float model and is not inspected unless ``inspect``; a
    quantized one whose runtime graph cannot be read is reported unknown, never float."""
    quantized = any(op.get_type_name() == "FakeQuantize" for op in source.get_ops())
    if not quantized and not inspect:
        return None
    try:
        runtime = compiled.get_runtime_model()
    except RuntimeError as exc:  # a plugin without a runtime graph
        _log.debug("no runtime graph to count INT8 layers in", exc_info=True)
        if not quantized:
            return None
        return unknown(hinted, f"OpenVINO gave no runtime graph ({_first_line(exc)})")
    layers = []
    for op in runtime.get_ops():
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        if info["layerType"].astype(str) not in _COMPUTE_LAYERS:
            continue
        precision = info["runtimePrecision"].astype(str)
        layers.append(
            (precision in _INT8_PRECISIONS, _PRECISION_NAMES.get(precision, precision.upper()))
        )
    return summarize(layers, quantized_graph=quantized, default_float=hinted, asked=inspect)


def _free_dims(model: Any, hints: dict[str, str], names: list[str]) -> None:
    shapes = {}
    for port, name in zip(model.inputs, names):
        partial = port.get_partial_shape()
        if partial.rank.is_dynamic:
            continue
        info = _describe_port(port, name, "input")
        free = axes_to_free(len(partial), wanted_layout(info, hints))
        shapes[port] = ov.PartialShape(
            [ov.Dimension() if axis in free else dim for axis, dim in enumerate(partial)]
        )
    if shapes:
        model.reshape(shapes)


class OpenVINOModel(LoadedModel):
    def __init__(self, compiled: Any, compiler: _Compiler, source: Any, compile_ms: float) -> None:
        self._compiled = compiled
        self._compiler = compiler
        self._source = source  # the ov.Model compiled, for the queue's THROUGHPUT compile
        self._throughput: Any = None
        self._throughput_lock = threading.Lock()
        options = compiler.options
        self.device = compiler.device
        self.compile_ms = compile_ms
        self.profiling = options.profiling
        self.inputs = [
            _describe_port(port, name, "input")
            for port, name in zip(compiled.inputs, compiler.input_names)
        ]
        self.outputs = [
            _describe_port(port, name, "output")
            for port, name in zip(compiled.outputs, compiler.output_names)
        ]
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.precision = _PRECISION_NAMES.get(_type_name(hint), hint.upper())
        try:
            self.loaded_from_cache = bool(compiled.get_property("LOADED_FROM_CACHE"))
        except RuntimeError:  # plugins that do not report it have not cached
            self.loaded_from_cache = False
        self.input_types = [compiled.input(i).get_element_type() for i in range(len(self.inputs))]
        self.output_fixups = [_output_fixup(info.dtype) for info in self.outputs]
        self.has_dynamic_inputs = any(
            info.shape is None or None in info.shape for info in self.inputs
        )
        # The CPU plugin runs dynamic shapes as fast as a static compile once a shape has
        # been seen (ResNet-50: +18-20 ms on the first call at a new shape, then equal, vs
        # ~100 ms for reshape + compile); NPU and most GPU plugins want static shapes.
        # Quantized models compile static on the CPU too (OpenVINOBackend.load).
        wants_static = options.static_shapes
        if wants_static is None:
            wants_static = not self.device.startswith("CPU")
        self.static_shapes = self.has_dynamic_inputs and wants_static
        #: Names of the nodes the runtime added (in-graph conversion), for profiling tags.
        self.preprocessing_nodes: tuple[str, ...] = ()

    def specialize(
        self,
        conversions: Sequence[InputConversion],
        shapes: Sequence[tuple[int, ...]] | None = None,
    ) -> LoadedModel | None:
        """PrePostProcessor puts the layout and element-type conversion into the graph;
        ``reshape`` makes it static. One compile, then frames go in untouched."""
        compiler = self._compiler
        started = time.perf_counter()
        with _translate(InferenceFailedError, "cannot prepare the model for these inputs"):
            model = compiler.model()
            original = {op.get_friendly_name() for op in model.get_ordered_ops()}
            if conversions:
                model = _with_conversions(model, conversions)
            added = {op.get_friendly_name() for op in model.get_ordered_ops()} - original
            if shapes is not None:
                model.reshape(
                    {model.input(i): ov.PartialShape(list(s)) for i, s in enumerate(shapes)}
                )
            compiled = compiler.compile(model)
        variant = OpenVINOModel(compiled, compiler, model, (time.perf_counter() - started) * 1e3)
        variant.static_shapes = self.static_shapes and shapes is None
        variant.preprocessing_nodes = tuple(sorted(added))
        return variant

    def create_request(self) -> BackendRequest:
        with _translate(InferenceFailedError, "cannot create an inference request"):
            return OpenVINORequest(self, self._compiled)

    def create_throughput_requests(self, count: int | None) -> list[BackendRequest]:
        # The THROUGHPUT hint splits the device into streams for many requests in flight;
        # it doubles single-request latency, so run() and streams keep the LATENCY one.
        with self._throughput_lock:  # two queues created at once compile once
            throughput, source = self._throughput, self._source
            if source is None:
                raise ModelClosedError("the model was closed; it makes no more requests")
            if throughput is None:
                started = time.perf_counter()
                with _translate(InferenceFailedError, "cannot compile for throughput"):
                    throughput = self._compiler.compile(source, PERFORMANCE_HINT="THROUGHPUT")
                self._throughput = throughput
                self.compile_ms += (time.perf_counter() - started) * 1e3
        if count is None:
            count = int(throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        with _translate(InferenceFailedError, "cannot create an inference request"):
            return [OpenVINORequest(self, throughput) for _ in range(max(count, 1))]

    def close(self) -> None:
        with self._throughput_lock:  # a THROUGHPUT compile under way is not kept
            self._compiled = self._throughput = self._source = None


def _with_normalization(
    model: Any, normalization: Sequence[Normalization], hints: dict[str, str], names: list[str]
) -> Any:
    """``(x - mean) / scale`` per channel, compiled into the graph with PrePostProcessor."""
    preprocessor = ov.preprocess.PrePostProcessor(model)
    for entry in normalization:
        index = _input_index(names, entry.input)
        info = _describe_port(model.input(index), names[index], "input")
        if info.dtype.kind != "f" and info.dtype.name not in ("bfloat16",):
            raise InvalidInputError(
                f"mean/scale of '{info.name}': the input takes {info.dtype.name}; mean and "
                f"scale apply to float inputs"
            )
        layout = wanted_layout(info, hints)
        axis = channel_axis(layout, f"mean/scale of '{info.name}'")
        channels, count = info.shape[axis] if info.shape else None, len(entry.mean)
        if channels is not None and count not in (1, channels):  # one value serves them all
            raise InvalidInputError(
                f"mean/scale of '{info.name}': expected {channels} values (one per "
                f"channel), got {count}"
            )
        port = preprocessor.input(index)
        port.tensor().set_layout(ov.Layout(layout))
        port.model().set_layout(ov.Layout(layout))
        steps = port.preprocess()
        steps.mean(list(entry.mean))
        steps.scale(list(entry.scale))
    return preprocessor.build()


def _input_index(names: list[str], name: str) -> int:
    if name == "*":
        only_input(names, "mean/scale")
        return 0
    if name in names:
        return names.index(name)
    raise InvalidInputError(
        f"mean/scale: the model has no input '{name}' (its inputs: {', '.join(names)})"
    )


def _with_conversions(model: Any, conversions: Sequence[InputConversion]) -> Any:
    preprocessor = ov.preprocess.PrePostProcessor(model)
    for conversion in conversions:
        port = preprocessor.input(conversion.index)
        port.tensor().set_element_type(ov.Type(conversion.dtype))
        steps = port.preprocess()
        if conversion.layout and conversion.model_layout:
            port.tensor().set_layout(ov.Layout(conversion.layout))
            port.model().set_layout(ov.Layout(conversion.model_layout))
            if conversion.layout != conversion.model_layout:
                # Reorder the small integer data before widening it.
                steps.convert_layout(ov.Layout(conversion.model_layout))
        steps.convert_element_type(model.input(conversion.index).get_element_type())
    return preprocessor.build()


def _type_name(hint: str) -> str:
    # str(ov.Type.f32) is "<Type: 'float32'>" in some versions and "f32" in others.
    for name, alias in (("f32", "float32"), ("f16", "float16"), ("bf16", "bfloat16")):
        if hint in (name, alias) or f"'{alias}'" in hint or f"'{name}'" in hint:
            return name
    return hint


def _output_fixup(dtype: np.dtype) -> Callable[[np.ndarray, tuple[int, ...]], np.ndarray] | None:
    """How to turn what OpenVINO hands back into the dtype ``model.outputs`` promises."""
    if dtype.name in SUBBYTE_BITS:
        return lambda data, shape: unpack_subbyte(data, dtype, shape)
    if dtype.name in _CARRIERS:
        return lambda data, shape: data.view(dtype)
    return None


def _input_carrier(dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray] | None:
    """How to hand an array of ``dtype`` to ``ov.Tensor`` bit-exactly (None: as it is)."""
    if dtype.name in SUBBYTE_BITS:
        return pack_subbyte
    carrier = _CARRIERS.get(dtype.name)
    if carrier is not None:
        return lambda array: array.view(carrier)
    return None


class OpenVINORequest(BackendRequest):
    """One ``InferRequest``. Inputs are bound as ``ov.Tensor`` objects sharing the arrays'
    memory and the request runs with no arguments: the fastest call OpenVINO's Python API
    has (a list passed to ``infer`` costs several times more per call).

    :meth:`start` runs on OpenVINO's own executor (``start_async``); a waiter thread of
    this request, blocked in the native ``wait()``, reports every start -- success or
    failure -- to ``on_done`` exactly once. OpenVINO's ``set_callback`` is not used: its
    Python binding drops the callback of a failed inference, and a callback holding the
    request is a reference cycle through C++ that keeps the request, its compiled model and
    their threads alive for ever. (Measured on CPU, one to four requests in flight: the
    waiter is as fast as the callback, which takes the GIL from a thread Python does not
    know.)

    After a failed inference the ``InferRequest`` is replaced: OpenVINO keeps the failure
    (it re-raises it from ``wait``), which would hand the error to the next frame.
    """

    native_async = True

    def __init__(self, model: OpenVINOModel, compiled: Any) -> None:
        super().__init__()
        self._model = model
        self._compiled = compiled
        self._make_tensors = [
            _tensor_maker(info.dtype, model.input_types[i]) for i, info in enumerate(model.inputs)
        ]
        # Only a tensor over the array's own memory sees later writes into it; packed
        # sub-byte data, strings and read-only arrays are copies, bound again every run.
        self._shares = [
            info.dtype.kind not in "USO" and info.dtype.name not in SUBBYTE_BITS
            for info in model.inputs
        ]
        self._output_count = len(model.outputs)
        # Static outputs live in buffers the request allocates once: keep numpy views of them.
        self._static_outputs = all(
            info.shape is not None and None not in info.shape for info in model.outputs
        )
        self._fixups = [(i, fix) for i, fix in enumerate(model.output_fixups) if fix is not None]
        self._jobs: queue.SimpleQueue[_Job | None] | None = None  # the waiter's, made on demand
        self._stop_waiter: Callable[[], Any] | None = None
        # close() may come from another thread while a start() is under way: the lock keeps
        # the waiter's end marker from passing a job that start() is about to queue.
        self._lock = threading.Lock()
        self._request: Any = None  # None once closed
        self._bound: list[np.ndarray | None] = [None] * len(self._make_tensors)
        self._views: list[np.ndarray] | None = None
        self._renew()

    def _renew(self) -> None:
        """A fresh ``InferRequest``: no stored failure, nothing bound."""
        compiled = self._compiled
        if compiled is None:
            return  # closed: nothing will run on it again
        fresh = compiled.create_infer_request()
        with self._lock:
            if self._compiled is None:
                return  # closed meanwhile
            self._request = fresh
            self._bound = [None] * len(self._make_tensors)
            self._views = None

    def _bind(self, request: Any, inputs: Sequence[np.ndarray]) -> None:
        bound = self._bound
        for index, array in enumerate(inputs):
            # The same array object again, bound over its own memory, needs no new binding.
            if array is bound[index]:
                continue
            request.set_input_tensor(index, self._make_tensors[index](array))
            shared = self._shares[index] and array.flags.writeable  # else OpenVINO copied
            bound[index] = array if shared else None

    def _collect(self, request: Any, copy: bool) -> list[np.ndarray]:
        views = self._views
        if views is None:
            tensors = [request.get_output_tensor(i) for i in range(self._output_count)]
            views = [tensor.data for tensor in tensors]
            for index, fix in self._fixups:
                views[index] = fix(views[index], tuple(tensors[index].shape))
            if self._static_outputs and not self._fixups and request is self._request:
                self._views = views
        if copy:
            return [view.copy() for view in views]
        return list(views)

    def _account(self, request: Any) -> None:
        stats = self.stats
        stats.device_ns += int(request.latency * 1e6)
        if self._model.profiling:
            model = self._model
            infos = request.profiling_info
            _accumulate_layers(stats.layers, infos, model.device, model.preprocessing_nodes)

    # -- the backend interface ------------------------------------------------------------
    def infer(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._infer(inputs, copy=True)

    def infer_bound(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._infer(inputs, copy=False)

    def _infer(self, inputs: Sequence[np.ndarray], copy: bool) -> list[np.ndarray]:
        # One read of the native request: a close() meanwhile lets this run finish.
        request = self._request
        if request is None:
            raise _closed()
        try:
            with _translate(InferenceFailedError, "OpenVINO inference failed"):
                self._bind(request, inputs)
                request.infer()
                outputs = self._collect(request, copy=copy)
                self._account(request)
        except InferenceFailedError:
            self._renew()
            raise
        return outputs

    def start(self, inputs: Sequence[np.ndarray], on_done: DoneCallback) -> None:
        try:
            with self._lock:
                request = self._request
                if request is None:
                    raise _closed()
                jobs = self._jobs or self._start_waiter()
                with _translate(InferenceFailedError, "OpenVINO could not start inference"):
                    self._bind(request, inputs)
                    request.start_async()
                jobs.put((self, request, on_done))
        except InferenceFailedError:
            self._renew()
            raise

    def _start_waiter(self) -> queue.SimpleQueue[_Job | None]:
        jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        threading.Thread(
            target=_wait_for_jobs, args=(jobs,), name="atriva-openvino-wait", daemon=True
        ).start()
        self._jobs = jobs
        # The waiter holds the request only while a job is in flight: a request dropped
        # without close() still ends its thread.
        self._stop_waiter = weakref.finalize(self, jobs.put, None)
        return jobs

    def _finish(self, request: Any, on_done: DoneCallback) -> None:
        """On the waiter thread: wait for the inference ``request`` runs and report it."""
        try:
            with _translate(InferenceFailedError, "OpenVINO inference failed"):
                request.wait()
                outputs = self._collect(request, copy=True)
                self._account(request)
        except BaseException as exc:
            try:
                self._renew()  # before on_done hands the request to the next frame
            finally:
                on_done(None, exc)
        else:
            on_done(outputs, None)

    def close(self) -> None:
        """Release the native request now (one in flight goes when its waiter reports)."""
        with self._lock:
            self._compiled = self._request = None
            self._bound = [None] * len(self._bound)
            self._views = None
            if self._stop_waiter is not None:
                self._stop_waiter()  # the waiter ends after reporting what is in flight


#: A started inference for the waiter: the request, its native request, whom to tell.
_Job = tuple[OpenVINORequest, Any, DoneCallback]


def _closed() -> ModelClosedError:
    return ModelClosedError("the model was closed; this request can no longer run")


def _wait_for_jobs(jobs: queue.SimpleQueue[_Job | None]) -> None:
    """A request's waiter thread: one job per start(), ``None`` to end."""
    while True:
        job = jobs.get()
        if job is None:
            return
        request, native, on_done = job
        try:
            request._finish(native, on_done)
        except BaseException as exc:  # raised by on_done itself: shown, and the waiter goes on
            thread = threading.current_thread()
            threading.excepthook(
                threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, thread))
            )
        # Hold nothing between jobs: the request may be dropped or closed meanwhile.
        del job, request, native, on_done


def _tensor_maker(dtype: np.dtype, element_type: Any) -> Callable[[np.ndarray], Any]:
    """How to wrap an input array as an ``ov.Tensor`` (sharing its memory where possible)."""
    carrier = _input_carrier(dtype)
    if carrier is not None:
        return lambda array: ov.Tensor(carrier(array), list(array.shape), element_type)
    if dtype.kind in "US":
        return ov.Tensor  # strings are converted, never shared

    def shared(array: np.ndarray) -> Any:
        if array.flags.writeable:
            return ov.Tensor(array, shared_memory=True)
        # OpenVINO refuses to share read-only memory: it copies into a tensor it owns.
        return ov.Tensor(array, shared_memory=False)

    return shared


def _accumulate_layers(
    layers: dict[tuple[str, str], LayerRecord],
    infos: Any,
    device: str,
    preprocessing: tuple[str, ...],
) -> None:
    for info in infos:
        key = (info.node_name, info.node_type)
        record = layers.get(key)
        if record is None:
            record = layers[key] = LayerRecord(
                name=info.node_name,
                type=info.node_type,
                implementation=info.exec_type,
                device=device,
                executed=str(info.status).endswith("EXECUTED") and "NOT" not in str(info.status),
                # Compiled layers keep the name of the node they came from as a prefix.
                preprocessing=info.node_name.startswith(preprocessing) if preprocessing else False,
            )
        record.time_ms += info.real_time.total_seconds() * 1e3
        record.count += 1
