"""atriva-inference: one API for OpenVINO, ONNX Runtime and TensorRT inference.

>>> from atriva_inference import InferenceRuntime
>>> runtime = InferenceRuntime(backend="openvino")
>>> model = runtime.load_model(model_path="ir/model.xml", device="AUTO")  # doctest: +SKIP

Importing this package imports no backend framework; a backend's package is imported
when an :class:`InferenceRuntime` for it is created.
"""

from __future__ import annotations

import importlib
from typing import Any

from .backends import BackendStatus, available_backends
from .errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceRuntimeError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
    RequestBusyError,
)
from .execution import AsyncQueue, AsyncRequest, AsyncResult, Stream
from .model import Model
from .precision import Quantization, QuantizationWarning
from .profiling import LayerRecord, Profile, ShapeRecord
from .runtime import InferenceRuntime
from .shapes import ShapeCacheInfo
from .tensor import DeviceTensor, Tensor, TensorInfo

__version__ = "0.1.0"

__all__ = [
    "AsyncQueue",
    "AsyncRequest",
    "AsyncResult",
    "BackendStatus",
    "BackendUnavailableError",
    "DeviceTensor",
    "DeviceUnavailableError",
    "InferenceFailedError",
    "InferenceRuntime",
    "InferenceRuntimeError",
    "InferenceTimeoutError",
    "InvalidInputError",
    "LayerRecord",
    "Model",
    "ModelClosedError",
    "ModelLoadError",
    "Profile",
    "QuantReport",
    "Quantization",
    "QuantizationWarning",
    "RequestBusyError",
    "ShapeCacheInfo",
    "ShapeRecord",
    "Stream",
    "Tensor",
    "TensorInfo",
    "__version__",
    "available_backends",
    "quantize",
]

#: Names served by the quantization application (``atriva_inference.quantization``), which sits
#: above these public names (it uses the runtime, vision and the optional ``[quantize]`` extra):
#: loaded on first use, so that ``import atriva_inference`` stays light. tests/test_import.py
#: checks that they are the application's own objects and that importing the package does not
#: import the application.
_QUANTIZATION_NAMES = ("QuantReport", "quantize")


def __getattr__(name: str) -> Any:
    if name in _QUANTIZATION_NAMES:
        value = getattr(importlib.import_module(f"{__name__}.quantization"), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
