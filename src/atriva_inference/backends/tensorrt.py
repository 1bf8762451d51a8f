"""TensorRT backend (NVIDIA GPUs): ONNX models built into TensorRT engines, or engines
(``.engine``/``.plan``) deserialised as they are. TensorRT 10 and 11.

**This backend has never run on real hardware in this project.** No GPU was lent and the
TensorRT libraries could not be installed where it was written, so no call into
``tensorrt`` here has been executed. Every TensorRT name it uses was checked against the
Python binding modules of TensorRT 10.16 and 11.4 (the ``tensorrt-cu13-bindings`` wheels:
their symbol and docstring tables, which import cannot load without ``libnvinfer``) and
against NVIDIA's API and migration pages. What *is* verified on the development machine:
the refusal when TensorRT is absent, broken or too old, and the pure parts -- the
precision and typing decisions (:func:`network_creation_flags`, :func:`plan_build`,
:func:`model_precision`), optimization-profile computation (:func:`optimization_profile`)
and selection (:func:`select_profile`), when ``shapes=`` frees declared dims
(:func:`shapes_need_dynamic`), the engine-cache key and directory, the dtype table, the
per-thread error log behind the process-wide logger (:class:`ErrorLog`,
:func:`process_logger` over a stand-in ``ILogger``), the alignment rule for zero-copy
inputs (:func:`binds_in_place`) and the refusal of the worker pool after shutdown
(:func:`submit_wait`). Not verified: building, the on-disk engine cache round trip,
execution, reduced-precision and INT8 builds, asynchronous completion on a CUDA event,
zero-copy and realigned device inputs, device-resident outputs, stream ordering with CuPy,
per-layer profiling (the tests for those are marked ``gpu`` and skip here).

How it works:

* ``.onnx`` is parsed with ``trt.OnnxParser`` and built with ``trt.Builder``; the
  serialized engine is cached on disk, keyed by the model bytes, TensorRT version, GPU name
  and compute capability, precision, build flags and profiles, so a second load
  deserialises instead of building. A damaged cache entry is rebuilt, never fatal; entries
  are written atomically.
* Precision (decided by feature -- which ``BuilderFlag`` members this TensorRT has -- not
  by version). TensorRT 11 removed weak typing (``BuilderFlag.FP16/BF16/INT8/FP8/INT4/FP4``,
  the precision-constraint flags, INT8 calibration, ``platform_has_fast_fp16``): every
  network is strongly typed and runs the model's own types. So ``precision=None`` (and a
  request equal to what the model computes in) builds the model as it is, on TensorRT 10
  too (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, so both versions agree);
  ``"INT8"`` is an explicitly quantized (Q/DQ) model, strongly typed, no flag.
  ``"FP16"``/``"BF16"`` for an FP32 model are weak-typing builder flags on TensorRT 10 and
  refused on TensorRT 11 (``DeviceUnavailableError`` saying how to convert the model).
  Strong typing means an FP16 model takes and returns float16: the inputs' and outputs'
  dtypes are always read from the built engine, never assumed float32.
* Dynamic dimensions need an optimization profile: its (min, opt, max) come from
  ``load_model(..., shapes=[...])`` -- min/max the elementwise extremes of the shapes
  given, opt the first one -- or, without ``shapes=``, a dynamic batch (first) dimension
  gets ``1/1/16``; any other dynamic dimension without ``shapes=`` is refused. Shapes the
  model's declared static dims refuse free those dims first (as ``dynamic=True`` does), so
  the one build already admits them. Running a shape outside every profile raises
  ``InvalidInputError`` (never a silent rebuild).
* One optimization profile serves every request. Each request owns an
  ``IExecutionContext`` on the engine's single profile, and several run at once: TensorRT
  8.6 allowed that behind ``PreviewFeature.PROFILE_SHARING_0806``, which TensorRT 10 turned
  on for good (its bindings: "The default value for this flag is on in TensorRT 10.0";
  trtexec 10.x warns that the flag "has no effect") and TensorRT 11 removed with the
  opt-out. The older rule "one profile per concurrent context" (still quoted from
  pre-10 developer guides) is why TensorRT older than 10 is refused at start, rather than
  duplicating the profile per request at build time.
* TensorRT keeps one logger per process, so every backend shares one logger
  (:func:`process_logger`), created with the first backend and never freed; it keeps
  ERROR messages per thread, so a failure is reported with TensorRT's words to the thread
  whose call failed.
* Each request has its own CUDA stream, device buffers grown only when a larger shape
  comes, and pinned host staging. The stream is blocking (ordered after work on the legacy
  default stream, where CuPy and PyTorch work by default; see :class:`TensorRTRequest`).
  A ``cuda_memory.DeviceArray`` input already on the model's GPU is bound in place
  (zero-copy) when 256-byte aligned, as TensorRT requires, and copied on the device
  otherwise. ``infer`` returns host arrays the caller owns; ``infer_bound`` (the runtime's
  streams) returns ``DeviceArray`` views of the device output buffers, valid until the
  request's next run, as ONNX Runtime's CUDA requests do. An async request completes on a
  blocking-sync CUDA event, waited for (asleep, not spinning) on the shared executor
  thread pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import json
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np

from ..errors import (
    BackendUnavailableError,
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
    LoadedModel,
    LoadOptions,
    _async_executor,
    declared_precision,
    ir_refused,
)

__all__ = [
    "DEFAULT_BATCH_RANGE",
    "MIN_TENSORRT_MAJOR",
    "TENSOR_ALIGNMENT",
    "BuildPlan",
    "ErrorLog",
    "ShapeRange",
    "TensorRTBackend",
    "TensorRTModel",
    "TensorRTRequest",
    "binds_in_place",
    "check_engine_shapes",
    "check_tensorrt_version",
    "engine_cache_dir",
    "engine_cache_key",
    "has_fast_fp16",
    "is_quantized",
    "model_precision",
    "network_creation_flags",
    "numpy_dtype_for",
    "optimization_profile",
    "plan_build",
    "process_logger",
    "select_profile",
    "shapes_need_dynamic",
    "submit_wait",
    "weak_typing",
]

INSTALL_HINT = "pip install 'atriva-inference[tensorrt]'"

#: (min, opt, max) of a dynamic batch (first) dimension when ``shapes=`` is not given.
DEFAULT_BATCH_RANGE = (1, 1, 16)

#: Bumped when what the cache stores changes meaning, so old entries are not reused.
_CACHE_FORMAT = 2

#: Execution contexts share one optimization profile from TensorRT 10 on (see above).
MIN_TENSORRT_MAJOR = 10

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")

#: The alignment TensorRT requires of every tensor address (see :func:`binds_in_place`).
TENSOR_ALIGNMENT = 256

# TensorRT DataType member names -> numpy dtypes, for the types ``trt.nptype`` cannot
# name (bf16, fp8, e8m0 have ml_dtypes equivalents). INT4/FP4 pack two values per byte on
# the device, which host staging cannot mirror element for element: refused as I/O.
_DTYPES_BY_NAME: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "FP8": np.dtype(ml_dtypes.float8_e4m3fn),
    "E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
}

_PRECISIONS = ("FP32", "FP16", "BF16", "INT8")


def _trt_message(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


# The one boundary where TensorRT's and CUDA's exceptions become ours (chained).
_translate = ErrorTranslator(describe=_trt_message)


# -- pure helpers (tested without TensorRT) ----------------------------------------------
@dataclass(frozen=True)
class ShapeRange:
    """The shapes one input may take in one optimization profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def admits(self, shape: Sequence[int]) -> bool:
        """Whether ``shape`` lies within ``min``..``max``, dimension by dimension."""
        return len(shape) == len(self.min) and all(
            low <= size <= high for low, size, high in zip(self.min, shape, self.max)
        )

    def __str__(self) -> str:
        if self.min == self.max:
            return f"exactly {_dims_text(self.min)}"
        return f"from {_dims_text(self.min)} to {_dims_text(self.max)}"


#: One optimization profile: each input with dynamic dims -> its range.
Profile = Mapping[str, ShapeRange]


def _dims_text(dims: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if dim is None else str(dim) for dim in dims) + ")"


def _resolve_input(name: str, names: Sequence[str]) -> str:
    if name == "*":
        if len(names) != 1:
            raise InvalidInputError(
                f"shapes: a bare shape stands for the model's only input, but the model has "
                f"{len(names)} inputs ({', '.join(map(repr, names))}); give {{input name: shape}}"
            )
        return names[0]
    if name not in names:
        raise InvalidInputError(
            f"shapes: unknown input {name!r}; the model takes {', '.join(map(repr, names))}"
        )
    return name


def _checked_shape(name: str, dims: Sequence[int | None], shape: Sequence[Any]) -> tuple[int, ...]:
    if not all(isinstance(size, (int, np.integer)) and size >= 1 for size in shape):
        raise InvalidInputError(
            f"shapes: input '{name}': expected positive integer dimensions, got {tuple(shape)}"
        )
    given = tuple(int(size) for size in shape)
    if len(given) != len(dims):
        raise InvalidInputError(
            f"shapes: input '{name}' has {len(dims)} dimensions {_dims_text(dims)}, "
            f"got shape {given}"
        )
    for axis, (declared, size) in enumerate(zip(dims, given)):
        if declared is not None and declared != size:
            # Reached only for dims dynamic=True leaves fixed: load() frees the others first.
            raise InvalidInputError(
                f"shapes: input '{name}' declares dimension {axis} as {declared} "
                f"{_dims_text(dims)}, got {size} in {given}; dynamic=True frees only N, H, W "
                f"of an image input and N of others, so the shape must keep this one"
            )
    return given


def _resolve_entry_name(name: str, names: Sequence[str]) -> str | None:
    """The input a ``shapes=`` entry names, or None where it names none unambiguously."""
    if name == "*":
        return names[0] if len(names) == 1 else None
    return name if name in names else None


def shapes_need_dynamic(
    declared: Sequence[tuple[str, Sequence[int | None]]],
    shapes: Sequence[Sequence[tuple[str, Sequence[int]]]],
) -> bool:
    """Whether ``shapes=`` asks for sizes the model's declared static dims refuse.

    ``declared``: ``(name, dims)`` per model input as the ONNX graph declares them
    (``None`` for a dynamic dim). True when some shape has its input's rank but differs in
    a dim declared static: the build must then free the dims as ``dynamic=True`` does, so
    that the engine admits the shape (building the static engine first would be a whole
    wasted build, since load_model would close it and load again with ``dynamic=True``).
    A wrong rank or an unknown name is not freed: :func:`optimization_profile` reports it.
    """
    names = [name for name, _ in declared]
    dims_of = {name: tuple(dims) for name, dims in declared}
    for entry in shapes:
        for name, shape in entry:
            target = _resolve_entry_name(name, names)
            if target is None:
                continue
            dims = dims_of[target]
            if len(dims) == len(shape) and any(
                dim is not None and dim != size for dim, size in zip(dims, shape)
            ):
                return True
    return False


def optimization_profile(
    inputs: Sequence[tuple[str, Sequence[int | None]]],
    shapes: Sequence[Sequence[tuple[str, Sequence[int]]]] = (),
) -> dict[str, ShapeRange]:
    """The one optimization profile an ONNX model is built with.

    ``inputs``: ``(name, dims)`` per model input, ``None`` for a dynamic dim. ``shapes``:
    the ``shapes=`` of ``load_model`` (``LoadOptions.shapes``), each entry
    ``((input name, shape), ...)``, ``"*"`` standing for a one-input model's input.

    Only inputs with dynamic dims get a range (static inputs need none). For an input the
    shapes name, min and max are the elementwise min and max over its given shapes and opt
    is the first one given (TensorRT tunes its kernels for opt; every shape in between
    runs). One profile rather than one per shape: any size inside the range runs, a build
    costs one tuning pass, and ``shapes=[smallest, largest]`` says what the caller means.
    An input with dynamic dims that no shape names gets the default: a dynamic first
    (batch) dim ranges over :data:`DEFAULT_BATCH_RANGE` (1, opt 1, up to 16); any other
    dynamic dim has no sensible default and raises ``InvalidInputError`` asking for
    ``shapes=``. Shapes that contradict a declared static dim, have the wrong rank, name an
    unknown input or have non-positive sizes raise ``InvalidInputError`` too.
    """
    names = [name for name, _ in inputs]
    declared = {name: tuple(dims) for name, dims in inputs}
    given: dict[str, list[tuple[int, ...]]] = {name: [] for name in names}
    for entry in shapes:
        for name, shape in entry:
            target = _resolve_input(name, names)
            given[target].append(_checked_shape(target, declared[target], shape))
    profile: dict[str, ShapeRange] = {}
    for name, dims in declared.items():
        if None not in dims:
            continue
        seen = given[name]
        if seen:
            low = tuple(min(column) for column in zip(*seen))
            high = tuple(max(column) for column in zip(*seen))
            profile[name] = ShapeRange(low, seen[0], high)
            continue
        free = [axis for axis, dim in enumerate(dims) if dim is None]
        if free != [0]:
            raise InvalidInputError(
                f"input '{name}' {_dims_text(dims)} has dynamic dimensions beyond the batch; "
                f"TensorRT builds an engine for a range of shapes, so give it with "
                f"load_model(..., shapes=[smallest, largest]), e.g. "
                f"shapes=[(1, 3, 320, 320), (8, 3, 640, 640)] for an image input"
            )
        rest = tuple(int(dim) for dim in dims[1:] if dim is not None)  # all static here
        low, opt, high = ((batch, *rest) for batch in DEFAULT_BATCH_RANGE)
        profile[name] = ShapeRange(low, opt, high)
    return profile


def select_profile(
    profiles: Sequence[Profile],
    shapes: Mapping[str, Sequence[int]],
    prefer: int | None = None,
) -> int:
    """The index of the optimization profile admitting every input shape in ``shapes``.

    ``prefer`` (the profile a context already uses) wins when it admits them, since
    switching profiles costs a little; otherwise the first admitting profile. No profile
    (an engine without dynamic inputs) is index 0. A shape outside every profile raises
    ``InvalidInputError`` listing the profiles' ranges and the shapes given: TensorRT runs
    only shapes a profile covers, and a rebuild is never done behind the caller's back.
    """
    if not profiles:
        return 0
    required = sorted({name for profile in profiles for name in profile})
    missing = [name for name in required if name not in shapes]
    if missing:
        raise InvalidInputError(
            f"no shape given for input(s) {', '.join(map(repr, missing))}, which the "
            f"engine's optimization profiles constrain"
        )

    def admits(profile: Profile) -> bool:
        return all(limits.admits(tuple(shapes[name])) for name, limits in profile.items())

    if prefer is not None and 0 <= prefer < len(profiles) and admits(profiles[prefer]):
        return prefer
    for index, profile in enumerate(profiles):
        if admits(profile):
            return index
    given = ", ".join(f"'{name}' {_dims_text(tuple(shapes[name]))}" for name in required)
    ranges = "; ".join(
        f"profile {index} takes "
        + ", ".join(f"'{name}' {limits}" for name, limits in sorted(profile.items()))
        for index, profile in enumerate(profiles)
    )
    raise InvalidInputError(
        f"input shape(s) {given} are outside every optimization profile of the engine "
        f"({ranges}); TensorRT runs only shapes within a profile: load the model with "
        f"shapes= that cover them (a prebuilt engine must be rebuilt with such a profile)"
    )


def _profiles_json(profiles: Sequence[Profile]) -> list[list[list[Any]]]:
    return [
        [[name, list(r.min), list(r.opt), list(r.max)] for name, r in sorted(profile.items())]
        for profile in profiles
    ]


def engine_cache_key(
    model_bytes: bytes,
    trt_version: str,
    gpu: Any,
    precision: str,
    profiles: Sequence[Profile],
    *,
    profiling: bool = False,
    flags: Iterable[str] = (),
) -> str:
    """The file name (hex) of a built engine in the cache.

    ``gpu`` is a ``cuda_memory.GpuProperties`` (or anything with ``name`` and
    ``compute_capability``): an engine is specific to the TensorRT version and the GPU it
    was built on, and to the precision and profiles asked for. ``profiling`` (detailed
    layer information built in) changes the engine too, and so do ``flags``, the network
    and builder flags of the build (strong typing, FP16 ...): one precision can be reached
    by different builds.
    """
    digest = hashlib.sha256()
    digest.update(len(model_bytes).to_bytes(8, "big"))  # model bytes never run into the rest
    digest.update(model_bytes)
    described = {
        "format": _CACHE_FORMAT,
        "tensorrt": str(trt_version),
        "gpu": str(gpu.name),
        "compute_capability": [int(part) for part in gpu.compute_capability],
        "precision": str(precision),
        "profiles": _profiles_json(profiles),
        "profiling": bool(profiling),
        "flags": sorted(str(flag) for flag in flags),
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()[:40]


def engine_cache_dir(
    backend_dir: Path | None,
    options_dir: Path | None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Where built engines are kept: ``<cache_dir>/tensorrt`` for the ``cache_dir`` given to
    the backend (else the load's), else ``$XDG_CACHE_HOME/atriva-inference/tensorrt`` or
    ``~/.cache/atriva-inference/tensorrt``. TensorRT caches by default, unlike the other
    backends, because a build takes seconds to minutes."""
    base = backend_dir if backend_dir is not None else options_dir
    if base is not None:
        return Path(base) / "tensorrt"
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative paths are invalid and must be ignored.
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "atriva-inference" / "tensorrt"


def numpy_dtype_for(type_name: str, tensor: str) -> np.dtype:
    """The numpy dtype of a TensorRT ``DataType`` member name (``"FLOAT"``, ``"BF16"`` ...)."""
    dtype = _DTYPES_BY_NAME.get(type_name)
    if dtype is None:
        raise ModelLoadError(
            f"tensor '{tensor}' has TensorRT type {type_name}, which this runtime cannot "
            f"exchange with numpy (supported: {', '.join(_DTYPES_BY_NAME)})"
        )
    return dtype


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
            f"optimization profile; {INSTALL_HINT}"
        )


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
    if text not in _PRECISIONS:
        raise InvalidInputError(
            f"precision: expected None or one of {', '.join(_PRECISIONS)}, got {precision!r}"
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


def device_index(device: str) -> int:
    """``"GPU.1"`` -> 1; ``"GPU"`` -> 0."""
    kind, _, index = device.partition(".")
    if kind != "GPU" or (index and not index.isdigit()):
        raise DeviceUnavailableError(
            f"backend 'tensorrt' runs on NVIDIA GPUs ('GPU', 'GPU.0', ...), got {device!r}"
        )
    return int(index) if index else 0


def binds_in_place(ptr: int) -> bool:
    """Whether a GPU input at device address ``ptr`` can be bound as it is.

    TensorRT requires every tensor address to be 256-byte aligned (NvInferRuntime.h,
    ``IExecutionContext::setTensorAddress``: "The pointer must have at least 256-byte
    alignment") and refuses null. CUDA allocations are aligned, but a view at an offset
    (one image of a batch, a DLPack ``byte_offset``) need not be: such an input is copied
    into the request's own device buffer on its stream instead (device to device).
    """
    return ptr != 0 and ptr % TENSOR_ALIGNMENT == 0


def submit_wait(executor: Executor, wait: Callable[..., None], *args: Any) -> None:
    """Hand ``wait(*args)`` to ``executor``; its refusal (``RuntimeError`` once the pool or
    the interpreter is shutting down) becomes :class:`InferenceFailedError`, chained.

    The caller then knows nothing was handed over: ``wait`` will not run, so it must not
    expect a completion callback (the request's ``start`` raises instead)."""
    try:
        executor.submit(wait, *args)
    except RuntimeError as exc:
        raise InferenceFailedError(
            f"cannot complete an asynchronous TensorRT inference: it needs a thread of the "
            f"shared worker pool to wait for the GPU, and the pool refused ({exc}); "
            f"expected a running interpreter, not one shutting down"
        ) from exc


# -- TensorRT glue -------------------------------------------------------------------------
def _import_tensorrt() -> ModuleType:
    try:
        return importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:
        # OSError: tensorrt-cu12-bindings present but its libnvinfer missing or unloadable.
        raise BackendUnavailableError(
            f"backend 'tensorrt' cannot import TensorRT ({type(exc).__name__}: {exc}): "
            f"{INSTALL_HINT}"
        ) from exc


def _cuda_memory() -> ModuleType:
    from . import cuda_memory

    return cuda_memory


_classes_lock = threading.Lock()
_classes: dict[int, tuple[type, type]] = {}


def _trt_classes(trt: ModuleType) -> tuple[type, type]:
    """The ILogger and IProfiler subclasses, made once per tensorrt module (they subclass
    its pybind classes, so they cannot exist before tensorrt is imported)."""
    key = id(trt)
    with _classes_lock:
        if key not in _classes:
            _classes[key] = (_make_logger_class(trt), _make_profiler_class(trt))
        return _classes[key]


class ErrorLog:
    """TensorRT's error messages, kept per thread so that concurrent builds and requests
    each read their own.

    The logic of the process-wide logger (:func:`process_logger`), which borrows
    :meth:`log` and :meth:`take`; plain Python so that it is tested without TensorRT.
    ``keep_max``: the highest severity kept (TensorRT's ``ILogger.Severity``:
    0 INTERNAL_ERROR, 1 ERROR, 2 WARNING, 3 INFO, 4 VERBOSE).

    A message logged by a thread that never called :meth:`take` (a worker thread of
    TensorRT's own, if it has any) cannot be attributed: it is kept apart and handed to
    the next :meth:`take` that has nothing of its own -- best effort, better than losing
    the only explanation of a failed build.
    """

    def __init__(self, keep_max: int = 1, limit: int = 32) -> None:
        self._keep_max = int(keep_max)
        self._limit = int(limit)
        self._local = threading.local()
        self._unattributed: deque[str] = deque(maxlen=self._limit)

    def log(self, severity: Any, msg: Any) -> None:
        """TensorRT's callback, for every message at every severity (VERBOSE and INFO by
        the thousand during a build, each taking the GIL): below what is kept it returns
        before doing anything else."""
        if int(severity) > self._keep_max:
            return
        errors = getattr(self._local, "errors", None)
        (self._unattributed if errors is None else errors).append(str(msg).strip())

    def take(self) -> str:
        """This thread's errors logged since its last take, joined, then forgotten (call
        it before a TensorRT call to drop stale ones)."""
        errors = getattr(self._local, "errors", None)
        if errors is None:
            errors = self._local.errors = deque(maxlen=self._limit)
        taken = list(errors)
        errors.clear()  # only this thread appends to it
        if not taken:
            while True:  # popleft is atomic: other threads may append meanwhile
                try:
                    taken.append(self._unattributed.popleft())
                except IndexError:
                    break
        return "; ".join(taken)


def _make_logger_class(trt: ModuleType) -> type:
    class ProcessLogger(trt.ILogger):  # type: ignore[misc,name-defined]
        """TensorRT's logger for this process: keeps the ERROR messages (per thread) so a
        failure (a None engine, a False from execute_async_v3) is raised with TensorRT's
        own words instead of printed."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            ErrorLog.__init__(self, keep_max=int(trt.ILogger.ERROR))  # type: ignore[arg-type]

        # ErrorLog's functions, not a second base: pybind11 classes and Python mixins.
        log = ErrorLog.log
        take = ErrorLog.take

    return ProcessLogger


_loggers_lock = threading.Lock()
_loggers: dict[int, Any] = {}


def process_logger(trt: ModuleType) -> Any:
    """The one TensorRT logger of this process, created on first use and never freed.

    TensorRT keeps a single logger pointer per process: the first ``Runtime``/``Builder``
    sets it and later ones with another logger are ignored ("the existing value will be
    used instead", NVIDIA/TensorRT#1475). One logger per backend would hide the errors of
    every backend but the first from their callers, and freeing the first while another
    lives would leave TensorRT calling a freed Python object. So every backend shares this
    one, and it is made immortal (its reference count is raised and never lowered), which
    also keeps it valid for TensorRT objects still alive at interpreter exit.
    """
    key = id(trt)
    with _loggers_lock:
        logger = _loggers.get(key)
        if logger is None:
            logger_class, _ = _trt_classes(trt)
            logger = logger_class()
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(logger))  # never freed
            _loggers[key] = logger
        return logger


def _make_profiler_class(trt: ModuleType) -> type:
    class LayerProfiler(trt.IProfiler):  # type: ignore[misc,name-defined]
        """Sums TensorRT's per-layer times into the owning request's ``stats.layers``.

        It reads ``request.stats`` at each report, since the model swaps in fresh stats
        on ``reset_profiling``; a weak reference avoids a request<->context cycle."""

        def __init__(self, request: TensorRTRequest, types: Mapping[str, str], device: str):
            trt.IProfiler.__init__(self)
            self._request = weakref.ref(request)
            self._types = types
            self._device = device

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            request = self._request()
            if request is None:
                return
            layer_type = self._types.get(layer_name, "")
            layers = request.stats.layers
            record = layers.get((layer_name, layer_type))
            if record is None:
                record = layers[(layer_name, layer_type)] = LayerRecord(
                    name=layer_name,
                    type=layer_type,
                    implementation="TensorRT",
                    device=self._device,
                    preprocessing="__atriva_" in layer_name,  # the prologue onnx_graph adds
                )
            record.time_ms += float(ms)
            record.count += 1

    return LayerProfiler


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


def _dims(shape: Iterable[int]) -> tuple[int | None, ...]:
    return tuple(int(dim) if int(dim) >= 0 else None for dim in shape)


def _tensor_dtype(trt: ModuleType, trt_dtype: Any, tensor: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError:  # bf16, fp8, ...: nptype names only the types numpy has
        return numpy_dtype_for(getattr(trt_dtype, "name", str(trt_dtype)), tensor)


def _layer_types(trt: ModuleType, engine: Any) -> dict[str, str]:
    """Layer name -> type from the engine inspector (built with detailed verbosity).

    Optional detail: an engine without it, or a TensorRT build without the inspector,
    gives layers with an empty type rather than failing the load."""
    try:
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception:
        return {}
    types = {}
    for layer in info.get("Layers", []) if isinstance(info, dict) else []:
        if isinstance(layer, dict) and "Name" in layer:
            types[str(layer["Name"])] = str(layer.get("LayerType", ""))
    return types


class TensorRTBackend(Backend):
    name = "tensorrt"
    extra = "tensorrt"
    precisions = _PRECISIONS  # INT8: explicitly quantized (Q/DQ) models

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self._trt = _import_tensorrt()
        check_tensorrt_version(getattr(self._trt, "__version__", ""))
        _cuda_memory().cuda_runtime()  # cuda-python missing: BackendUnavailableError now
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._logger = process_logger(self._trt)  # shared: TensorRT keeps only one
        self._runtime: Any = None
        self._lock = threading.Lock()

    def devices(self) -> list[str]:
        return _cuda_memory().gpu_devices()

    def close(self) -> None:
        self._runtime = None

    # -- loading ---------------------------------------------------------------------
    def load(self, path: Path, device: str, options: LoadOptions) -> LoadedModel:
        suffix = path.suffix.lower()
        if suffix in (".xml", ".bin"):
            raise ir_refused("tensorrt", "ONNX (.onnx) or TensorRT engines (.engine, .plan)", path)
        if suffix != ".onnx" and suffix not in ENGINE_SUFFIXES:
            raise ModelLoadError(
                f"backend 'tensorrt' reads ONNX (.onnx) or TensorRT engines (.engine, .plan), "
                f"got '{path.name}'"
            )
        index = device_index(device)
        cuda_memory = _cuda_memory()
        cuda_memory.use_device(index)
        gpu = cuda_memory.device_properties(index)
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
                with _translate(DeviceUnavailableError, "cannot create the TensorRT runtime"):
                    self._runtime = self._trt.Runtime(self._logger)
            return self._runtime

    def _deserialize(self, data: bytes | memoryview) -> Any:
        runtime = self._trt_runtime()
        self._logger.take()  # only this call's errors
        with _translate(ModelLoadError, "TensorRT cannot deserialise the engine"):
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
        with _translate(ModelLoadError, f"cannot read '{path}'"):
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
            with _translate(ModelLoadError, f"cannot read '{path}'"):
                return path.read_bytes()
        from . import onnx_graph

        with _translate(ModelLoadError, f"cannot edit the graph of '{path}'"):
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
        with _translate(DeviceUnavailableError, "cannot create the TensorRT builder"):
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
        with _translate(ModelLoadError, f"cannot read the types of '{path}'"):
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
        with _translate(ModelLoadError, f"TensorRT cannot build an engine from '{path}'"):
            serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            said = self._logger.take() or "no message"
            raise ModelLoadError(f"TensorRT cannot build an engine from '{path}': {said}")
        _write_atomically(cached, serialized)
        engine = self._deserialize(serialized)
        if engine is None:
            said = self._logger.take() or "no message"
            raise ModelLoadError(
                f"TensorRT built '{path}' but cannot deserialise the result: {said}"
            )
        return engine, plan.precision, False

    def _parse(self, builder: Any, model_bytes: bytes, path: Path, creation: Sequence[str]) -> Any:
        trt = self._trt
        with _translate(ModelLoadError, f"TensorRT cannot parse '{path}'"):
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
        with _translate(ModelLoadError, "cannot configure the TensorRT build"):
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
    return [(tensor.name, _dims(tensor.shape)) for tensor in inputs]


def _write_atomically(target: Path, data: Any) -> None:
    """Write the cache entry through a ``.partial`` file and ``os.replace``: a concurrent
    reader never sees half an engine. A cache that cannot be written only costs a rebuild."""
    writer = f"{os.getpid()}.{threading.get_ident()}"
    partial = target.with_name(f"{target.stem}.{writer}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(memoryview(data))
        os.replace(partial, target)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()


def check_engine_shapes(
    inputs: Sequence[TensorInfo],
    profiles: Sequence[Profile],
    shapes: Sequence[Sequence[tuple[str, Sequence[int]]]],
    engine_name: str = "the engine",
) -> None:
    """Refuse ``shapes=`` a prebuilt engine cannot run, at load: its dims and profiles were
    fixed when it was built (dynamic=True cannot free them, so the runtime's reload with
    dynamic=True would only fail later, with a less useful message)."""
    names = [info.name for info in inputs]
    for entry in shapes:
        given = {}
        for name, shape in entry:
            target = _resolve_input(name, names)
            given[target] = tuple(int(size) for size in shape)
        for info in inputs:
            shape = given.get(info.name)
            if info.shape is None:
                continue
            if shape is None:
                if None not in info.shape:
                    given[info.name] = tuple(info.shape)  # type: ignore[arg-type]
                continue
            if len(shape) != len(info.shape) or any(
                dim is not None and dim != size for dim, size in zip(info.shape, shape)
            ):
                raise InvalidInputError(
                    f"shapes: {engine_name} takes input '{info.name}' as "
                    f"{_dims_text(info.shape)}, got {_dims_text(shape)}: a prebuilt engine's "
                    f"dims were fixed when it was built; load the ONNX model to build for these "
                    f"shapes"
                )
        select_profile(profiles, given)


class TensorRTModel(LoadedModel):
    """A deserialised engine on one GPU; requests get their own execution contexts."""

    static_shapes = False  # profiles cover a range of shapes: no per-shape compile

    def __init__(
        self,
        trt: ModuleType,
        engine: Any,
        device: str,
        index: int,
        precision: str | None,
        logger: Any,
    ) -> None:
        self.trt = trt
        self.engine = engine
        self.device = device
        self.device_index = index
        self.device_inputs = device
        self.logger = logger
        self.inputs = []
        self.outputs = []
        with _translate(ModelLoadError, "cannot read the engine's inputs and outputs"):
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                mode = engine.get_tensor_mode(name)
                if engine.get_tensor_location(name) == trt.TensorLocation.HOST:
                    raise ModelLoadError(
                        f"tensor '{name}' is a shape tensor TensorRT reads on the host, which "
                        f"this backend does not support"
                    )
                # The engine's own I/O types: strongly typed, an FP16 model takes float16.
                info = TensorInfo(
                    name=name,
                    shape=_dims(engine.get_tensor_shape(name)),
                    dtype=_tensor_dtype(trt, engine.get_tensor_dtype(name), name),
                )
                if mode == trt.TensorIOMode.INPUT:
                    self.inputs.append(info)
                elif mode == trt.TensorIOMode.OUTPUT:
                    self.outputs.append(info)
            self.profiles: list[dict[str, ShapeRange]] = []
            dynamic = [info.name for info in self.inputs if info.shape and None in info.shape]
            for profile_index in range(engine.num_optimization_profiles):
                profile = {}
                for name in dynamic:
                    low, opt, high = engine.get_tensor_profile_shape(name, profile_index)
                    profile[name] = ShapeRange(tuple(low), tuple(opt), tuple(high))
                self.profiles.append(profile)
        if not any(self.profiles):
            self.profiles = []
        self.precision = precision or declared_precision(self.inputs + self.outputs)
        self._layer_types: dict[str, str] | None = None

    def layer_types(self) -> dict[str, str]:
        """Layer name -> type, read once from the engine inspector."""
        if self._layer_types is None:
            self._layer_types = _layer_types(self.trt, self.engine)
        return self._layer_types

    def create_request(self) -> BackendRequest:
        return TensorRTRequest(self)

    def close(self) -> None:
        self.engine = None


class TensorRTRequest(BackendRequest):
    """One execution context with its own stream, device buffers and pinned staging.

    The stream is a *blocking* CUDA stream (``cuda_memory.Stream``'s default): its work
    waits for what was queued before it on the legacy default stream, where CuPy and
    PyTorch work by default, so a GPU input they refill every frame is read only once
    written, without the caller synchronizing. (Work on a per-thread default stream or a
    library's own stream is not covered: synchronize it, or wrap the array again with
    ``DeviceArray.from_object(obj, stream=...)``.) The event an asynchronous run is waited
    on is created with blocking sync, so the waiting pool thread sleeps instead of spinning.
    """

    native_async = True

    def __init__(self, model: TensorRTModel) -> None:
        super().__init__()
        if model.engine is None:
            raise ModelClosedError("the TensorRT model is closed; load it again")
        cuda_memory = _cuda_memory()
        self._cm = cuda_memory
        self._device = model.device
        self._index = model.device_index
        self._logger = model.logger
        self._profiles = model.profiles
        self._input_names = [info.name for info in model.inputs]
        self._output_names = [info.name for info in model.outputs]
        self._input_dtypes = [info.dtype for info in model.inputs]
        self._output_dtypes = [info.dtype for info in model.outputs]
        count = len(model.inputs) + len(model.outputs)
        cuda_memory.use_device(self._index)
        model.logger.take()
        with _translate(InferenceFailedError, "cannot create a TensorRT execution context"):
            self._context = model.engine.create_execution_context()
        if self._context is None:
            said = model.logger.take() or "no message (out of GPU memory?)"
            raise InferenceFailedError(f"TensorRT cannot create an execution context: {said}")
        self._stream = cuda_memory.Stream(self._index, blocking=True)
        # Only _copied is waited on by the host: it sleeps there (blocking sync). The timing
        # events are read after it completes, so they need no host wake-up of their own.
        self._started = cuda_memory.Event(self._index, timing=True, blocking_sync=False)
        self._executed = cuda_memory.Event(self._index, timing=True, blocking_sync=False)
        self._copied = cuda_memory.Event(self._index, blocking_sync=True)
        self._in_use = threading.Lock()
        self._device_buffers: list[Any] = [None] * count  # inputs first, then outputs
        self._pinned: list[Any] = [None] * count
        self._addresses: list[int] = [0] * count  # what set_tensor_address holds now
        self._shapes: list[tuple[int, ...] | None] = [None] * len(model.inputs)
        self._output_shapes: list[tuple[int, ...]] = []
        self._profile = 0
        if model.profiling:
            _, profiler_class = _trt_classes(model.trt)
            # Kept on the request too: the context's reference alone is not documented.
            self._profiler = profiler_class(self, model.layer_types(), model.device)
            with _translate(InferenceFailedError, "cannot attach the TensorRT profiler"):
                self._context.profiler = self._profiler

    def tensor_address(self, name: str) -> int:
        """The device address the context reads (input) or writes (output) ``name`` at."""
        with _translate(InferenceFailedError, f"cannot read the address of '{name}'"):
            return int(self._context.get_tensor_address(name))

    # -- running ---------------------------------------------------------------------
    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Host arrays the caller owns (copied out of the pinned staging)."""
        views = self._run(inputs, to_host=True)
        return [view.copy() for view in views]

    def infer_bound(self, inputs: Sequence[Any]) -> list[Any]:
        """Outputs stay on the GPU: ``cuda_memory.DeviceArray`` views of this request's
        device output buffers, complete on return (the stream is synchronized) and valid
        until this request's next run, as ONNX Runtime's CUDA requests return them. No
        device-to-host copy is made; ``to_numpy()`` makes one when asked."""
        return self._run(inputs, to_host=False)

    def _run(self, inputs: Sequence[Any], *, to_host: bool) -> list[Any]:
        views = self._enqueue(inputs, to_host=to_host)
        with _translate(InferenceFailedError, "TensorRT inference failed"):
            # A blocking-sync event, not cudaStreamSynchronize: that one spins a CPU core.
            self._copied.record(self._stream)
            self._copied.synchronize()
            self._count_device_time()
        return views

    def start(self, inputs: Sequence[Any], on_done: DoneCallback) -> None:
        """Enqueue everything now; a shared pool thread waits on the CUDA event, then
        reports through ``on_done`` (exactly once). When this raises, nothing was handed
        to the pool and ``on_done`` is never called: the error is the caller's, as the
        base contract has it (the async request resets itself)."""
        views = self._enqueue(inputs, to_host=True)
        try:
            with _translate(InferenceFailedError, "TensorRT inference failed"):
                self._copied.record(self._stream)
            submit_wait(_async_executor(), self._wait_and_report, views, on_done)
        except BaseException:
            # Nobody will wait for the queued work: it must end before the buffers are reused.
            with contextlib.suppress(Exception):
                self._stream.synchronize()
            raise

    def _wait_and_report(self, views: list[np.ndarray], on_done: DoneCallback) -> None:
        try:
            with _translate(InferenceFailedError, "asynchronous TensorRT inference failed"):
                # A pool thread starts with GPU.0 current: without this, waiting for a model
                # on GPU.1 would make CUDA create a context (device memory) on GPU.0 too.
                self._cm.use_device(self._index)
                self._copied.synchronize()
                self._count_device_time()
            outputs = [view.copy() for view in views]
        except BaseException as exc:  # reported to the waiter, never lost
            on_done(None, exc)
        else:
            on_done(outputs, None)

    def _count_device_time(self) -> None:
        self.stats.device_ns += int(self._executed.elapsed_ms(self._started) * 1e6)

    def _enqueue(self, inputs: Sequence[Any], *, to_host: bool) -> list[Any]:
        """Stage, bind and execute on the stream, and with ``to_host`` copy the outputs to
        pinned memory; returns the pinned views, else views of the device output buffers
        (either filled once the stream reaches them)."""
        with self._in_use:  # close() from another thread waits for this enqueue
            return self._enqueue_locked(inputs, to_host)

    def _enqueue_locked(self, inputs: Sequence[Any], to_host: bool) -> list[Any]:
        if self._context is None:
            raise ModelClosedError("this TensorRT request is closed; create another")
        if len(inputs) != len(self._input_names):
            raise InvalidInputError(
                f"expected {len(self._input_names)} inputs "
                f"({', '.join(map(repr, self._input_names))}), got {len(inputs)}"
            )
        self._cm.use_device(self._index)  # the calling thread may be a fresh worker
        try:
            with _translate(InferenceFailedError, "TensorRT inference failed"):
                return self._enqueue_on_stream(inputs, to_host)
        except BaseException:
            # Nothing may still read the staging buffers when the caller retries.
            with contextlib.suppress(Exception):
                self._stream.synchronize()
            raise

    def _enqueue_on_stream(self, inputs: Sequence[Any], to_host: bool) -> list[Any]:
        cm, context, stream = self._cm, self._context, self._stream
        shapes = {name: tuple(value.shape) for name, value in zip(self._input_names, inputs)}
        profile = select_profile(self._profiles, shapes, prefer=self._profile)
        if profile != self._profile:
            context.set_optimization_profile_async(profile, stream.handle)
            self._profile = profile
            self._shapes = [None] * len(self._shapes)  # a new profile forgets input shapes
        shapes_changed = False
        for index, value in enumerate(inputs):
            name = self._input_names[index]
            address = self._stage_input(index, name, value)
            shape = tuple(value.shape)
            if shape != self._shapes[index]:
                if not context.set_input_shape(name, shape):
                    said = self._logger.take() or "no message"
                    raise InvalidInputError(
                        f"TensorRT refuses shape {shape} for input '{name}': {said}"
                    )
                self._shapes[index] = shape
                shapes_changed = True
            self._bind(index, name, address)
        if shapes_changed or not self._output_shapes:
            self._output_shapes = [self._output_shape(name) for name in self._output_names]
        views = []
        first_output = len(self._input_names)
        for offset, name in enumerate(self._output_names):
            index = first_output + offset
            shape = self._output_shapes[offset]
            dtype = self._output_dtypes[offset]
            nbytes = math.prod(shape) * dtype.itemsize
            self._bind(index, name, self._device_memory(index, nbytes))
            if to_host:
                views.append(self._pinned_buffer(index, nbytes).array(dtype, shape))
            else:
                views.append(self._device_buffers[index].array(dtype, shape))
        self._started.record(stream)
        self._logger.take()
        if not context.execute_async_v3(stream.handle):
            said = self._logger.take() or "no message"
            raise InferenceFailedError(f"TensorRT could not run the engine: {said}")
        self._executed.record(stream)
        if to_host:
            for offset, view in enumerate(views):
                cm.copy_to_host(view, self._addresses[first_output + offset], stream)
        return views

    def _stage_input(self, index: int, name: str, value: Any) -> int:
        """The device address of input ``index``: the caller's own for a DeviceArray
        (zero-copy) when TensorRT can bind it (:func:`binds_in_place`), else the request's
        device buffer, which a misaligned DeviceArray is copied into on the device and host
        data through pinned staging."""
        dtype = self._input_dtypes[index]
        if isinstance(value, np.ndarray):
            if value.dtype != dtype:
                raise InvalidInputError(
                    f"input '{name}': expected {dtype.name} data, got {value.dtype.name}"
                )
            staged = self._pinned_buffer(index, value.nbytes).array(dtype, value.shape)
            np.copyto(staged, value)
            address = self._device_memory(index, value.nbytes)
            self._cm.copy_to_device(address, staged, self._stream)
            return address
        if not isinstance(value, self._cm.DeviceArray):
            raise InvalidInputError(
                f"input '{name}': expected a numpy array or a GPU array, got {type(value).__name__}"
            )
        if value.device != self._index:
            raise InvalidInputError(
                f"input '{name}': the data is on GPU.{value.device}, the model runs on "
                f"{self._device}; pass host data or load the model on GPU.{value.device}"
            )
        if np.dtype(value.dtype) != dtype:
            raise InvalidInputError(
                f"input '{name}': expected {dtype.name} data on the GPU, got "
                f"{np.dtype(value.dtype).name} (GPU data is used in place, never converted)"
            )
        ptr = int(value.ptr)
        if binds_in_place(ptr):
            return ptr
        address = self._device_memory(index, value.nbytes)
        # On the request stream: ordered after the producer's writes like a bound input.
        self._cm.copy_on_device(address, ptr, value.nbytes, self._stream)
        return address

    def _bind(self, index: int, name: str, address: int) -> None:
        if address != self._addresses[index]:
            if not self._context.set_tensor_address(name, address):
                said = self._logger.take() or "no message"
                raise InferenceFailedError(f"TensorRT cannot bind tensor '{name}': {said}")
            self._addresses[index] = address

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = tuple(int(dim) for dim in self._context.get_tensor_shape(name))
        if any(dim < 0 for dim in shape):
            raise InferenceFailedError(
                f"output '{name}' has a data-dependent shape {shape}, which this backend "
                f"cannot size before running (it needs an output allocator)"
            )
        return shape

    def _device_memory(self, index: int, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` for tensor ``index`` (never a null
        address, which TensorRT refuses even for empty tensors)."""
        buffer = self._device_buffers[index]
        if buffer is None:
            buffer = self._device_buffers[index] = self._cm.DeviceBuffer(
                max(nbytes, 1), self._index
            )
            return int(buffer.ptr)
        return int(buffer.ensure(max(nbytes, 1)))

    def _pinned_buffer(self, index: int, nbytes: int) -> Any:
        buffer = self._pinned[index]
        if buffer is None:
            buffer = self._pinned[index] = self._cm.PinnedBuffer(max(nbytes, 1))
        else:
            buffer.ensure(max(nbytes, 1))
        return buffer

    def close(self) -> None:
        # Model.close() may close a request another thread is enqueuing on: the lock keeps
        # the buffers from being freed under execute_async_v3.
        with self._in_use:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._context is None:
            return
        with contextlib.suppress(Exception):
            self._stream.synchronize()  # nothing in flight may outlive its buffers
        self._context = None
        for buffer in [*self._device_buffers, *self._pinned]:
            if buffer is not None:
                buffer.close()
        self._device_buffers = [None] * len(self._device_buffers)
        self._pinned = [None] * len(self._pinned)
        for event in (self._started, self._executed, self._copied):
            event.close()
        self._stream.close()
