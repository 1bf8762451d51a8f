"""TensorRT backend (NVIDIA GPUs).

Not implemented in this version: the registry reports it as unavailable with the reason,
so ``InferenceRuntime(backend="tensorrt")`` raises ``BackendUnavailableError`` -- naming
the extra to install when TensorRT is missing, and saying it is not implemented yet when
TensorRT is present. Nothing here pretends to run.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BackendUnavailableError
from .base import Backend, LoadedModel, LoadOptions

__all__ = ["TensorRTBackend"]


class TensorRTBackend(Backend):
    name = "tensorrt"
    extra = "tensorrt"

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        raise BackendUnavailableError(
            "backend 'tensorrt' is not implemented in this version of atriva-inference; "
            "use backend='onnxruntime' or 'openvino'"
        )

    def devices(self) -> list[str]:  # pragma: no cover - never constructed
        return []

    def load(
        self, path: Path, device: str, options: LoadOptions
    ) -> LoadedModel:  # pragma: no cover
        raise BackendUnavailableError("backend 'tensorrt' is not implemented")
