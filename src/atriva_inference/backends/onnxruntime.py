"""ONNX Runtime backend: ONNX models on the CPU (CUDA with onnxruntime-gpu and a GPU)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import logging
import os
import platform
import struct
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnxruntime as ort

from ..devices import Device
from ..dtypes import STRING, SUBBYTE_BITS, pack_subbyte, unpack_subbyte
from ..errors import (
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceRuntimeError,
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
    ErrorTranslator,
    InputConversion,
    LoadedModel,
    LoadOptions,
    declared_precision,
    foreign_format_refused,
)

__all__ = ["ONNXRuntimeBackend"]

# 'tensor(float)' -> numpy dtype as this runtime shows it to users.
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(string)": STRING,
    "tensor(bfloat16)": np.dtype(ml_dtypes.bfloat16),
    "tensor(float8e4m3fn)": np.dtype(ml_dtypes.float8_e4m3fn),
    "tensor(float8e4m3fnuz)": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "tensor(float8e5m2)": np.dtype(ml_dtypes.float8_e5m2),
    "tensor(float8e5m2fnuz)": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "tensor(float8e8m0)": np.dtype(ml_dtypes.float8_e8m0fnu),
    "tensor(float4e2m1)": np.dtype(ml_dtypes.float4_e2m1fn),
    "tensor(int4)": np.dtype(ml_dtypes.int4),
    "tensor(uint4)": np.dtype(ml_dtypes.uint4),
    "tensor(int2)": np.dtype(ml_dtypes.int2),
    "tensor(uint2)": np.dtype(ml_dtypes.uint2),
}
# ONNX element type numbers (onnx.TensorProto) of the ml_dtypes types, which ONNX Runtime's
# numpy bridge cannot take: they travel as OrtValues built over their raw bits.
_ONNX_ELEMENT_TYPES: dict[str, int] = {
    "bfloat16": 16,
    "float8_e4m3fn": 17,
    "float8_e4m3fnuz": 18,
    "float8_e5m2": 19,
    "float8_e5m2fnuz": 20,
    "uint4": 21,
    "int4": 22,
    "float4_e2m1fn": 23,
    "float8_e8m0fnu": 24,
    "uint2": 25,
    "int2": 26,
}

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


def _ort_message(exc: BaseException) -> str:
    return str(exc).replace("[ONNXRuntimeError] : ", "").strip()


def _refine(exc: BaseException, error: type[InferenceRuntimeError]) -> type[InferenceRuntimeError]:
    """ONNX Runtime's InvalidArgument during a run means the inputs, not the backend."""
    if error is InferenceFailedError and type(exc).__name__ == "InvalidArgument":
        return InvalidInputError
    return error


_translate = ErrorTranslator(describe=_ort_message, refine=_refine)
_log = logging.getLogger(__name__)
#: What ONNX Runtime raises: its own exception classes (none shares a base but Exception),
#: RuntimeError from its bindings, OSError from files.
_ORT_ERRORS: tuple[type[Exception], ...] = (
    *(
        value
        for value in vars(ort.capi.onnxruntime_pybind11_state).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ),
    RuntimeError,
    OSError,
)


def _dims(shape: Sequence[Any] | None) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    return tuple(dim if isinstance(dim, int) and dim >= 0 else None for dim in shape)


def _describe(node: Any) -> TensorInfo:
    """A port as ONNX Runtime types it: ``tensor(float)``, ``seq(tensor(float))``,
    ``optional(tensor(float))`` or ``optional(seq(tensor(float)))``."""
    kind = node.type
    optional = kind.startswith("optional(")
    if optional:
        kind = kind[len("optional(") : -1]
    sequence = kind.startswith("seq(")
    if sequence:
        kind = kind[len("seq(") : -1]
    dtype = _NUMPY_DTYPES.get(kind)
    if dtype is None:  # maps (ONNX-ML's ZipMap), sparse tensors, types newer than us
        raise ModelLoadError(
            f"'{node.name}' has type {node.type}, which this runtime cannot exchange with numpy "
            f"(it takes tensors, sequences of tensors and optionals of those)"
        )
    if (sequence or optional) and dtype.name in _ONNX_ELEMENT_TYPES:
        raise ModelLoadError(
            f"'{node.name}' has type {node.type}: ONNX Runtime's Python API exchanges "
            f"sequences and optionals of numpy's own types only, not of {dtype.name}"
        )
    # A sequence's items have shapes of their own: ONNX Runtime reports none for them.
    shape = None if sequence else _dims(node.shape)
    return TensorInfo(node.name, shape, dtype, sequence=sequence, optional=optional)


def _cpu_name() -> str:
    """The CPU model, part of the cache key: optimized models can be CPU-specific."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class ONNXRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self._providers = ort.get_available_providers()

    def devices(self) -> list[str]:
        devices = ["CPU"]
        if _CUDA in self._providers:
            devices.extend(_cuda_devices())
        return devices

    def load(self, path: Path, device: Device, options: LoadOptions) -> LoadedModel:
        suffix = path.suffix.lower()
        if path.is_dir() or suffix not in (".onnx", ".ort"):
            foreign = foreign_format_refused("onnxruntime", "ONNX (.onnx)", path)
            if foreign is not None:
                raise foreign
            raise ModelLoadError(f"backend 'onnxruntime' reads ONNX (.onnx), got '{path.name}'")
        if options.precision not in (None, "FP32", "INT8"):
            raise DeviceUnavailableError(
                f"precision {options.precision} is not offered by ONNX Runtime on {device}: "
                f"it runs the model's own precision (convert the model to FP16 beforehand, "
                f"or use backend='openvino')"
            )
        providers = _providers_for(device)
        started = time.perf_counter()
        source = _read(path, options)
        # Only a model with quantization in its graph (or asked to be INT8) has its optimized
        # graph written out and read back: a float model pays nothing.
        quantized = _looks_quantized(source.data)
        inspect = quantized or options.precision == "INT8"
        session, from_cache, operators = self._checked_session(
            source, providers, options, device, inspect=inspect
        )
        compile_ms = (time.perf_counter() - started) * 1e3
        model = self._model(session, source, providers, options, device, compile_ms, from_cache)
        if operators is not None:
            model.quantization = _quantization(
                operators, model.precision, quantized=quantized, asked=inspect
            )
            model.precision = label(model.quantization, model.precision)
        return model

    def _model(
        self,
        session: Any,
        source: _Source,
        providers: list[Provider],
        options: LoadOptions,
        device: Device,
        compile_ms: float,
        from_cache: bool,
    ) -> ONNXRuntimeModel:
        model = ONNXRuntimeModel(session, device.name, compile_ms, from_cache, options.profiling)
        if _provider_name(providers[0]) == _CUDA:
            model.device_inputs = device
        model.throughput_session = functools.partial(self._throughput_session, source, providers)
        model.specializer = functools.partial(self._specialize, source, providers, options, device)
        return model

    def _checked_session(
        self,
        source: _Source,
        providers: list[Provider],
        options: LoadOptions,
        device: Device,
        *,
        inspect: bool = False,
    ) -> tuple[Any, bool, _Inspection | None]:
        """The session, whether the cache gave it, and with ``inspect`` the operator types
        of the graph ONNX Runtime really runs (its optimized graph), or why they could not
        be read."""
        found: list[_Inspection | None] = []

        def create() -> tuple[Any, bool]:
            session, from_cache, operators = self._create_session(
                source, providers, options, inspect
            )
            found.append(operators)
            return session, from_cache

        session, from_cache = _activated(create, providers, device)
        return session, from_cache, found[-1] if found else None

    def _specialize(
        self,
        source: _Source,
        providers: list[Provider],
        options: LoadOptions,
        device: Device,
        conversions: Sequence[InputConversion],
    ) -> ONNXRuntimeModel | None:
        """A session on the graph with Transpose/Cast prepended: measured faster than numpy
        (uint8 NHWC 1080p -> float NCHW: 1.1 ms in the graph vs 2.2 ms transpose + astype)."""
        if source.ort_format or not onnx_graph.available():
            return None  # numpy converts instead (an ORT-format model has no ONNX graph)
        started = time.perf_counter()
        with _translate(InferenceFailedError, "cannot prepare the model for these inputs"):
            proto = onnx_graph.parse(source.data)
            try:
                onnx_graph.with_conversions(proto, conversions)
            except NotImplementedError:
                return None  # numpy converts instead
            edited = replace(source, data=proto.SerializeToString())
        variant_options = replace(options, cache_dir=None)
        session, _, _ = self._checked_session(edited, providers, variant_options, device)
        compile_ms = (time.perf_counter() - started) * 1e3
        return self._model(session, edited, providers, variant_options, device, compile_ms, False)

    def _throughput_session(self, source: _Source, providers: list[Provider]) -> Any:
        """For the async queue: one single-threaded session that every worker shares.

        Measured on 2 cores (ResNet-50): 1-thread sessions, one per concurrent request,
        reach ~38 fps where one 2-thread session shared by 2 threads loses ~20%.
        """
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = 1
        session_options.inter_op_num_threads = 1

        def create() -> tuple[Any, bool]:
            with _translate(ModelLoadError, f"cannot load '{source.path}' for throughput"):
                return _session(source, session_options, providers), False

        return _activated(create, providers, "the async queue")[0]

    def _session_options(self, options: LoadOptions) -> Any:
        session_options = ort.SessionOptions()
        if options.profiling:
            session_options.enable_profiling = True
            session_options.profile_file_prefix = os.path.join(tempfile.gettempdir(), "atriva-ort")
        return session_options

    def _create_session(
        self, source: _Source, providers: list[Provider], options: LoadOptions, inspect: bool
    ) -> tuple[Any, bool, _Inspection | None]:
        """The session, whether it came from the cache, and (``inspect``) the operators of
        its optimized graph, read from the ORT-format file the session wrote (the cache
        entry where there is one)."""
        context = f"cannot load '{source.path}'"
        if source.ort_format:  # already ONNX Runtime's optimized form: its own graph
            with _translate(ModelLoadError, context):
                session = _session(source, self._session_options(options), providers)
            return session, False, _inspection(source.data) if inspect else None
        if options.cache_dir is None:
            if not inspect:
                with _translate(ModelLoadError, context):
                    return _session(source, self._session_options(options), providers), False, None
            return self._inspected_session(source, providers, options)
        key = self._cache_key(source.data, providers)
        cached = options.cache_dir / "onnxruntime" / f"{key}.ort"
        if cached.is_file():
            try:
                session = ort.InferenceSession(
                    str(cached), self._session_options(options), providers=providers
                )
                return session, True, _inspection_of_file(cached) if inspect else None
            except _ORT_ERRORS:  # a damaged cache entry is rebuilt, never fatal
                with contextlib.suppress(OSError):
                    cached.unlink()
        cached.parent.mkdir(parents=True, exist_ok=True)
        writer = f"{os.getpid()}.{threading.get_ident()}"  # concurrent loads never share
        partial = cached.with_name(f"{cached.stem}.{writer}.partial.ort")
        session_options = self._session_options(options)
        session_options.optimized_model_filepath = str(partial)
        # ORT warns that the optimized file is hardware-specific; the cache key says so.
        session_options.log_severity_level = 3
        with _translate(ModelLoadError, context):
            session = _session(source, session_options, providers)
        if not partial.is_file():
            return session, False, "ONNX Runtime wrote no optimized graph" if inspect else None
        os.replace(partial, cached)  # atomic: a concurrent reader never sees half a file
        return session, False, _inspection_of_file(cached) if inspect else None

    def _inspected_session(
        self, source: _Source, providers: list[Provider], options: LoadOptions
    ) -> tuple[Any, bool, _Inspection]:
        """A session that writes its optimized graph to a temporary ORT-format file, and the
        operators read back from it. When ONNX Runtime cannot write it (e.g. a graph its
        format cannot hold) the model is loaded plainly (a broken model fails there with
        its own error) and the inspection says why."""
        with tempfile.TemporaryDirectory(prefix="atriva-ort-") as folder:
            optimized = Path(folder) / "optimized.ort"
            session_options = self._session_options(options)
            session_options.optimized_model_filepath = str(optimized)
            session_options.log_severity_level = 3  # see the cache's note in _create_session
            try:
                session = _session(source, session_options, providers)
            except _ORT_ERRORS as exc:
                _log.debug("cannot write the optimized graph of %s", source.path, exc_info=True)
                why = f"ONNX Runtime could not write its optimized graph ({_ort_message(exc)})"
            else:
                return session, False, _inspection_of_file(optimized)
        with _translate(ModelLoadError, f"cannot load '{source.path}'"):
            return _session(source, self._session_options(options), providers), False, why

    def _cache_key(self, data: bytes, providers: list[Provider]) -> str:
        """The model as read (edits made, weights read in), the runtime and the hardware."""
        digest = hashlib.sha256(data)
        names = ",".join(_provider_name(provider) for provider in providers)
        digest.update("|".join([ort.__version__, names, _hardware_name(providers)]).encode())
        return digest.hexdigest()[:32]


#: Operators that run INT8 kernels in ONNX Runtime's optimized graph, and the float ones
#: that do the same work (a fused or NCHWc Conv is still a Conv).
_INT8_OPERATORS = frozenset(
    {
        "QLinearConv",
        "QLinearConvTranspose",
        "NhwcQLinearConv",
        "QLinearMatMul",
        "QGemm",
        "ConvInteger",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QAttention",
    }
)
_FLOAT_OPERATORS = frozenset(
    {
        "Conv",
        "FusedConv",
        "NhwcFusedConv",
        "ConvTranspose",
        "MatMul",
        "FusedMatMul",
        "Gemm",
        "FusedGemm",
        "Attention",
        "MatMulNBits",
    }
)
#: Operator names whose presence in a node means the model may carry quantization (Q/DQ
#: pairs, QOperator or integer operators); DequantizeLinear contains QuantizeLinear.
_QUANTIZED_MARKERS = (b"QuantizeLinear", b"QLinear", b"ConvInteger", b"MatMulInteger", b"QGemm")
_MODEL_GRAPH, _GRAPH_NODE = 7, 1  # ModelProto.graph, GraphProto.node (onnx.proto)


def _looks_quantized(data: bytes) -> bool:
    """Whether the model may be quantized: its nodes' bytes searched for quantized operator
    names, the weights skipped unread (a protobuf walk of the top two levels, no parse), so a
    float model of 100 MB costs well under a millisecond. A false hit (a node *named* so)
    only costs an inspection that finds no INT8 layer."""
    try:
        for field, start, end in _fields(data, 0, len(data)):
            if field != _MODEL_GRAPH:
                continue
            for node, node_start, node_end in _fields(data, start, end):
                if node == _GRAPH_NODE and any(
                    data.find(marker, node_start, node_end) >= 0 for marker in _QUANTIZED_MARKERS
                ):
                    return True
        return False
    except (IndexError, ValueError):  # not a protobuf we can walk: search it all
        return any(marker in data for marker in _QUANTIZED_MARKERS)


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(field number, start, end)`` of each length-delimited field of one protobuf
    message in ``data[start:end]``; other wire types are stepped over."""
    position = start
    while position < end:
        key, position = _varint(data, position)
        wire = key & 7
        if wire == 0:
            _, position = _varint(data, position)
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        elif wire == 2:
            length, position = _varint(data, position)
            yield key >> 3, position, position + length
            position += length
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {position}")
    if position != end:
        raise ValueError("protobuf field runs past its message")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


#: The operator types of an optimized graph, or why they could not be read.
_Inspection = list[str] | str


def _inspection(data: bytes) -> _Inspection:
    """The operator types of an ORT-format model's main graph, or why they could not be
    read (the cause logged)."""
    try:
        from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import (
            InferenceSession as OrtFormat,
        )
    except ImportError as exc:  # a build of onnxruntime without its tools
        _log.debug("no ORT-format reader", exc_info=True)
        return f"onnxruntime's ORT-format reader is missing ({exc})"
    try:
        graph = OrtFormat.InferenceSession.GetRootAsInferenceSession(data, 0).Model().Graph()
        return [graph.Nodes(index).OpType().decode() for index in range(graph.NodesLength())]
    # what a truncated or foreign flatbuffer raises: bad offsets, a missing table (None)
    except (AttributeError, IndexError, struct.error, UnicodeDecodeError) as exc:
        _log.debug("cannot read an optimized graph", exc_info=True)
        return f"its optimized graph is unreadable ({type(exc).__name__}: {exc})"


def _inspection_of_file(path: Path) -> _Inspection:
    try:
        data = path.read_bytes()
    except OSError as exc:
        _log.debug("cannot read the optimized graph %s", path, exc_info=True)
        return f"its optimized graph could not be read back ({exc.strerror or exc})"
    return _inspection(data)


def _quantization(
    operators: _Inspection, hinted: str, *, quantized: bool, asked: bool
) -> Quantization | None:
    """How much runs INT8 in the optimized graph's ``operators``; unknown (never float)
    for a quantized model whose graph could not be read."""
    if isinstance(operators, str):
        return unknown(hinted, operators) if quantized else None
    layers = [
        (operator in _INT8_OPERATORS, hinted)
        for operator in operators
        if operator in _INT8_OPERATORS or operator in _FLOAT_OPERATORS
    ]
    return summarize(layers, quantized_graph=quantized, default_float=hinted, asked=asked)


@dataclass(frozen=True)
class _Source:
    """A model as ``load`` read it, once: every session of it is built from ``data``, so
    whatever the path holds later (another model, nothing) changes no answer."""

    data: bytes  # serialized: edits made, weights kept in files of their own read in
    path: Path  # as the caller gave it, for messages
    folder: Path  # absolute: where weights too big to read in stay, in files of their own

    @property
    def ort_format(self) -> bool:
        return self.path.suffix.lower() == ".ort"


def _read(path: Path, options: LoadOptions) -> _Source:
    """Read the model file (and its external weights), making the edits ``options`` ask."""
    with _translate(ModelLoadError, f"cannot read '{path}'"):
        data = path.read_bytes()
    source = _Source(data, path, path.absolute().parent)
    if source.ort_format:
        if options.edits_model:
            raise ModelLoadError(
                f"'{path.name}' is in ONNX Runtime's own format, whose graph cannot be edited: "
                f"load the .onnx model for dynamic=True, mean= or scale="
            )
        return source
    with _translate(ModelLoadError, f"cannot read the external data of '{path}'"):
        data = onnx_graph.with_external_data(data, source.folder)
    if options.edits_model:
        with _translate(ModelLoadError, f"cannot edit the graph of '{path}'"):
            proto = onnx_graph.parse(data)
            onnx_graph.edit_for_load(proto, options)
            data = proto.SerializeToString()
    return replace(source, data=data)


#: Where ONNX Runtime looks for the external data of a model given as bytes.
_EXTERNAL_DATA_FOLDER = "session.model_external_initializers_file_folder_path"


def _session(source: _Source, session_options: Any, providers: list[Provider]) -> Any:
    """An ONNX Runtime session of ``source``, built from its bytes."""
    # Weights left in their files (past protobuf's limit, or without the onnx package) are
    # found beside the model, as when ONNX Runtime loads it from its path.
    session_options.add_session_config_entry(_EXTERNAL_DATA_FOLDER, str(source.folder))
    return ort.InferenceSession(source.data, session_options, providers=providers)


def _activated(
    create: Callable[[], tuple[Any, bool]], providers: list[Provider], device: Device
) -> tuple[Any, bool]:
    """``create()`` a session and check its first provider really is active: ONNX Runtime
    only *warns* when it cannot start one, then runs on the CPU. We refuse instead."""
    wanted = _provider_name(providers[0])
    if wanted == _CUDA:
        _preload_cuda_libraries()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session, from_cache = create()
    active = session.get_providers()
    if active[0] != wanted:
        said = "; ".join(str(w.message) for w in caught)
        raise DeviceUnavailableError(
            f"ONNX Runtime did not activate {wanted} for {device} "
            f"(active: {', '.join(active)}){f': {said}' if said else ''}; "
            f"refusing to fall back silently"
        )
    for warning in caught:  # anything else ONNX Runtime said still reaches the user
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return session, from_cache


@functools.cache
def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries pip installed (``onnxruntime-gpu[cuda,cudnn]``), which
    the dynamic loader does not search; system-wide ones are found anyway. Once a process."""
    preload = getattr(ort, "preload_dlls", None)  # ONNX Runtime 1.21+
    if preload is not None:
        with contextlib.suppress(Exception):  # missing libraries show at the provider check
            preload()


#: A provider as ``ort.InferenceSession(providers=...)`` takes it: a name, or (name, options).
Provider = str | tuple[str, dict[str, str]]


def _providers_for(device: Device) -> list[Provider]:
    """``GPU.1`` -> the CUDA provider on device 1, with the CPU for the nodes CUDA lacks."""
    if device.kind != "GPU":
        return [_CPU]
    # FP32 means FP32: ONNX Runtime's CUDA provider computes float32 convolutions and matmuls
    # in TF32 unless told not to (~1e-3 relative error).
    return [(_CUDA, {"device_id": str(device.index), "use_tf32": "0"}), _CPU]


def _provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def _cuda_devices() -> list[str]:
    """The GPUs CUDA sees (ONNX Runtime lists its CUDA provider whether or not there is a
    GPU); counted by the CUDA layer, which asks the driver itself without cuda-python."""
    from ..cuda import gpu_devices

    return gpu_devices()


def _hardware_name(providers: Sequence[Provider]) -> str:
    """What an optimized model is specific to: the GPU for CUDA, else the CPU model."""
    provider = providers[0]
    if _provider_name(provider) == _CUDA:
        with contextlib.suppress(InferenceRuntimeError):
            from ..cuda import device_properties

            properties = device_properties(int(provider[1]["device_id"]))
            major, minor = properties.compute_capability
            return f"{properties.name} sm_{major}{minor}"
        return "CUDA"
    return _cpu_name()


class ONNXRuntimeModel(LoadedModel):
    def __init__(
        self, session: Any, device: str, compile_ms: float, from_cache: bool, profiling: bool
    ) -> None:
        self._session = session
        self.device = device
        self.compile_ms = compile_ms
        self.loaded_from_cache = from_cache
        self.profiling = profiling
        self.inputs = [_describe(node) for node in session.get_inputs()]
        self.outputs = [_describe(node) for node in session.get_outputs()]
        ports = self.inputs + self.outputs
        if not all(info.is_tensor for info in ports) and any(
            info.dtype.name in _ONNX_ELEMENT_TYPES for info in ports
        ):
            raise ModelLoadError(
                "the model has sequence or optional ports and tensors of an ml_dtypes type "
                "(bfloat16, float8, int4, ...): ONNX Runtime's Python API cannot run them "
                "together (the ml_dtypes tensors need OrtValues, sequences need lists)"
            )
        self.precision = declared_precision(self.inputs + self.outputs)
        self.input_names = [info.name for info in self.inputs]
        self.output_names = [info.name for info in self.outputs]
        self._layers: list[LayerRecord] | None = None
        self._layers_after_us = 0.0
        # ONNX Runtime writes its profile file when profiling ends, at the latest when the
        # session dies: end it ourselves, even for a model dropped without close().
        self._discard_profile = (
            weakref.finalize(self, _discard_profile, session) if profiling else None
        )
        self._throughput: Any = None
        self._throughput_lock = threading.Lock()
        # Set by the backend: what builds the sessions made after load. They hold the
        # model's bytes, let go at close.
        self.throughput_session: Callable[[], Any] = _no_session
        self.specializer: Callable[[Sequence[InputConversion]], LoadedModel | None] = _no_variant

    def specialize(
        self,
        conversions: Sequence[InputConversion],
        shapes: Sequence[tuple[int, ...]] | None = None,
    ) -> LoadedModel | None:
        # ONNX Runtime runs every shape on its dynamic session: only conversions specialize.
        if not conversions:
            return None
        return self.specializer(conversions)

    def create_request(self) -> BackendRequest:
        if self.device_inputs is not None:
            return ONNXRuntimeCudaRequest(self, self._session)
        return ONNXRuntimeRequest(self, self._session)

    def create_throughput_requests(self, count: int | None) -> list[BackendRequest]:
        with self._throughput_lock:  # two queues created at once compile once
            if self._throughput is None:
                started = time.perf_counter()
                self._throughput = self.throughput_session()
                self.compile_ms += (time.perf_counter() - started) * 1e3
        if count is None:
            # Measured on 2 cores (ResNet-50, interleaved with raw threads): when frames were
            # handed to worker threads, two in flight per core beat one per core by 1-2%;
            # with map's workers pulling frames, both measured the same in one experiment
            # (0.987 vs 0.990 of raw N threads, 64-frame rounds), and submit() still hands
            # frames over: two per core stays.
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
            count = 2 * cores
        request_class = ONNXRuntimeCudaRequest if self.device_inputs else ONNXRuntimeRequest
        return [request_class(self, self._throughput) for _ in range(max(count, 1))]

    def collect_layers(self) -> list[LayerRecord]:
        """Parse ONNX Runtime's profile. It can only be read once (``end_profiling`` ends
        it for the session), so layer detail covers the runs before the first call."""
        if not self.profiling or self._session is None:
            return []
        if self._layers is None:
            with _translate(InferenceFailedError, "cannot read ONNX Runtime's profile"):
                self._layers = _parse_profile(
                    self._session.end_profiling(), self.device, self._layers_after_us
                )
        return self._layers

    def reset_layers(self) -> None:
        if self._layers is not None:
            self._layers = []
        elif self.profiling and self._session is not None:
            # ORT's event times are microseconds from its profiling start (wall clock).
            started_ns = self._session.get_profiling_start_time_ns()
            self._layers_after_us = (time.time_ns() - started_ns) / 1e3

    def close(self) -> None:
        if self._discard_profile is not None:
            self._discard_profile()
        self._session = self._throughput = None
        self.throughput_session, self.specializer = _no_session, _no_variant


def _no_session() -> None:
    """No session, for a queue of a closed model: its requests say the model is closed."""


def _no_variant(conversions: Sequence[InputConversion]) -> None:
    """No variant, for a closed model: the runtime falls back to the model itself, whose
    requests say it is closed."""


def _discard_profile(session: Any) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        path = session.end_profiling()  # "" when it already ended
        if path:
            os.remove(path)


def _parse_profile(path: str, device: str, after_us: float) -> list[LayerRecord]:
    try:
        with open(path, encoding="utf-8") as profile:
            events = json.load(profile)
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    layers: dict[str, LayerRecord] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if event.get("ts", 0) < after_us:
            continue
        args = event.get("args", {})
        node = name[: -len("_kernel_time")]
        record = layers.get(node)
        if record is None:
            record = layers[node] = LayerRecord(
                name=node,
                type=args.get("op_name", ""),
                implementation=args.get("provider", "").replace("ExecutionProvider", ""),
                device=device,
                preprocessing="__atriva_" in node,  # the prologue onnx_graph adds
            )
        record.time_ms += event.get("dur", 0) / 1e3
        record.count += 1
    return list(layers.values())


class ONNXRuntimeRequest(BackendRequest):
    """ONNX Runtime sessions are thread-safe: every request shares the model's session.

    ``close`` may come from another thread while work is queued or running (the model
    closing): each run reads the session once, so it either runs to the end on that session
    or finds none and raises :class:`ModelClosedError`.
    """

    def __init__(self, model: ONNXRuntimeModel, session: Any) -> None:
        super().__init__()
        self._session = session
        self._input_names = model.input_names
        self._output_names = model.output_names
        self._input_dtypes = [info.dtype for info in model.inputs]
        self._output_dtypes = [info.dtype for info in model.outputs]
        self._needs_ort_values = any(
            dtype.name in _ONNX_ELEMENT_TYPES for dtype in self._input_dtypes + self._output_dtypes
        )
        self._output_shapes = [info.shape for info in model.outputs]
        #: Sequence or optional ports: ONNX Runtime's binding takes tensors only.
        self._has_ports = not all(info.is_tensor for info in model.inputs + model.outputs)
        # IOBinding takes numeric numpy arrays; strings, ml_dtypes, sequences and optionals
        # go through infer().
        self._bindable = not (
            self._needs_ort_values
            or self._has_ports
            or any(dtype.kind in "USO" for dtype in self._input_dtypes)
        )
        self._binding: Any = None  # IOBinding for infer_bound, made on first use
        self._bound: list[np.ndarray | None] = [None] * len(model.inputs)
        self._output_buffers: list[np.ndarray] | None = None

    def infer(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        session = self._session
        if session is None:
            raise _closed()
        started = time.perf_counter_ns()
        with _translate(InferenceFailedError, "ONNX Runtime inference failed"):
            if self._needs_ort_values:
                outputs = self._infer_ort_values(session, inputs)
            else:
                outputs = session.run(self._output_names, dict(zip(self._input_names, inputs)))
        self.stats.device_ns += time.perf_counter_ns() - started
        return outputs

    def infer_bound(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """IOBinding: inputs bound once per array (zero-copy), static outputs written into
        buffers allocated once; the returned arrays are those buffers."""
        if not self._bindable:
            return self.infer(inputs)
        session, binding, buffers = self._session, self._binding, self._output_buffers
        if session is None:
            raise _closed()
        started = time.perf_counter_ns()
        with _translate(InferenceFailedError, "ONNX Runtime inference failed"):
            if binding is None:
                binding, buffers = self._bind_outputs(session)
            bound = self._bound
            for index, array in enumerate(inputs):
                if array is not bound[index]:  # the same array object again needs no new binding
                    binding.bind_cpu_input(self._input_names[index], array)
                    bound[index] = array
            if buffers is not None:
                session.run_with_iobinding(binding)
                outputs = list(buffers)
            else:
                # Dynamic outputs: ONNX Runtime keeps what it allocated bound, and refuses it
                # at another shape; bind afresh for it to allocate at this run's shape.
                binding.clear_binding_outputs()
                for name in self._output_names:
                    binding.bind_output(name, "cpu")
                session.run_with_iobinding(binding)
                outputs = binding.copy_outputs_to_cpu()
        self.stats.device_ns += time.perf_counter_ns() - started
        return outputs

    def _bind_outputs(self, session: Any) -> tuple[Any, list[np.ndarray] | None]:
        """The binding, with static outputs bound to buffers allocated once (those buffers;
        None for dynamic outputs)."""
        binding = session.io_binding()
        buffers = None
        if all(shape is not None and None not in shape for shape in self._output_shapes):
            buffers = []
            for name, dtype, shape in zip(
                self._output_names, self._output_dtypes, self._output_shapes
            ):
                buffer = np.empty(shape, dtype)
                binding.bind_output(name, "cpu", 0, dtype, list(shape), buffer.ctypes.data)
                buffers.append(buffer)
        self._binding, self._output_buffers = binding, buffers
        return binding, buffers

    def _infer_ort_values(self, session: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The path for models with ml_dtypes types (bfloat16, float8, int4, ...)."""
        feed = {name: _to_ort_value(array) for name, array in zip(self._input_names, inputs)}
        values = session.run_with_ort_values(self._output_names, feed)
        return [_from_ort_value(value, dtype) for value, dtype in zip(values, self._output_dtypes)]

    def close(self) -> None:
        self._session = self._binding = self._output_buffers = None
        self._bound = [None] * len(self._bound)


class ONNXRuntimeCudaRequest(ONNXRuntimeRequest):
    """A request on the CUDA provider: GPU tensors (``cuda.DeviceArray``) are bound in
    place through IOBinding; a stream's outputs stay on the GPU, in buffers allocated once.

    ONNX Runtime copies a host input to the device when it is *bound*, so host inputs are
    bound again every run (the same frame buffer refilled by a camera must be copied again);
    device inputs are read in place, so only a different one needs binding.

    Written against ONNX Runtime's documented IOBinding/OrtValue API; it has not run on a GPU
    in this project yet (see docs/status.md).
    """

    def __init__(self, model: ONNXRuntimeModel, session: Any) -> None:
        super().__init__(model, session)
        assert model.device_inputs is not None  # a CUDA model takes GPU data
        self._device_id = model.device_inputs.index
        self._device_outputs: list[Any] | None = None  # OrtValues on the GPU, static shapes
        from ..cuda import DeviceArray  # imported once here, not on every frame

        self._device_array = DeviceArray
        self._has_strings = any(
            dtype.kind in "USO" for dtype in self._input_dtypes + self._output_dtypes
        )

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        if self._has_ports or all(type(array) is np.ndarray for array in inputs):
            # ONNX Runtime copies host data in and out itself (sequences are host data).
            return super().infer(inputs)
        session = self._session
        if session is None:
            raise _closed()
        started = time.perf_counter_ns()
        with _translate(InferenceFailedError, "ONNX Runtime inference failed on CUDA"):
            binding = session.io_binding()  # a binding of this run's own
            for index, array in enumerate(inputs):
                self._bind_input(binding, index, array)
            for name in self._output_names:
                binding.bind_output(name, "cpu")
            session.run_with_iobinding(binding)
            outputs = [
                _from_ort_value(value, dtype)
                for value, dtype in zip(binding.get_outputs(), self._output_dtypes)
            ]
        self.stats.device_ns += time.perf_counter_ns() - started
        return outputs

    def infer_bound(self, inputs: Sequence[Any]) -> list[Any]:
        """Outputs stay on the GPU: ``DeviceArray`` views of buffers the next run reuses."""
        if self._has_strings or self._has_ports:  # strings and sequences live on the host
            return self.infer(inputs)
        session, binding, device_outputs = self._session, self._binding, self._device_outputs
        if session is None:
            raise _closed()
        started = time.perf_counter_ns()
        with _translate(InferenceFailedError, "ONNX Runtime inference failed on CUDA"):
            if binding is None:
                binding, device_outputs = self._bind_device_outputs(session)
            bound = self._bound
            for index, array in enumerate(inputs):
                if type(array) is np.ndarray or array is not bound[index]:
                    self._bind_input(binding, index, array)
                    bound[index] = array
            if device_outputs is None:  # dynamic outputs: ORT allocates them per run
                binding.clear_binding_outputs()
                for name in self._output_names:
                    binding.bind_output(name, "cuda", self._device_id)
            session.run_with_iobinding(binding)
            values = device_outputs or binding.get_outputs()
            device_array = self._device_array
            outputs = [
                device_array(value.data_ptr(), tuple(value.shape()), dtype, self._device_id, value)
                for value, dtype in zip(values, self._output_dtypes)
            ]
        self.stats.device_ns += time.perf_counter_ns() - started
        return outputs

    def _bind_device_outputs(self, session: Any) -> tuple[Any, list[Any] | None]:
        """The binding, with static outputs bound to GPU buffers allocated once (those
        buffers; None for dynamic outputs)."""
        binding = session.io_binding()
        device_outputs = None
        shapes = self._output_shapes
        if all(shape is not None and None not in shape for shape in shapes):
            device_outputs = []
            for name, dtype, shape in zip(self._output_names, self._output_dtypes, shapes):
                value = ort.OrtValue.ortvalue_from_shape_and_type(
                    list(shape), _element_type(dtype), "cuda", self._device_id
                )
                binding.bind_ortvalue_output(name, value)
                device_outputs.append(value)
        self._binding, self._device_outputs = binding, device_outputs
        return binding, device_outputs

    def _bind_input(self, binding: Any, index: int, array: Any) -> None:
        name = self._input_names[index]
        if type(array) is not np.ndarray:  # a DeviceArray, checked by the runtime: used in place
            binding.bind_input(
                name,
                "cuda",
                self._device_id,
                _element_type(array.dtype),
                list(array.shape),
                array.ptr,
            )
        elif array.dtype.name in _ONNX_ELEMENT_TYPES:  # ml_dtypes: their raw bits as an OrtValue
            binding.bind_ortvalue_input(name, _to_ort_value(array))
        else:
            binding.bind_cpu_input(name, array)

    def close(self) -> None:
        super().close()
        self._device_outputs = None


def _closed() -> ModelClosedError:
    return ModelClosedError(
        "the model was closed before this inference ran; load it again to run it"
    )


def _element_type(dtype: np.dtype) -> Any:
    """What ONNX Runtime's binding calls take for ``dtype``: the numpy dtype, or the ONNX
    element type number for the ml_dtypes types its numpy bridge does not know."""
    return _ONNX_ELEMENT_TYPES.get(dtype.name, dtype)


def _to_ort_value(array: np.ndarray) -> Any:
    name = array.dtype.name
    element_type = _ONNX_ELEMENT_TYPES.get(name)
    if element_type is None:
        return ort.OrtValue.ortvalue_from_numpy(array)
    if name in SUBBYTE_BITS:
        packed = pack_subbyte(array)
        value = ort.OrtValue.ortvalue_from_shape_and_type(list(array.shape), element_type)
        ctypes.memmove(value.data_ptr(), packed.ctypes.data, packed.nbytes)
        return value
    carrier = np.uint16 if array.dtype.itemsize == 2 else np.uint8
    # Zero-copy over the caller's array, which the model keeps alive for the whole run.
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array.view(carrier), element_type)


def _from_ort_value(value: Any, dtype: np.dtype) -> np.ndarray:
    name = dtype.name
    if name not in _ONNX_ELEMENT_TYPES:
        return value.numpy()
    shape = tuple(value.shape())
    raw = np.frombuffer(ctypes.string_at(value.data_ptr(), value.tensor_size_in_bytes()), np.uint8)
    if name in SUBBYTE_BITS:
        return unpack_subbyte(raw, dtype, shape)
    return raw.view(dtype).reshape(shape).copy()
