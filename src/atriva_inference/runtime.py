"""InferenceRuntime: choose a backend, load models, make tensors."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ._engine import Engine
from ._layouts import only_input
from .backends import create_backend
from .backends.base import LoadOptions, Normalization
from .devices import Device, normalize_device, resolve_device
from .errors import InvalidInputError, ModelClosedError, ModelLoadError
from .model import Model
from .precision import not_quantized_error, warn_about_quantization
from .shapes import check_fits_in_memory, parse_shape
from .tensor import DeviceTensor, Tensor, validate_layout

__all__ = ["PRECISIONS", "InferenceRuntime"]

#: Every execution precision a backend may accept (``None`` = the model's own); each backend
#: says which it does (``Backend.precisions``). INT8 requires a quantized (Q/DQ, FakeQuantize)
#: model: a quantized model runs INT8 as loaded, INT8 makes sure it is one.
PRECISIONS = ("FP32", "FP16", "BF16", "INT8")
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
        layout: str | Mapping[str, str] | None = None,
        dynamic: bool = False,
        shapes: Sequence[Sequence[int] | Mapping[str, Sequence[int]]] | None = None,
        shape_cache_size: int = 8,
        static_shapes: bool | None = None,
        mean: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
        scale: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    ) -> Model:
        """Load and compile a model on ``device``.

        ``device``: ``"AUTO"`` (first present of GPU -> NPU -> CPU), ``"CPU"``, ``"GPU"``,
        ``"GPU.1"``, ``"NPU"``. An absent device raises ``DeviceUnavailableError``.
        ``precision``: ``None`` runs the model's own precision (f32 models in f32);
        ``"BF16"``/``"FP16"`` opt into faster reduced precision where the device has it
        (on a quantized model: for its float layers; ``precision`` still says ``"INT8"``);
        ``"INT8"`` requires a quantized model (its float layers in FP32) and refuses a
        model with no INT8 layer (``ModelLoadError`` naming ``atriva-infer quantize``).
        A quantized model that runs mostly in float warns (``QuantizationWarning``).
        ``profiling=True`` records per-layer times (slower runs).
        ``layout``: the layout the model wants (``"NCHW"``, or ``{input: layout}``), where
        the model does not say and the 4-D guess would be wrong.
        ``dynamic=True`` frees dims a model declares static but does not need (N, H, W of
        image inputs, N of others). ``shapes`` prepares those input shapes at load (a shape
        per single-input model, or ``{input: shape}``); a shape the declared dims do not
        admit implies ``dynamic=True``. ``shape_cache_size`` bounds how many input
        signatures stay prepared. ``static_shapes`` forces (or forbids) one static compile
        per input shape; by default the backend decides per device.
        ``mean``/``scale``: per-channel ``(x - mean) / scale`` compiled into the model (a
        sequence for a one-input model, or ``{input: values}``); needs the input's layout.
        """
        self._check_open()
        if not isinstance(model_path, (str, os.PathLike)):
            raise InvalidInputError(
                f"model_path: expected a path to a model file (str or os.PathLike), got "
                f"{model_path!r}"
            )
        path = Path(model_path)
        if not path.is_file() and not path.is_dir():  # a directory: a SavedModel, or refused
            raise ModelLoadError(f"model file '{path}' does not exist")
        if not isinstance(shape_cache_size, int) or shape_cache_size < 1:
            raise InvalidInputError(
                f"shape_cache_size: expected a positive integer, got {shape_cache_size!r}"
            )
        requested = normalize_device(device)
        resolved = resolve_device(requested, self._backend.devices(), self.backend)
        hints = _layout_hints(layout)
        warmups = [_warmup_spec(spec) for spec in shapes or ()]
        options = LoadOptions(
            precision=_normalize_precision(precision, self._backend.precisions),
            profiling=bool(profiling),
            cache_dir=self._cache_dir,
            dynamic=bool(dynamic),
            layouts=tuple(hints.items()),
            static_shapes=static_shapes,
            normalization=_normalization(mean, scale),
            shapes=tuple(_shape_entry(spec) for spec in warmups),
        )
        model = self._open(path, resolved, options, hints, shape_cache_size)
        if warmups and not dynamic and not all(_admits(model, spec) for spec in warmups):
            model.close()  # declared static, asked to run at other shapes: free the dims
            options = replace(options, dynamic=True)
            model = self._open(path, resolved, options, hints, shape_cache_size)
        try:
            _check_quantization(model, options.precision)
            for spec in warmups:
                model.run(_zeros_for(model, spec))
        except BaseException:
            model.close()  # a refused model or warm-up shape leaves nothing loaded behind
            raise
        self._models.append(model)
        return model

    def _open(
        self,
        path: Path,
        device: Device,
        options: LoadOptions,
        hints: dict[str, str],
        shape_cache_size: int,
    ) -> Model:
        loaded = self._backend.load(path, device, options)
        names = [info.name for info in loaded.inputs]
        if "*" in hints:
            try:
                only_input(names, "layout")
            except InvalidInputError:
                loaded.close()
                raise
            hints = {names[0]: hints["*"]}
        unknown = sorted(set(hints) - set(names))
        if unknown:
            loaded.close()
            raise InvalidInputError(
                f"layout: unknown input(s) {', '.join(map(repr, unknown))}; "
                f"the model takes {', '.join(map(repr, names))}"
            )
        for info in loaded.inputs:
            if info.name in hints and info.shape is not None:
                validate_layout(hints[info.name], len(info.shape), f"layout of '{info.name}'")
        engine = Engine(
            loaded,
            backend=self.backend,
            path=str(path),
            layouts=hints,
            shape_cache_size=shape_cache_size,
        )
        return Model(engine, on_close=self._forget)

    def _forget(self, model: Model) -> None:
        """A model closed on its own: the runtime no longer needs to close it."""
        with contextlib.suppress(ValueError):
            self._models.remove(model)

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
        self._check_open()
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

    def tensor_from_dlpack(self, data: Any, layout: str | None = None) -> Tensor:
        """Wrap an array from another framework without copying it.

        GPU data -- a CuPy array, a PyTorch CUDA tensor, anything with ``__dlpack__`` or
        ``__cuda_array_interface__`` -- becomes a :class:`DeviceTensor` that a model on the
        same GPU (``tensorrt``, ``onnxruntime`` on CUDA) uses in place; it must already have
        the model's dtype and layout. Host data (a PyTorch CPU tensor, ...) becomes an
        ordinary :class:`Tensor` over the same memory. The tensor keeps ``data`` alive.
        """
        self._check_open()
        if isinstance(data, Tensor):  # already ours: the same memory, the layout as given
            if layout is None:
                return data
            checked = validate_layout(layout, len(data.shape), "tensor_from_dlpack")
            return type(data)(data._data, checked)
        if isinstance(data, np.ndarray):
            return self.tensor_from_numpy(data, layout)
        if _on_host(data):
            try:
                array = np.from_dlpack(data)
            except Exception as exc:
                raise InvalidInputError(
                    f"tensor_from_dlpack: numpy cannot take this {type(data).__name__} "
                    f"without a copy: {exc}"
                ) from exc
            return self.tensor_from_numpy(array, layout)
        from .cuda import DeviceArray

        device_array = DeviceArray.from_object(data)
        return DeviceTensor(
            device_array, validate_layout(layout, len(device_array.shape), "tensor_from_dlpack")
        )

    def close(self) -> None:
        """Close every model loaded by this runtime and the backend. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for model in list(self._models):
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


#: DLPack device types numpy views in place: kDLCPU (pinned PyTorch memory reports it too).
_HOST_DLPACK_DEVICES = (1,)


def _on_host(data: Any) -> bool:
    """Whether ``data`` (a DLPack producer) lives in memory numpy can view."""
    if hasattr(data, "__dlpack_device__"):
        try:
            device_type = int(data.__dlpack_device__()[0])
        except Exception as exc:
            raise InvalidInputError(
                f"tensor_from_dlpack: {type(data).__name__}.__dlpack_device__() failed: {exc}"
            ) from exc
        return device_type in _HOST_DLPACK_DEVICES
    if hasattr(data, "__cuda_array_interface__") or hasattr(data, "__dlpack__"):
        return False
    raise InvalidInputError(
        f"tensor_from_dlpack: expected an array with __dlpack__ or __cuda_array_interface__ "
        f"(CuPy, PyTorch, JAX, ...), got {type(data).__name__}"
    )


def _check_quantization(model: Model, requested: str | None) -> None:
    """Refuse ``precision="INT8"`` without INT8 layers; warn on a mostly-float INT8 model."""
    if requested == "INT8" and model.precision != "INT8":
        raise not_quantized_error(model.quantization, model.precision, model.path, model.backend)
    warn_about_quantization(model.quantization, model.path, model.backend)


def _normalize_precision(precision: str | None, offered: tuple[str, ...]) -> str | None:
    if precision is None:
        return None
    text = str(precision).strip().upper()
    text = _PRECISION_ALIASES.get(text, text)
    if text not in offered:
        raise InvalidInputError(
            f"precision: expected None (the model's own) or one of {', '.join(offered)}, "
            f"got {precision!r}"
        )
    return text


def _layout_hints(layout: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"NCHW"`` (for the only input, filed under ``"*"``) or ``{input: layout}``."""
    if layout is None:
        return {}
    if isinstance(layout, str):
        return {"*": _layout_text(layout, "layout")}
    if isinstance(layout, Mapping):
        return {
            str(name): _layout_text(text, f"layout of '{name}'") for name, text in layout.items()
        }
    raise InvalidInputError(
        f"layout: expected a layout such as 'NCHW' or a dict of input name -> layout, "
        f"got {layout!r}"
    )


def _layout_text(layout: Any, what: str) -> str:
    checked = validate_layout(layout, len(str(layout).strip()), what)
    assert checked is not None
    return checked


def _normalization(mean: Any, scale: Any) -> tuple[Normalization, ...]:
    """Per-input ``(x - mean) / scale``; a bare sequence is for the model's only input."""
    means, scales = _per_input(mean, "mean"), _per_input(scale, "scale")
    entries = []
    for name in sorted(set(means) | set(scales)):
        mean_values = means.get(name) or (0.0,) * len(scales[name])
        scale_values = scales.get(name) or (1.0,) * len(mean_values)
        if len(mean_values) != len(scale_values):
            raise InvalidInputError(
                f"mean/scale of '{name}': expected as many scales as means, got "
                f"{len(mean_values)} means and {len(scale_values)} scales"
            )
        if any(value == 0 for value in scale_values):
            raise InvalidInputError(
                f"scale of '{name}': expected non-zero values, got {scale_values}"
            )
        entries.append(Normalization(name, mean_values, scale_values))
    return tuple(entries)


def _per_input(values: Any, what: str) -> dict[str, tuple[float, ...]]:
    if values is None:
        return {}
    items = values.items() if isinstance(values, Mapping) else [("*", values)]
    result = {}
    for name, sequence in items:
        try:
            floats = tuple(float(value) for value in sequence)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{what}: expected a sequence of numbers (one per channel), got {sequence!r}"
            ) from exc
        if not floats:
            raise InvalidInputError(f"{what}: expected at least one value, got none")
        result[str(name)] = floats
    return result


def _warmup_spec(spec: Any) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    if isinstance(spec, Mapping):
        return {str(name): parse_shape(shape, f"shapes['{name}']") for name, shape in spec.items()}
    return parse_shape(spec, "shapes")


def _shape_entry(
    spec: tuple[int, ...] | dict[str, tuple[int, ...]],
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A warm-up shape as the backends get it (``"*"``: the only input)."""
    if isinstance(spec, dict):
        return tuple(sorted(spec.items()))
    return (("*", spec),)


def _admits(model: Model, spec: tuple[int, ...] | dict[str, tuple[int, ...]]) -> bool:
    """Whether the model's declared dims admit the warm-up shape(s)."""
    wanted = spec if isinstance(spec, dict) else {model.inputs[0].name: spec}
    for info in model.inputs:
        shape = wanted.get(info.name)
        if shape is None or info.shape is None:
            continue
        if len(shape) != len(info.shape) or any(
            dim is not None and dim != size for dim, size in zip(info.shape, shape)
        ):
            return False
    return True


def _zeros_for(model: Model, spec: tuple[int, ...] | dict[str, tuple[int, ...]]) -> dict[str, Any]:
    inputs = model.inputs
    if not isinstance(spec, dict):
        if len(inputs) != 1:
            raise InvalidInputError(
                f"shapes: the model has {len(inputs)} inputs; give {{input name: shape}} dicts"
            )
        spec = {inputs[0].name: spec}
    unknown = sorted(set(spec) - {info.name for info in inputs})
    if unknown:
        raise InvalidInputError(f"shapes: unknown input(s) {', '.join(map(repr, unknown))}")
    feed = {}
    for info in inputs:
        shape = spec.get(info.name)
        if shape is None:
            if info.shape is None or None in info.shape:
                raise InvalidInputError(
                    f"shapes: input '{info.name}' has dynamic dims; give its shape too"
                )
            shape = tuple(info.shape)
        check_fits_in_memory(shape, info.dtype, f"shapes: input '{info.name}'")
        feed[info.name] = np.zeros(shape, info.dtype)
    return feed


def _reshape(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    target = parse_shape(shape, "shape_override")
    count = math.prod(target)
    if count != array.size:
        raise InvalidInputError(
            f"shape_override: expected a shape with {array.size} elements like the data's "
            f"{tuple(array.shape)}, got {target} ({count} elements)"
        )
    return array.reshape(target)
