"""Loading: ONNX models parsed and built into TensorRT engines (cached on disk), or
engines (``.engine``/``.plan``) deserialised as they are; the loaded engine's inputs,
outputs and profiles.

TensorRT older than 10 is refused at start: from 10 on, execution contexts share one
optimization profile (TensorRT 10 turned ``PreviewFeature.PROFILE_SHARING_0806`` on for
good, 11 removed the opt-out), so every request owns a context on the engine's single
profile and several run at once; before 10 each concurrent context needed a profile of its
own.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ... import cuda
from ...devices import Device
from ...errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InvalidInputError,
    ModelLoadError,
)
from .. import install_hint
from ..base import Backend, LoadedModel, LoadOptions, ir_refused
from .cache import engine_cache_dir, engine_cache_key, write_atomically
from .messages import process_logger, translate
from .precision import (
    PRECISIONS,
    BuildPlan,
    is_quantized,
    model_precision,
    network_creation_flags,
    plan_build,
    weak_typing,
)
from .profiles import ShapeRange, check_engine_shapes, optimization_profile, shapes_need_dynamic
from .runner import TensorRTModel, dims

__all__ = [
    "ENGINE_SUFFIXES",
    "MIN_TENSORRT_MAJOR",
    "TensorRTBackend",
    "check_tensorrt_version",
    "device_index",
]

#: Execution contexts share one optimization profile from TensorRT 10 on (see the docstring).
MIN_TENSORRT_MAJOR = 10

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def check_tensorrt_version(version: str) -> None:
    """Refuse TensorRT older than :data:`MIN_TENSORRT_MAJOR`.

    The one decision made by version rather than by feature: whether execution contexts
    may share an optimization profile is not visible in the API (TensorRT 8.6 and 10 both
    name ``PreviewFeature.PROFILE_SHARING_0806``; only 10 has it on for good). A version
    that does not parse is let through: the calls themselves then say what is missing.
    """
    head = str(version).split(".", 1)[0]
    if head.isdigit() and int(head) < MIN_TENSORRT_MAJOR:
        raise BackendUnavailableError(
            f"backend 'tensorrt' needs TensorRT {MIN_TENSORRT_MAJOR} or newer, found "
            f"{version}: before {MIN_TENSORRT_MAJOR}, concurrent requests cannot share an "
            f"optimization profile; {install_hint('tensorrt')}"
        )


def device_index(device: Device) -> int:
    """The CUDA index of a resolved GPU (``GPU.1`` -> 1); other kinds are refused."""
    if device.kind != "GPU":
        raise DeviceUnavailableError(
            f"backend 'tensorrt' runs on NVIDIA GPUs ('GPU', 'GPU.0', ...), got {device.name!r}"
        )
    return device.index


def _import_tensorrt() -> ModuleType:
    try:
        return importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:
        # OSError: tensorrt-cu12-bindings present but its libnvinfer missing or unloadable.
        raise BackendUnavailableError(
            f"backend 'tensorrt' cannot import TensorRT ({type(exc).__name__}: {exc}): "
            f"{install_hint('tensorrt')}"
        ) from exc


def _member_names(enum_type: Any) -> frozenset[str]:
    """The member names of a TensorRT (pybind11) enum: what this TensorRT offers."""
    members = getattr(enum_type, "__members__", None)
    if members:
        return frozenset(str(name) for name in members)
    return frozenset(name for name in dir(enum_type) if name.isupper())


def _creation_flags(trt: ModuleType, names: Iterable[str]) -> int:
    flags = 0
    for name in names:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return flags


def _network_tensors(network: Any) -> list[tuple[str, str]]:
    """``(layer type, dtype)`` member names of a parsed network's inputs and layer outputs:
    in a strongly typed network these are the types the engine computes in."""
    tensors = []
    for i in range(network.num_inputs):
        tensors.append(("INPUT", network.get_input(i).dtype.name))
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensors.append((layer.type.name, layer.get_output(j).dtype.name))
    return tensors


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = PRECISIONS  # INT8: explicitly quantized (Q/DQ) models

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self._trt = _import_tensorrt()
        check_tensorrt_version(getattr(self._trt, "__version__", ""))
        cuda.cuda_core(hint=install_hint("tensorrt"))  # missing: BackendUnavailableError now
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._logger = process_logger(self._trt)  # shared: TensorRT keeps only one
        self._runtime: Any = None
        self._lock = threading.Lock()

    def devices(self) -> list[str]:
        return cuda.gpu_devices()

    def close(self) -> None:
        self._runtime = None

    # -- loading ---------------------------------------------------------------------
    def load(self, path: Path, device: Device, options: LoadOptions) -> LoadedModel:
        suffix = path.suffix.lower()
        if suffix in (".xml", ".bin"):
            raise ir_refused("tensorrt", "ONNX (.onnx) or TensorRT engines (.engine, .plan)", path)
        if suffix != ".onnx" and suffix not in ENGINE_SUFFIXES:
            raise ModelLoadError(
                f"backend 'tensorrt' reads ONNX (.onnx) or TensorRT engines (.engine, .plan), "
                f"got '{path.name}'"
            )
        index = device_index(device)
        cuda.use_device(index)
        gpu = cuda.device_properties(index)
        started = time.perf_counter()
        if suffix in ENGINE_SUFFIXES:
            engine = self._deserialize_file(path, gpu, options)
            model = TensorRTModel(self._trt, engine, device, index, None, self._logger)
            model.compile_ms = (time.perf_counter() - started) * 1e3
            model.profiling = options.profiling
            check_engine_shapes(model.inputs, model.profiles, options.shapes, f"'{path.name}'")
            return model
        engine, precision, from_cache = self._engine_from_onnx(path, gpu, options)
        model = TensorRTModel(self._trt, engine, device, index, precision, self._logger)
        model.compile_ms = (time.perf_counter() - started) * 1e3
        model.loaded_from_cache = from_cache
        model.profiling = options.profiling
        return model

    def _trt_runtime(self) -> Any:
        with self._lock:
            if self._runtime is None:
                with translate(DeviceUnavailableError, "cannot create the TensorRT runtime"):
                    self._runtime = self._trt.Runtime(self._logger)
            return self._runtime

    def _deserialize(self, data: bytes | memoryview) -> Any:
        runtime = self._trt_runtime()
        self._logger.take()  # only this call's errors
        with translate(ModelLoadError, "TensorRT cannot deserialise the engine"):
            return runtime.deserialize_cuda_engine(data)

    def _deserialize_file(self, path: Path, gpu: Any, options: LoadOptions) -> Any:
        if options.edits_model:
            raise InvalidInputError(
                f"dynamic=True and mean/scale edit the ONNX graph before the build; the "
                f"prebuilt engine '{path.name}' cannot take them: load the ONNX model instead"
            )
        if options.precision is not None:
            raise InvalidInputError(
                f"precision={options.precision!r} cannot apply to the prebuilt engine "
                f"'{path.name}': its precision was fixed when it was built; load the ONNX "
                f"model to build at another precision"
            )
        with translate(ModelLoadError, f"cannot read '{path}'"):
            data = path.read_bytes()
        try:
            engine = self._deserialize(data)
        except ModelLoadError as exc:
            raise ModelLoadError(self._not_an_engine(path, gpu)) from exc
        if engine is None:
            raise ModelLoadError(self._not_an_engine(path, gpu))
        return engine

    def _not_an_engine(self, path: Path, gpu: Any) -> str:
        said = self._logger.take()
        major, minor = gpu.compute_capability
        return (
            f"'{path}' is not a TensorRT engine for TensorRT {self._trt.__version__} on "
            f"{gpu.name} (compute capability {major}.{minor}): engines only load with the "
            f"TensorRT version and GPU they were built for; rebuild it from the ONNX model"
            + (f" (TensorRT: {said})" if said else "")
        )

    def _onnx_bytes(self, path: Path, options: LoadOptions) -> bytes:
        if not options.edits_model:
            with translate(ModelLoadError, f"cannot read '{path}'"):
                return path.read_bytes()
        from .. import onnx_graph

        with translate(ModelLoadError, f"cannot edit the graph of '{path}'"):
            return onnx_graph.edited_for_load(path, options).SerializeToString()

    def _engine_from_onnx(
        self, path: Path, gpu: Any, options: LoadOptions
    ) -> tuple[Any, str, bool]:
        trt = self._trt
        builder_flags = _member_names(trt.BuilderFlag)
        creation = network_creation_flags(
            options.precision, builder_flags, _member_names(trt.NetworkDefinitionCreationFlag)
        )
        strongly_typed = not weak_typing(builder_flags) or "STRONGLY_TYPED" in creation
        model_bytes = self._onnx_bytes(path, options)
        self._logger.take()
        with translate(DeviceUnavailableError, "cannot create the TensorRT builder"):
            builder = trt.Builder(self._logger)
        network = self._parse(builder, model_bytes, path, creation)
        declared = _declared_inputs(network)
        if not options.dynamic and shapes_need_dynamic(declared, options.shapes):
            # load_model would close a static engine and load again with dynamic=True
            # (its contract for such shapes): free the dims now and build once.
            options = replace(options, dynamic=True)
            model_bytes = self._onnx_bytes(path, options)
            network = self._parse(builder, model_bytes, path, creation)
            declared = _declared_inputs(network)
        with translate(ModelLoadError, f"cannot read the types of '{path}'"):
            tensors = _network_tensors(network)
        plan = plan_build(
            options.precision,
            builder_flags=builder_flags,
            strongly_typed=strongly_typed,
            network_precision=model_precision(tensors),
            quantized=is_quantized(tensors),
            compute_capability=tuple(gpu.compute_capability),
            gpu_name=gpu.name,
            model_name=f"'{path.name}'",
            tensorrt_version=str(trt.__version__),
        )
        profile = optimization_profile(declared, options.shapes)
        profiles = [profile] if profile else []
        key = engine_cache_key(
            model_bytes,
            trt.__version__,
            gpu,
            plan.precision,
            profiles,
            profiling=options.profiling,
            flags=[*creation, *plan.set_flags, *(f"-{flag}" for flag in plan.clear_flags)],
        )
        cache_dir = engine_cache_dir(self._cache_dir, options.cache_dir)
        cached = cache_dir / f"{key}.engine"
        engine = self._cached_engine(cached)
        if engine is not None:
            return engine, plan.precision, True
        config = self._config(builder, plan, profile, options)
        self._logger.take()
        with translate(ModelLoadError, f"TensorRT cannot build an engine from '{path}'"):
            serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            said = self._logger.take() or "no message"
            raise ModelLoadError(f"TensorRT cannot build an engine from '{path}': {said}")
        write_atomically(cached, serialized)
        engine = self._deserialize(serialized)
        if engine is None:
            said = self._logger.take() or "no message"
            raise ModelLoadError(
                f"TensorRT built '{path}' but cannot deserialise the result: {said}"
            )
        return engine, plan.precision, False

    def _parse(self, builder: Any, model_bytes: bytes, path: Path, creation: Sequence[str]) -> Any:
        trt = self._trt
        with translate(ModelLoadError, f"TensorRT cannot parse '{path}'"):
            network = builder.create_network(_creation_flags(trt, creation))
            parser = trt.OnnxParser(network, self._logger)
            # The path lets the parser find weights stored next to the model.
            parsed = parser.parse(model_bytes, str(path))
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        if not parsed or errors:
            listed = "\n".join(f"  - {error}" for error in errors) or "  - (no parser message)"
            raise ModelLoadError(
                f"TensorRT's ONNX parser cannot read '{path}' ({len(errors)} error(s)):\n{listed}"
            )
        # The parser owns the weights the network points at; TensorRT's bindings make the
        # network keep its parser alive, so returning the network alone is safe.
        return network

    def _config(
        self, builder: Any, plan: BuildPlan, profile: Mapping[str, ShapeRange], options: LoadOptions
    ) -> Any:
        trt = self._trt
        with translate(ModelLoadError, "cannot configure the TensorRT build"):
            config = builder.create_builder_config()
            for name in plan.set_flags:
                config.set_flag(getattr(trt.BuilderFlag, name))
            for name in plan.clear_flags:
                config.clear_flag(getattr(trt.BuilderFlag, name))
            if options.profiling:
                # Layer names and types for the inspector; costs nothing at run time.
                config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
            if profile:
                opt_profile = builder.create_optimization_profile()
                for name, limits in profile.items():
                    opt_profile.set_shape(name, limits.min, limits.opt, limits.max)
                config.add_optimization_profile(opt_profile)
        return config

    def _cached_engine(self, cached: Path) -> Any:
        """The engine in the cache entry, or None (missing or damaged: then rebuilt)."""
        try:
            data = cached.read_bytes()
        except OSError:
            return None
        try:
            engine = self._deserialize(data)
        except ModelLoadError:
            engine = None
        if engine is None:
            self._logger.take()  # the damaged entry's complaint is not the caller's error
            with contextlib.suppress(OSError):
                cached.unlink()
        return engine


def _declared_inputs(network: Any) -> list[tuple[str, tuple[int | None, ...]]]:
    """``(name, dims)`` of a parsed network's inputs, as the ONNX graph declares them."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    return [(tensor.name, dims(tensor.shape)) for tensor in inputs]
