"""The narrow interface every backend implements.

Everything that is the same for every backend -- input validation and casting, output
wrapping, request pooling, async bookkeeping, streams, timing -- lives above this
interface, in the execution engine (:mod:`atriva_inference._engine`) and the modules it
uses. A backend only has to:

* report the devices it sees (:meth:`Backend.devices`),
* load a file onto one resolved device (:meth:`Backend.load` -> :class:`LoadedModel`),
* create requests that run positional numpy inputs (:class:`BackendRequest`).

Backends translate their own exceptions into :mod:`atriva_inference.errors` at this
boundary, chaining the original (``raise ... from exc``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..devices import Device
from ..errors import InferenceRuntimeError, ModelLoadError
from ..precision import Quantization
from ..profiling import LayerRecord, RequestStats
from ..tensor import TensorInfo

__all__ = [
    "Backend",
    "BackendRequest",
    "DoneCallback",
    "ErrorTranslator",
    "InputConversion",
    "LoadOptions",
    "LoadedModel",
    "Normalization",
    "declared_precision",
    "foreign_format_refused",
    "ir_refused",
]

#: Called exactly once when an async inference ends: ``(outputs, None)`` or ``(None, error)``.
DoneCallback = Callable[[list[np.ndarray] | None, BaseException | None], None]


class ErrorTranslator:
    """A backend's one error boundary: ``with translate(ModelLoadError, "cannot load x"):``.

    Any non-runtime exception inside becomes ``error`` (or what ``refine`` picks for it),
    with ``context`` and the backend's message as ``describe`` cleans it, chained with
    ``raise ... from exc``: never swallowed, never printed.
    """

    def __init__(
        self,
        describe: Callable[[BaseException], str] = str,
        refine: Callable[[BaseException, type[InferenceRuntimeError]], type[InferenceRuntimeError]]
        | None = None,
    ) -> None:
        self._describe = describe
        self._refine = refine

    @contextmanager
    def __call__(self, error: type[InferenceRuntimeError], context: str) -> Iterator[None]:
        try:
            yield
        except InferenceRuntimeError:
            raise
        except Exception as exc:
            if self._refine is not None:
                error = self._refine(exc, error)
            raise error(f"{context}: {self._describe(exc)}") from exc


@dataclass(frozen=True)
class LoadOptions:
    """What ``load_model`` asks of a backend, already validated."""

    #: None = the model's own precision; else "FP32"/"FP16"/"BF16" (the float layers), or
    #: "INT8": a quantized model is required, its float layers run in FP32.
    precision: str | None = None
    profiling: bool = False
    cache_dir: Path | None = None
    #: Free declared-static dims at load (N, H, W of image inputs; N of others).
    dynamic: bool = False
    #: Per-input layout the model wants, where the caller said so (``layout=`` at load).
    layouts: tuple[tuple[str, str], ...] = ()
    #: Force one static compile per input shape (``None``: the backend decides per device).
    static_shapes: bool | None = None
    #: Per-input ``(x - mean) / scale`` compiled into the model.
    normalization: tuple[Normalization, ...] = ()
    #: The ``shapes=`` of ``load_model``: each entry ``((input name, shape), ...)``, the name
    #: ``"*"`` standing for a one-input model's input. Backends that build per shape range
    #: (TensorRT optimization profiles) take their min/opt/max from these.
    shapes: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...] = ()

    @property
    def edits_model(self) -> bool:
        """Whether the backend must change the graph it read before compiling it."""
        return self.dynamic or bool(self.normalization)


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / scale`` per channel for one input (``"*"``: the model's only input)."""

    input: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]


@dataclass(frozen=True)
class InputConversion:
    """Compile into the graph: data of ``dtype`` in ``layout`` -> what input ``index`` takes."""

    index: int
    dtype: np.dtype
    layout: str  # the data's layout, batch included ("NHWC"); "" when unknown
    model_layout: str  # the layout the model takes ("NCHW"); "" when unknown


def ir_refused(backend: str, reads: str, path: Path) -> ModelLoadError:
    """The error of an ONNX-reading backend given OpenVINO IR: what it reads, how to get it."""
    return ModelLoadError(
        f"backend '{backend}' reads {reads}, got OpenVINO IR '{path.name}': export ONNX from "
        f"the source framework (torch.onnx.export, tf2onnx, paddle2onnx), or load the IR with "
        f"InferenceRuntime(backend='openvino')"
    )


def foreign_format_refused(backend: str, reads: str, path: Path) -> ModelLoadError | None:
    """The error of an ONNX-reading backend given a format OpenVINO reads and it does not
    (OpenVINO IR, a TensorFlow frozen graph, SavedModel directory or TensorFlow Lite model,
    a PaddlePaddle model), saying how to get ONNX; ``None`` for any other path."""
    openvino = "or load it with InferenceRuntime(backend='openvino'), which reads"
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return ModelLoadError(
                f"backend '{backend}' reads {reads}, got the TensorFlow SavedModel directory "
                f"'{path}': convert it to ONNX with tf2onnx (python -m tf2onnx.convert "
                f"--saved-model {path} --output model.onnx), {openvino} SavedModel directories"
            )
        return ModelLoadError(
            f"backend '{backend}' reads {reads}, got the directory '{path}', which holds no "
            f"TensorFlow SavedModel (saved_model.pb) either: pass the model file itself"
        )
    suffix = path.suffix.lower()
    if suffix in (".xml", ".bin"):
        return ir_refused(backend, reads, path)
    if path.name.lower() == "saved_model.pb":
        return ModelLoadError(
            f"backend '{backend}' reads {reads}, got '{path}', the graph of a TensorFlow "
            f"SavedModel: convert its directory to ONNX with tf2onnx (python -m "
            f"tf2onnx.convert --saved-model {path.parent} --output model.onnx), {openvino} "
            f"SavedModel directories"
        )
    how = {
        ".pb": (
            "the TensorFlow frozen graph",
            "tf2onnx (python -m tf2onnx.convert --graphdef {name} --inputs INPUT:0 "
            "--outputs OUTPUT:0 --output model.onnx)",
            "frozen graphs",
        ),
        ".tflite": (
            "the TensorFlow Lite model",
            "tf2onnx (python -m tf2onnx.convert --tflite {name} --output model.onnx)",
            "TensorFlow Lite models",
        ),
        ".pdmodel": (
            "the PaddlePaddle model",
            "paddle2onnx (paddle2onnx --model_dir . --model_filename {name} "
            "--params_filename {stem}.pdiparams --save_file model.onnx)",
            "PaddlePaddle models",
        ),
    }
    how[".pdiparams"] = how[".pdmodel"]
    if suffix not in how:
        return None
    what, tool, formats = how[suffix]
    tool = tool.format(
        name=path.with_suffix(".pdmodel" if suffix == ".pdiparams" else suffix).name, stem=path.stem
    )
    return ModelLoadError(
        f"backend '{backend}' reads {reads}, got {what} '{path.name}': convert it to ONNX "
        f"with {tool}, {openvino} {formats}"
    )


def declared_precision(infos: Sequence[TensorInfo]) -> str:
    """The float type a model's inputs and outputs declare, for backends that compute in the
    model's own types (a prebuilt or strongly typed engine's layers may still differ)."""
    names = {info.dtype.name for info in infos}
    for dtype_name, precision in (("float32", "FP32"), ("float16", "FP16"), ("bfloat16", "BF16")):
        if dtype_name in names:
            return precision
    return "FP32"


class BackendRequest(ABC):
    """One execution context: used by one thread at a time, reused across runs."""

    #: True when :meth:`start` is the backend's own asynchronous API. Without it, the async
    #: queue's ``map`` runs frames on worker threads that pull them (no per-frame hand-off).
    native_async: ClassVar[bool] = False

    def __init__(self) -> None:
        self.stats = RequestStats()

    @abstractmethod
    def infer(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on C-contiguous arrays of the model's input dtypes, in input order.

        Returns arrays the caller owns: never overwritten by a later run.
        """

    def infer_bound(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Like :meth:`infer` but may return views into buffers reused by the next run."""
        return self.infer(inputs)

    def start(self, inputs: Sequence[np.ndarray], on_done: DoneCallback) -> None:
        """Begin an inference and return at once; ``on_done`` is called exactly once, for a
        failure too (the backend guarantees it: nobody polls). The arrays stay referenced by
        the caller until then.

        The default runs :meth:`infer` on a shared worker thread; backends with a native
        asynchronous API override this.
        """
        _async_executor().submit(self._run_and_report, inputs, on_done)

    def _run_and_report(self, inputs: Sequence[np.ndarray], on_done: DoneCallback) -> None:
        try:
            outputs = self.infer(inputs)
        except BaseException as exc:  # reported to the waiter, never lost
            on_done(None, exc)
        else:
            on_done(outputs, None)

    def close(self) -> None:
        """Release what the request holds; it is not used afterwards."""


class LoadedModel(ABC):
    """A model compiled for one device by one backend."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    device: str
    #: The precision really run: "INT8" when INT8 kernels run (``quantization`` says how
    #: many), else the float precision ("FP32", "BF16", "FP16").
    precision: str
    #: Set by backends that can tell from the executed graph; None for a float model.
    quantization: Quantization | None = None
    loaded_from_cache: bool = False
    compile_ms: float = 0.0
    profiling: bool = False  # per-layer records requested at load
    #: True when every new input shape needs its own compile (NPU, most GPU plugins).
    static_shapes: bool = False
    #: The GPU whose device arrays (a ``DeviceTensor``'s data) requests take in
    #: place, alongside numpy arrays; None when the backend takes host data only.
    device_inputs: Device | None = None

    @abstractmethod
    def create_request(self) -> BackendRequest:
        """A new, independent execution context."""

    def create_throughput_requests(self, count: int | None) -> list[BackendRequest]:
        """Requests for many inferences in flight (the async queue); ``None`` = the
        backend's optimal number. The default: ordinary requests, two of them."""
        return [self.create_request() for _ in range(count or 2)]

    def specialize(
        self,
        conversions: Sequence[InputConversion],
        shapes: Sequence[tuple[int, ...]] | None = None,
    ) -> LoadedModel | None:
        """A new compiled model taking the converted inputs (and, with ``shapes``, those
        static shapes of the data as given); ``None`` when the backend cannot, in which case
        the runtime converts in numpy and runs this model as it is."""
        return None

    def collect_layers(self) -> list[LayerRecord]:
        """Layer records a backend keeps per model rather than per request (ONNX Runtime)."""
        return []

    def reset_layers(self) -> None:
        """Forget what :meth:`collect_layers` has gathered."""

    def close(self) -> None:
        """Release the compiled model."""


class Backend(ABC):
    """A backend instance, owned by one :class:`~atriva_inference.InferenceRuntime`."""

    name: ClassVar[str]
    #: The ``precision=`` values ``load_model`` accepts for this backend (besides None).
    precisions: ClassVar[tuple[str, ...]] = ("FP32", "FP16", "BF16", "INT8")

    @abstractmethod
    def devices(self) -> list[str]:
        """Canonical names of the devices present for this backend (``"CPU"``, ``"GPU.0"``)."""

    @abstractmethod
    def load(self, path: Path, device: Device, options: LoadOptions) -> LoadedModel:
        """Read and compile ``path`` on ``device`` (already resolved to a present one)."""

    def close(self) -> None:
        """Release backend-wide resources."""


_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _async_executor() -> ThreadPoolExecutor:
    """One shared pool for backends without native async; created on first use."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(thread_name_prefix="atriva-async")
    return _executor
