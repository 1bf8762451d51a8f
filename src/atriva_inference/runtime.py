"""InferenceRuntime: choose a backend, load models, make tensors."""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .backends import create_backend
from .backends.base import LoadOptions
from .devices import normalize_device, resolve_device
from .errors import InvalidInputError, ModelClosedError, ModelLoadError
from .model import Model
from .tensor import Tensor, validate_layout

__all__ = ["PRECISIONS", "InferenceRuntime"]

#: Execution precisions ``load_model`` accepts (``None`` = the model's own).
PRECISIONS = ("FP32", "FP16", "BF16")
_PRECISION_ALIASES = {
    "F32": "FP32",
    "F16": "FP16",
    "FLOAT32": "FP32",
    "FLOAT16": "FP16",
    "BFLOAT16": "BF16",
}


class InferenceRuntime:
    """One backend (``"openvino"``, ``"onnxruntime"`` or ``"tensorrt"``) and its models.

    ``cache_dir`` turns on compiled-model caching: a second load of the same model,
    device and options reuses the compiled artefact instead of compiling again.
    """

    def __init__(
        self, backend: str = "openvino", *, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._backend = create_backend(backend, cache_dir=self._cache_dir)
        self._models: list[Model] = []
        self._closed = False

    @property
    def backend(self) -> str:
        """The backend's name."""
        return self._backend.name

    @property
    def cache_dir(self) -> Path | None:
        return self._cache_dir

    def available_devices(self) -> list[str]:
        """The devices this backend sees on this machine (``["CPU"]``, ``["CPU", "GPU.0"]``)."""
        self._check_open()
        return self._backend.devices()

    def load_model(
        self,
        model_path: str | os.PathLike[str],
        device: str = "AUTO",
        *,
        precision: str | None = None,
        profiling: bool = False,
    ) -> Model:
        """Load and compile a model on ``device``.

        ``device``: ``"AUTO"`` (first present of GPU -> NPU -> CPU), ``"CPU"``, ``"GPU"``,
        ``"GPU.1"``, ``"NPU"``. An absent device raises ``DeviceUnavailableError``.
        ``precision``: ``None`` runs the model's own precision (f32 models in f32);
        ``"BF16"``/``"FP16"`` opt into faster reduced precision where the device has it.
        ``profiling=True`` records per-layer times (slower runs).
        """
        self._check_open()
        path = Path(model_path)
        if not path.is_file():
            what = "is a directory, not a model file" if path.is_dir() else "does not exist"
            raise ModelLoadError(f"model file '{path}' {what}")
        requested = normalize_device(device)
        resolved = resolve_device(requested, self._backend.devices(), self.backend)
        options = LoadOptions(
            precision=_normalize_precision(precision),
            profiling=bool(profiling),
            cache_dir=self._cache_dir,
        )
        loaded = self._backend.load(path, resolved, options)
        model = Model(loaded, backend=self.backend, path=str(path))
        self._models.append(model)
        return model

    def tensor_from_numpy(
        self,
        array: np.ndarray,
        layout: str | None = None,
        shape_override: Sequence[int] | None = None,
    ) -> Tensor:
        """Wrap ``array`` as a runtime tensor without copying it.

        ``layout`` declares the layout of the data given (``"NCHW"``, ``"NHWC"``, ``"HWC"``
        ...); the runtime converts when the model wants another. ``shape_override`` is the
        concrete shape to run at (same number of elements).
        """
        if isinstance(array, Tensor):
            array = array.to_numpy()
        if not isinstance(array, np.ndarray):
            raise InvalidInputError(
                f"tensor_from_numpy: expected a numpy array, got {type(array).__name__}"
            )
        if array.dtype.kind == "O" and not all(
            isinstance(item, (str, bytes)) for item in array.flat
        ):
            raise InvalidInputError(
                "tensor_from_numpy: expected numbers, bools or strings, got an object array"
            )
        if shape_override is not None:
            array = _reshape(array, shape_override)
        checked_layout = validate_layout(layout, array.ndim, "tensor_from_numpy")
        return Tensor(array, checked_layout)

    def close(self) -> None:
        """Close every model loaded by this runtime and the backend. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for model in self._models:
            model.close()
        self._models.clear()
        self._backend.close()

    def __enter__(self) -> InferenceRuntime:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<InferenceRuntime backend={self.backend!r}{' closed' if self._closed else ''}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ModelClosedError("runtime is closed; create a new InferenceRuntime")


def _normalize_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    text = str(precision).strip().upper()
    text = _PRECISION_ALIASES.get(text, text)
    if text not in PRECISIONS:
        raise InvalidInputError(
            f"precision: expected None (the model's own) or one of {', '.join(PRECISIONS)}, "
            f"got {precision!r}"
            + (
                "; INT8 comes from a quantized model, which runs in INT8 as loaded"
                if text == "INT8"
                else ""
            )
        )
    return text


def _reshape(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    if isinstance(shape, np.ndarray) and shape.ndim == 1:
        shape = shape.tolist()
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise InvalidInputError(
            f"shape_override: expected a sequence of integers such as (1, 3, 224, 224), "
            f"got {shape!r}"
        )
    try:  # operator.index refuses 1.5 and "2" instead of truncating or parsing them
        target = tuple(operator.index(dim) for dim in shape)
    except TypeError as exc:
        raise InvalidInputError(
            f"shape_override: expected a sequence of integers such as (1, 3, 224, 224), "
            f"got {shape!r}"
        ) from exc
    if any(dim < 0 for dim in target):
        raise InvalidInputError(f"shape_override: dimensions must be >= 0, got {target}")
    count = math.prod(target)
    if count != array.size:
        raise InvalidInputError(
            f"shape_override: expected a shape with {array.size} elements like the data's "
            f"{tuple(array.shape)}, got {target} ({count} elements)"
        )
    return array.reshape(target)
