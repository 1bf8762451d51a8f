"""Model: validation, sync runs, async requests and streams -- written once for every backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .backends.base import BackendRequest, LoadedModel, RequestStats
from .dtypes import convert_array
from .errors import InvalidInputError, ModelClosedError
from .execution import AsyncQueue, AsyncRequest, Inputs, Outputs, Stream
from .profiling import LayerRecord, Profile
from .tensor import Tensor, TensorInfo, format_signature

__all__ = ["Model"]


def infer_layout(info: TensorInfo) -> str | None:
    """The layout a model input wants: declared by the model, else guessed for 4-D images."""
    if info.layout:
        return info.layout
    shape = info.shape
    if shape is not None and len(shape) == 4:
        if shape[1] in (1, 3) and shape[3] not in (1, 3):
            return "NCHW"
        if shape[3] in (1, 3) and shape[1] not in (1, 3):
            return "NHWC"
    return None


class _InputPlan:
    """What one input takes, precomputed at load so each run checks it cheaply."""

    __slots__ = ("dtype", "info", "layout", "name", "ndim", "static_dims", "what")

    def __init__(self, info: TensorInfo) -> None:
        self.info = info
        self.name = info.name
        self.what = f"input '{info.name}'"
        self.dtype = info.dtype
        self.layout = infer_layout(info)
        self.ndim = None if info.shape is None else len(info.shape)
        self.static_dims = (
            ()
            if info.shape is None
            else tuple((axis, dim) for axis, dim in enumerate(info.shape) if dim is not None)
        )

    def prepare(self, value: Any) -> np.ndarray:
        """Validate ``value`` and return a C-contiguous array of the dtype the model takes."""
        if isinstance(value, Tensor):
            array = value._data
            if value._layout is not None:
                array = self._convert_layout(array, value._layout)
        elif isinstance(value, np.ndarray):
            array = value
        else:  # numpy scalars, Python numbers, nested lists
            array = self._coerce(value)
        if not self._shape_matches(array.shape):
            raise InvalidInputError(
                f"{self.what}: expected {format_signature(self.dtype, self.info.shape)}, "
                f"got {format_signature(array.dtype, array.shape)}"
                + (f" (model layout {self.layout})" if self.layout else "")
            )
        if array.dtype != self.dtype:
            array = convert_array(array, self.dtype, self.what)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        return array

    def _shape_matches(self, shape: tuple[int, ...]) -> bool:
        if self.ndim is None:
            return True
        if len(shape) != self.ndim:
            return False
        return all(shape[axis] == dim for axis, dim in self.static_dims)

    def _coerce(self, value: Any) -> np.ndarray:
        try:
            array = np.asarray(value)
        except Exception as exc:
            raise InvalidInputError(
                f"{self.what}: expected a Tensor or numpy array, got {type(value).__name__}"
            ) from exc
        if array.dtype.kind == "O" and self.dtype.kind not in "USO":
            raise InvalidInputError(
                f"{self.what}: expected a Tensor or numpy array of "
                f"{format_signature(self.dtype, self.info.shape)}, got {type(value).__name__} "
                f"that numpy can only hold as objects"
            )
        return array

    def _convert_layout(self, array: np.ndarray, layout: str) -> np.ndarray:
        """Reorder axes from the declared ``layout`` to the one the model wants (a view)."""
        wanted = self.layout
        if wanted is None or layout == wanted:
            return array
        if len(layout) + 1 == len(wanted) and "N" in wanted and "N" not in layout:
            array = array[np.newaxis]  # a frame without its batch dimension
            layout = "N" + layout
        if sorted(layout) != sorted(wanted) or "?" in layout:
            raise InvalidInputError(
                f"{self.what}: data declared as layout '{layout}' cannot be converted to the "
                f"model's layout '{wanted}'"
            )
        return array.transpose([layout.index(axis) for axis in wanted])


class Model:
    """A model loaded on one device. Create it with ``InferenceRuntime.load_model``.

    ``run`` is thread-safe: each call borrows an execution request from an internal pool
    (created on demand, one per concurrent caller) so threads never wait on a global lock.
    """

    def __init__(self, loaded: LoadedModel, *, backend: str, path: str) -> None:
        self._loaded = loaded
        self._backend = backend
        self._path = path
        self._plans = [_InputPlan(info) for info in loaded.inputs]
        self._plan_by_name = {plan.name: plan for plan in self._plans}
        self._output_names = [info.name for info in loaded.outputs]
        self._idle: list[BackendRequest] = []
        self._requests: list[BackendRequest] = []
        self._requests_lock = threading.Lock()
        self._closed = False

    # -- description -------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorInfo]:
        """The inputs the backend really takes, in order."""
        return list(self._loaded.inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        """The outputs in the order ``run`` returns them."""
        return list(self._loaded.outputs)

    @property
    def device(self) -> str:
        """The device really used (``"CPU"``, ``"GPU.0"``, ...), never ``"AUTO"``."""
        return self._loaded.device

    @property
    def precision(self) -> str:
        """The execution precision really used (``"FP32"``, ``"BF16"``, ``"FP16"``)."""
        return self._loaded.precision

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def path(self) -> str:
        return self._path

    @property
    def loaded_from_cache(self) -> bool:
        """True when ``cache_dir`` supplied the compiled model instead of a fresh compile."""
        return self._loaded.loaded_from_cache

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.device}, {self.precision}"
        return f"<Model {self._path!r} on {self._backend} ({state})>"

    # -- execution -----------------------------------------------------------------------
    def run(self, inputs: Inputs) -> Outputs:
        """Run synchronously; returns ``{output name: Tensor}`` in model output order.

        The outputs belong to the caller: later runs never overwrite them.
        """
        started = time.perf_counter_ns()
        self._check_open()
        arrays = self._prepare(inputs)
        request = self._acquire()
        try:
            outputs = request.infer(arrays)
        finally:
            request.stats.record(started, time.perf_counter_ns())
            self._idle.append(request)
        return self._wrap(outputs)

    def create_async_request(self) -> AsyncRequest:
        """A reusable request: ``start(inputs, callback=None)`` then ``wait()``."""
        self._check_open()
        return AsyncRequest(self, self._new_request())

    def create_async_queue(self, depth: int | None = None) -> AsyncQueue:
        """A bounded queue of ``depth`` in-flight requests for pipelines, results in order.

        ``depth=None`` takes the backend's optimal number of requests (OpenVINO's
        ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` under its THROUGHPUT hint). The queue's
        throughput-tuned executable is compiled on first use; that compile is counted in
        ``get_profiling().compile_ms``.
        """
        self._check_open()
        if depth is not None and (not isinstance(depth, int) or depth < 1):
            raise InvalidInputError(f"depth: expected a positive integer or None, got {depth!r}")
        requests = self._loaded.create_throughput_requests(depth)
        with self._requests_lock:
            self._requests.extend(requests)
        return AsyncQueue(self, requests)

    def create_stream(self) -> Stream:
        """A dedicated request for one producer (one camera), reused every frame."""
        self._check_open()
        return Stream(self, self._new_request())

    # -- profiling -----------------------------------------------------------------------
    def get_profiling(self) -> Profile:
        """Aggregates since load (or the last reset), plus layers when ``profiling=True``."""
        totals = _Totals()
        with self._requests_lock:
            requests = list(self._requests)
        for index, request in enumerate(requests):
            totals.add(request, index)
        loaded = self._loaded
        for layer in loaded.collect_layers():
            totals.add_layer(layer)
        return Profile(
            backend=self._backend,
            device=loaded.device,
            precision=loaded.precision,
            runs=totals.runs,
            wall_time_ms=totals.wall_ns / 1e6,
            device_time_ms=totals.device_ns / 1e6,
            compile_ms=loaded.compile_ms,
            layers=list(totals.layers.values()),
            layer_detail=loaded.profiling,
            timeline=sorted(totals.timeline),
        )

    def reset_profiling(self) -> None:
        """Zero the counters and layer records (compile time, a property of the load, stays)."""
        with self._requests_lock:
            requests = list(self._requests)
        for request in requests:
            request.stats = RequestStats()
        self._loaded.reset_layers()

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the compiled model and its requests. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._requests_lock:
            requests, self._requests, self._idle = self._requests, [], []
        for request in requests:
            request.close()
        self._loaded.close()

    def __enter__(self) -> Model:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals shared by run, async requests and streams ------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ModelClosedError(f"model {self._path!r} is closed; load it again to use it")

    def _prepare(self, inputs: Inputs) -> list[np.ndarray]:
        plans = self._plans
        if isinstance(inputs, Mapping):
            if len(inputs) == len(plans):
                try:
                    return [plan.prepare(inputs[plan.name]) for plan in plans]
                except KeyError:
                    pass  # fall through to the detailed message
            self._check_names(inputs)
        if isinstance(inputs, (Tensor, np.ndarray, np.generic)):
            if len(plans) == 1:
                return [plans[0].prepare(inputs)]
            raise InvalidInputError(
                f"inputs: the model has {len(plans)} inputs ({self._input_listing()}); "
                f"pass a dict of name -> Tensor/array, got a single {type(inputs).__name__}"
            )
        raise InvalidInputError(
            f"inputs: expected a dict of input name -> Tensor/array ({self._input_listing()}), "
            f"got {type(inputs).__name__}"
        )

    def _check_names(self, inputs: Mapping[str, Any]) -> None:
        unknown = [name for name in inputs if name not in self._plan_by_name]
        missing = [plan.name for plan in self._plans if plan.name not in inputs]
        problems = []
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing input(s) {', '.join(map(repr, missing))}")
        raise InvalidInputError(
            f"inputs: {'; '.join(problems)}; the model takes {self._input_listing()}"
        )

    def _input_listing(self) -> str:
        return ", ".join(
            f"'{plan.name}' {format_signature(plan.dtype, plan.info.shape)}" for plan in self._plans
        )

    def _wrap(self, outputs: Sequence[np.ndarray]) -> Outputs:
        return {name: Tensor(array) for name, array in zip(self._output_names, outputs)}

    def _acquire(self) -> BackendRequest:
        try:
            return self._idle.pop()  # atomic under the GIL; no lock on the hot path
        except IndexError:
            return self._new_request()

    def _new_request(self) -> BackendRequest:
        request = self._loaded.create_request()
        with self._requests_lock:
            if self._closed:
                request.close()
                raise ModelClosedError(f"model {self._path!r} is closed")
            self._requests.append(request)
        return request


class _Totals:
    """Sums of the per-request counters."""

    def __init__(self) -> None:
        self.runs = 0
        self.wall_ns = 0
        self.device_ns = 0
        self.layers: dict[tuple[str, str], LayerRecord] = {}
        self.timeline: list[tuple[int, int, int]] = []

    def add(self, request: BackendRequest, index: int) -> None:
        stats = request.stats
        self.runs += stats.runs
        self.wall_ns += stats.wall_ns
        self.device_ns += stats.device_ns
        self.timeline.extend((start, end, index) for start, end in list(stats.timeline))
        for layer in list(stats.layers.values()):
            self.add_layer(layer)

    def add_layer(self, layer: LayerRecord) -> None:
        key = (layer.name, layer.type)
        total = self.layers.get(key)
        if total is None:
            self.layers[key] = replace(layer)
        else:
            total.time_ms += layer.time_ms
            total.count += layer.count
