"""atriva-inference: one API for OpenVINO, ONNX Runtime and TensorRT inference.

>>> from atriva_inference import InferenceRuntime
>>> runtime = InferenceRuntime(backend="openvino")
>>> model = runtime.load_model(model_path="ir/model.xml", device="AUTO")  # doctest: +SKIP

Importing this package imports no backend framework; a backend's package is imported
when an :class:`InferenceRuntime` for it is created.
"""

from __future__ import annotations

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
]
