"""OpenVINO backend: IR (.xml + .bin) and ONNX on CPU, GPU and NPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import openvino as ov
from openvino import layout_helpers

from .._layouts import axes_to_free, channel_axis, only_input, wanted_layout
from ..dtypes import STRING, SUBBYTE_BITS, pack_subbyte, unpack_subbyte
from ..errors import (
    DeviceUnavailableError,
    InferenceFailedError,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
)
from ..profiling import LayerRecord
from ..tensor import TensorInfo
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


def _first_line(exc: BaseException) -> str:
    """OpenVINO messages start with a C++ source location; keep the lines that explain."""
    lines = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and not line.startswith(("Exception from", "Check '"))
    ]
    return " ".join(lines) or str(exc).strip() or type(exc).__name__


_translate = ErrorTranslator(describe=_first_line)


def _layout_of(port: Any) -> str | None:
    try:
        layout = layout_helpers.get_layout(port)
    except Exception:  # ports of compiled models from some plugins carry no rt_info
        return None
    if layout.empty:
        return None
    text = layout.to_string().strip("[]").replace(",", "")
    return text.upper() if text.isalpha() else None


def _port_name(port: Any, index: int, prefix: str) -> str:
    """The name users know a port by. A compiled output can carry several tensor names
    (an ONNX ``Identity`` before the output merges two); the graph's own output name is the
    one its Result node is named after (``y/sink_port_0``)."""
    names = port.get_names()
    if not names:
        return f"{prefix}{index}"
    if len(names) > 1 and prefix == "output":
        result = port.get_node().get_friendly_name()
        for name in names:
            if result == name or result.startswith(f"{name}/sink_port"):
                return name
    return sorted(names)[0] if len(names) > 1 else next(iter(names))


def _describe_port(port: Any, index: int, prefix: str) -> TensorInfo:
    name = _port_name(port, index, prefix)
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


class OpenVINOBackend(Backend):
    name = "openvino"
    extra = "openvino"

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self._core = ov.Core()
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(cache_dir)})

    def devices(self) -> list[str]:
        return list(self._core.available_devices)

    def load(self, path: Path, device: str, options: LoadOptions) -> LoadedModel:
        suffix = path.suffix.lower()
        if suffix == ".xml":
            weights = path.with_suffix(".bin")
            if not weights.is_file():
                raise ModelLoadError(
                    f"OpenVINO IR '{path}' needs its weights file '{weights}', which is missing"
                )
        elif suffix != ".onnx":
            raise ModelLoadError(
                f"backend 'openvino' reads OpenVINO IR (.xml + .bin) or ONNX (.onnx), "
                f"got '{path.name}'"
            )
        config = self._compile_config(device, options)
        compiler = _Compiler(self, path, device, config, options)
        started = time.perf_counter()
        with _translate(ModelLoadError, f"cannot load '{path}'"):
            # Compiling from the path lets a cache hit skip reading the model at all.
            plain = options.cache_dir is not None and not options.edits_model
            compiled = compiler.compile(str(path) if plain else compiler.model())
        compile_ms = (time.perf_counter() - started) * 1e3
        return OpenVINOModel(compiled, compiler, compile_ms)

    def _read(self, path: Path) -> Any:
        if path.suffix.lower() == ".onnx":
            # Ask the ONNX frontend only: read_model would try every frontend on a broken file.
            frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
            return frontend.convert(frontend.load(str(path)))
        return self._core.read_model(str(path))

    def _compile_config(self, device: str, options: LoadOptions) -> dict[str, Any]:
        # The model's own precision by default: the CPU plugin would otherwise pick bf16 on
        # CPUs with AVX-512 bf16 / AMX and change results silently.
        precision = options.precision or "FP32"
        if precision != "FP32":
            capabilities = self._capabilities(device)
            if precision not in capabilities:
                raise DeviceUnavailableError(
                    f"precision {precision} is not supported by OpenVINO on {device} "
                    f"(its capabilities: {', '.join(capabilities) or 'none reported'})"
                )
        return {
            "INFERENCE_PRECISION_HINT": _PRECISION_HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "PERF_COUNT": options.profiling,
        }

    def _capabilities(self, device: str) -> list[str]:
        with _translate(DeviceUnavailableError, f"cannot query {device}"):
            return list(self._core.get_property(device, "OPTIMIZATION_CAPABILITIES"))


class _Compiler:
    """Everything needed to compile this model again: for the queue's THROUGHPUT hint, for a
    conversion compiled into the graph, for one static shape."""

    def __init__(
        self,
        backend: OpenVINOBackend,
        path: Path,
        device: str,
        config: dict[str, Any],
        options: LoadOptions,
    ) -> None:
        self.backend = backend
        self.path = path
        self.device = device
        self.config = config
        self.options = options
        self._model: Any = None
        self._lock = threading.Lock()

    def model(self) -> Any:
        """A fresh ``ov.Model`` of the file (dims freed when ``dynamic=True``)."""
        with self._lock:
            return self._read_once().clone()

    def _read_once(self) -> Any:
        if self._model is None:
            model = self.backend._read(self.path)
            hints = dict(self.options.layouts)
            if self.options.dynamic:
                _free_dims(model, hints)
            if self.options.normalization:
                model = _with_normalization(model, self.options.normalization, hints)
            self._model = model
        return self._model

    def compile(self, source: Any, **changes: Any) -> Any:
        return self.backend._core.compile_model(source, self.device, {**self.config, **changes})


def _free_dims(model: Any, hints: dict[str, str]) -> None:
    shapes = {}
    for index, port in enumerate(model.inputs):
        partial = port.get_partial_shape()
        if partial.rank.is_dynamic:
            continue
        info = _describe_port(port, index, "input")
        free = axes_to_free(len(partial), wanted_layout(info, hints))
        shapes[port] = ov.PartialShape(
            [ov.Dimension() if axis in free else dim for axis, dim in enumerate(partial)]
        )
    if shapes:
        model.reshape(shapes)


class OpenVINOModel(LoadedModel):
    def __init__(self, compiled: Any, compiler: _Compiler, compile_ms: float) -> None:
        self._compiled = compiled
        self._compiler = compiler
        self._throughput: Any = None
        self._throughput_lock = threading.Lock()
        options = compiler.options
        self.device = compiler.device
        self.compile_ms = compile_ms
        self.profiling = options.profiling
        self.inputs = [_describe_port(p, i, "input") for i, p in enumerate(compiled.inputs)]
        self.outputs = [_describe_port(p, i, "output") for i, p in enumerate(compiled.outputs)]
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.precision = _PRECISION_NAMES.get(_type_name(hint), hint.upper())
        try:
            self.loaded_from_cache = bool(compiled.get_property("LOADED_FROM_CACHE"))
        except RuntimeError:  # plugins that do not report it have not cached
            self.loaded_from_cache = False
        self.input_types = [compiled.input(i).get_element_type() for i in range(len(self.inputs))]
        self.output_fixups = [_output_fixup(info.dtype) for info in self.outputs]
        dynamic = any(info.shape is None or None in info.shape for info in self.inputs)
        # The CPU plugin runs dynamic shapes as fast as a static compile once a shape has
        # been seen (ResNet-50: +18-20 ms on the first call at a new shape, then equal, vs
        # ~100 ms for reshape + compile); NPU and most GPU plugins want static shapes.
        wants_static = options.static_shapes
        if wants_static is None:
            wants_static = not self.device.startswith("CPU")
        self.static_shapes = dynamic and wants_static
        self._source: Any = None  # what create_throughput_requests compiles; None = the file
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
        variant = OpenVINOModel(compiled, compiler, (time.perf_counter() - started) * 1e3)
        variant._source = model
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
            if self._throughput is None:
                started = time.perf_counter()
                compiler = self._compiler
                source = self._source
                if source is None:
                    options = compiler.options
                    plain = options.cache_dir is not None and not options.edits_model
                    source = str(compiler.path) if plain else compiler.model()
                with _translate(InferenceFailedError, "cannot compile for throughput"):
                    self._throughput = compiler.compile(source, PERFORMANCE_HINT="THROUGHPUT")
                self.compile_ms += (time.perf_counter() - started) * 1e3
        if count is None:
            count = int(self._throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        with _translate(InferenceFailedError, "cannot create an inference request"):
            return [OpenVINORequest(self, self._throughput) for _ in range(max(count, 1))]

    def close(self) -> None:
        self._compiled = self._throughput = None


def _with_normalization(
    model: Any, normalization: Sequence[Normalization], hints: dict[str, str]
) -> Any:
    """``(x - mean) / scale`` per channel, compiled into the graph with PrePostProcessor."""
    preprocessor = ov.preprocess.PrePostProcessor(model)
    for entry in normalization:
        index = _input_index(model, entry.input)
        info = _describe_port(model.input(index), index, "input")
        if info.dtype.kind != "f" and info.dtype.name not in ("bfloat16",):
            raise InvalidInputError(
                f"mean/scale of '{info.name}': the input takes {info.dtype.name}; mean and "
                f"scale apply to float inputs"
            )
        layout = wanted_layout(info, hints)
        channel_axis(layout, f"mean/scale of '{info.name}'")
        port = preprocessor.input(index)
        port.tensor().set_layout(ov.Layout(layout))
        port.model().set_layout(ov.Layout(layout))
        steps = port.preprocess()
        steps.mean(list(entry.mean))
        steps.scale(list(entry.scale))
    return preprocessor.build()


def _input_index(model: Any, name: str) -> int:
    if name == "*":
        only_input([port.get_any_name() for port in model.inputs], "mean/scale")
        return 0
    for index, port in enumerate(model.inputs):
        if name in port.get_names():
            return index
    raise InvalidInputError(f"mean/scale: the model has no input '{name}'")


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

    After a failed inference the ``InferRequest`` is replaced: OpenVINO keeps the failure
    (it re-raises it from ``wait_for``) and can report the request busy for a while, which
    would hand the error to the next frame. A generation number ties each callback to the
    ``InferRequest`` that was started.
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
        self._on_done: DoneCallback | None = None
        self._done_lock = threading.Lock()  # the callback and reap() race to report
        self._generation = 0
        self._request: Any = None
        self._renew()

    def _renew(self) -> None:
        """A fresh ``InferRequest``: no stored failure, nothing bound."""
        if self._compiled is None:
            return  # closed: nothing will run on it again
        self._generation += 1
        self._request = self._compiled.create_infer_request()
        self._request.set_callback(self._completed, self._generation)
        self._bound: list[np.ndarray | None] = [None] * len(self._make_tensors)
        self._views: list[np.ndarray] | None = None

    def _bind(self, inputs: Sequence[np.ndarray]) -> None:
        bound = self._bound
        for index, array in enumerate(inputs):
            # The same array object again, bound over its own memory, needs no new binding.
            if array is bound[index]:
                continue
            self._request.set_input_tensor(index, self._make_tensors[index](array))
            shared = self._shares[index] and array.flags.writeable  # else OpenVINO copied
            bound[index] = array if shared else None

    def _collect(self, copy: bool) -> list[np.ndarray]:
        views = self._views
        if views is None:
            request = self._request
            tensors = [request.get_output_tensor(i) for i in range(self._output_count)]
            views = [tensor.data for tensor in tensors]
            for index, fix in self._fixups:
                views[index] = fix(views[index], tuple(tensors[index].shape))
            if self._static_outputs and not self._fixups:
                self._views = views
        if copy:
            return [view.copy() for view in views]
        return list(views)

    def _account(self) -> None:
        stats = self.stats
        stats.device_ns += int(self._request.latency * 1e6)
        if self._model.profiling:
            model = self._model
            infos = self._request.profiling_info
            _accumulate_layers(stats.layers, infos, model.device, model.preprocessing_nodes)

    def _check_open(self) -> None:
        if self._compiled is None:
            raise ModelClosedError("the model was closed; this request can no longer run")

    # -- the backend interface ------------------------------------------------------------
    def infer(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._infer(inputs, copy=True)

    def infer_bound(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._infer(inputs, copy=False)

    def _infer(self, inputs: Sequence[np.ndarray], copy: bool) -> list[np.ndarray]:
        self._check_open()
        try:
            with _translate(InferenceFailedError, "OpenVINO inference failed"):
                self._bind(inputs)
                self._request.infer()
                outputs = self._collect(copy=copy)
                self._account()
        except InferenceFailedError:
            self._renew()
            raise
        return outputs

    def start(self, inputs: Sequence[np.ndarray], on_done: DoneCallback) -> None:
        self._check_open()
        self._on_done = on_done
        try:
            with _translate(InferenceFailedError, "OpenVINO could not start inference"):
                self._bind(inputs)
                self._request.start_async()
        except BaseException:
            self._on_done = None
            raise

    def _take_on_done(self, generation: int) -> DoneCallback | None:
        with self._done_lock:
            if generation != self._generation:
                return None  # a late word from a replaced InferRequest
            on_done, self._on_done = self._on_done, None
        return on_done

    def _completed(self, generation: Any) -> None:
        on_done = self._take_on_done(generation)
        if on_done is None:
            return  # reap() reported it already
        try:
            with _translate(InferenceFailedError, "OpenVINO inference failed"):
                outputs = self._collect(copy=True)
                self._account()
        except BaseException as exc:  # handed to the waiter
            on_done(None, exc)
        else:
            on_done(outputs, None)

    def reap(self) -> bool:
        request, generation = self._request, self._generation
        if self._on_done is None or request is None:
            return False
        try:
            request.wait_for(0)  # raises the failure OpenVINO did not call back for
        except Exception as exc:
            on_done = self._take_on_done(generation)
            if on_done is None:
                return False
            self._renew()  # before the request is handed to the next frame
            error = InferenceFailedError(f"OpenVINO inference failed: {_first_line(exc)}")
            error.__cause__ = exc
            on_done(None, error)
            return True
        return False

    def close(self) -> None:
        self._bound = [None] * len(self._bound)
        self._views = None
        self._compiled = None  # the InferRequest goes when the last callback is done


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
