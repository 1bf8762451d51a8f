"""TensorRT backend (NVIDIA GPUs, TensorRT 10 and 11): ONNX models built into cached engines,
or prebuilt engines loaded as they are. How it behaves, and what has and has not run on a
GPU, is in docs/backends/tensorrt.md and docs/status.md.

* :mod:`~.profiles`, :mod:`~.precision`, :mod:`~.cache` -- the pure decisions (profiles,
  precision and typing, the engine cache), tested without TensorRT;
* :mod:`~.messages` -- the process-wide logger and the error boundary;
* :mod:`~.backend` -- building and loading; :mod:`~.runner` -- the model and its requests.
"""

from __future__ import annotations

from .backend import (
    MIN_TENSORRT_MAJOR,
    TensorRTBackend,
    check_tensorrt_version,
    device_index,
)
from .cache import engine_cache_dir, engine_cache_key
from .messages import ErrorLog, process_logger
from .precision import (
    BuildPlan,
    has_fast_fp16,
    is_quantized,
    model_precision,
    network_creation_flags,
    plan_build,
    weak_typing,
)
from .profiles import (
    DEFAULT_BATCH_RANGE,
    ShapeRange,
    check_engine_shapes,
    optimization_profile,
    select_profile,
    shapes_need_dynamic,
)
from .runner import (
    TENSOR_ALIGNMENT,
    TensorRTModel,
    TensorRTRequest,
    binds_in_place,
    numpy_dtype_for,
    submit_wait,
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
    "device_index",
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
