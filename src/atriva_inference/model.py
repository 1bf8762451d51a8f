"""Model: routes inputs to the executable compiled for their signature, runs them from pools
of requests, and keeps the profile -- written once for every backend."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._layouts import infer_layout
from ._preparation import InputPlan
from .backends.base import BackendRequest, InputConversion, LoadedModel, RequestStats
from .errors import InvalidInputError, ModelClosedError
from .execution import AsyncQueue, AsyncRequest, Inputs, Outputs, Stream
from .profiling import LayerRecord, Profile, ShapeRecord
from .shapes import ShapeCache, ShapeCacheInfo
from .tensor import DeviceTensor, Tensor, TensorInfo, format_signature

__all__ = ["Model"]


class Executable:
    """One compiled form of the model -- as loaded, or specialized for an input signature
    (conversion compiled into the graph) or a static shape -- with its pool of requests."""

    __slots__ = ("conversions", "idle", "loaded", "plans", "retired", "shapes")

    def __init__(
        self,
        loaded: LoadedModel,
        layouts: Sequence[str | None],
        conversions: tuple[InputConversion, ...] = (),
        shapes: tuple[tuple[int, ...], ...] | None = None,
    ) -> None:
        self.loaded = loaded
        self.conversions = conversions
        self.shapes = shapes
        converted = {conversion.index: conversion.layout for conversion in conversions}
        self.plans = [
            InputPlan(info, converted.get(index) or layouts[index], loaded.device_inputs)
            for index, info in enumerate(loaded.inputs)
        ]
        self.idle: list[BackendRequest] = []
        self.retired = False  # evicted from the shape cache: holders drop their requests

    def prepare(self, values: Sequence[Any]) -> list[np.ndarray]:
        return [plan.prepare(value) for plan, value in zip(self.plans, values)]


class Model:
    """A model loaded on one device. Create it with ``InferenceRuntime.load_model``.

    ``run`` is thread-safe: each call borrows an execution request from an internal pool
    (created on demand, one per concurrent caller) so threads never wait on a global lock.
    Every new input signature (shape, and dtype/layout where a conversion is compiled into
    the graph) is prepared once and remembered in a bounded LRU (``shape_cache_info()``).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        backend: str,
        path: str,
        layouts: Mapping[str, str] | None = None,
        shape_cache_size: int = 8,
        on_close: Callable[[Model], None] | None = None,
    ) -> None:
        self._loaded = loaded
        self._on_close = on_close
        self._backend = backend
        self._path = path
        hints = dict(layouts or {})
        self._layouts = [hints.get(info.name) or infer_layout(info) for info in loaded.inputs]
        self._inputs = [
            TensorInfo(info.name, info.shape, info.dtype, layout)
            for info, layout in zip(loaded.inputs, self._layouts)
        ]
        self._base = Executable(loaded, self._layouts)
        self._plans = self._base.plans
        self._names = [plan.name for plan in self._plans]
        self._output_names = [info.name for info in loaded.outputs]
        self._conversions: dict[tuple[Any, ...], Executable | None] = {}
        self._shape_cache: ShapeCache[Executable] = ShapeCache(
            shape_cache_size, on_evict=self._retire
        )
        self._shape_records: dict[tuple[Any, ...], ShapeRecord] = {}
        self._prepare_lock = threading.Lock()
        self._requests: list[BackendRequest] = []
        self._requests_lock = threading.Lock()
        self._retired = _Totals()
        self._released: deque[BackendRequest] = deque()  # given back, not yet retired
        self._evicted_compile_ms = 0.0
        self._closed = False

    # -- description -------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorInfo]:
        """The inputs the backend really takes, in order, with the layout each wants (from
        the model, the ``layout=`` hint at load, or guessed for 4-D image inputs)."""
        return list(self._inputs)

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

    def shape_cache_info(self) -> ShapeCacheInfo:
        """``(hits, misses, maxsize, currsize)``; a miss is the first run at a signature."""
        return self._shape_cache.info()

    # -- execution -----------------------------------------------------------------------
    def run(self, inputs: Inputs) -> Outputs:
        """Run synchronously; returns ``{output name: Tensor}`` in model output order.

        The outputs belong to the caller: later runs never overwrite them.
        """
        started = time.perf_counter_ns()
        self._check_open()
        executable, arrays, first = self._route(inputs)
        try:
            request = executable.idle.pop()  # atomic under the GIL; no lock on the hot path
        except IndexError:
            request = self._new_request(executable)
        try:
            outputs = request.infer(arrays)
        finally:
            ended = time.perf_counter_ns()
            request.stats.record(started, ended)
            executable.idle.append(request)
            if executable.retired:  # evicted while this run used it: nobody else will
                self._reclaim_idle(executable)
        if first is not None:
            first.first_call_ms = (ended - started) / 1e6
        return self._wrap(outputs)

    def create_async_request(self) -> AsyncRequest:
        """A reusable request: ``start(inputs, callback=None)`` then ``wait()``."""
        self._check_open()
        return AsyncRequest(self)

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
        requests = self._throughput_requests(self._base, depth)
        return AsyncQueue(self, self._base, requests)

    def create_stream(self) -> Stream:
        """A dedicated request for one producer (one camera), reused every frame."""
        self._check_open()
        return Stream(self)

    # -- profiling -----------------------------------------------------------------------
    def get_profiling(self) -> Profile:
        """Aggregates since load (or the last reset), plus layers when ``profiling=True``."""
        self._drain_released()
        totals = _Totals()
        with self._requests_lock:  # one snapshot: a request is either retired or live
            totals.merge(self._retired)
            requests = list(self._requests)
        for index, request in enumerate(requests):
            totals.add(request, index)
        loaded = self._loaded
        with self._prepare_lock:
            shapes = [replace(record) for record in self._shape_records.values()]
            executables = self._executables()
        for executable in executables:
            for layer in executable.loaded.collect_layers():
                totals.add_layer(layer)
        # Every compile: the load, the queue's, each conversion and static-shape variant.
        compile_ms = self._evicted_compile_ms + sum(e.loaded.compile_ms for e in executables)
        return Profile(
            backend=self._backend,
            device=loaded.device,
            precision=loaded.precision,
            runs=totals.runs,
            wall_time_ms=totals.wall_ns / 1e6,
            device_time_ms=totals.device_ns / 1e6,
            compile_ms=compile_ms,
            layers=list(totals.layers.values()),
            layer_detail=loaded.profiling,
            timeline=sorted(totals.timeline),
            shapes=shapes,
        )

    def reset_profiling(self) -> None:
        """Zero the counters and layer records (compile times, properties of the load and
        of each prepared signature, stay)."""
        self._drain_released()  # counts given back before the reset go with it
        with self._requests_lock:
            requests = list(self._requests)
            self._retired = _Totals()
        for request in requests:
            request.stats = RequestStats()
        with self._prepare_lock:
            executables = self._executables()
        for executable in executables:
            executable.loaded.reset_layers()

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the compiled model, its specialized forms and requests. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._requests_lock:
            requests, self._requests = self._requests, []
        for request in requests:
            request.close()
        with self._prepare_lock:
            executables = self._executables()
            self._conversions.clear()
            self._shape_cache.clear()
        for executable in executables:
            executable.loaded.close()
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> Model:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals shared by run, async requests, queues and streams ---------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ModelClosedError(f"model {self._path!r} is closed; load it again to use it")

    def _executables(self) -> list[Executable]:
        """Every executable alive: the base, conversion variants, static-shape ones."""
        found = {id(self._base): self._base}
        for executable in [*self._conversions.values(), *self._shape_cache.values()]:
            if executable is not None:
                found[id(executable)] = executable
        return list(found.values())

    def _route(self, inputs: Inputs) -> tuple[Executable, list[np.ndarray], ShapeRecord | None]:
        """Pick the executable for these inputs (preparing it on first use) and the arrays
        to hand it. The third item is the signature's record when this is its first run."""
        values = self._values(inputs)
        plans = self._plans
        conversions = tuple(plan.conversion(value) for plan, value in zip(plans, values))
        key = (conversions, tuple(value.shape for value in values))
        executable = self._shape_cache.get(key)
        if executable is not None:
            return executable, executable.prepare(values), None
        return self._prepare_signature(key, conversions, values)

    def _prepare_signature(
        self, key: tuple[Any, ...], conversions: tuple[Any, ...], values: list[Any]
    ) -> tuple[Executable, list[np.ndarray], ShapeRecord | None]:
        with self._prepare_lock:  # one thread prepares a signature; the others then hit
            executable = self._shape_cache.get(key)
            if executable is not None:
                return executable, executable.prepare(values), None
            started = time.perf_counter()
            if self._loaded.static_shapes:
                # One compile for conversion and shape together: a device that needs static
                # shapes cannot compile the dynamic conversion variant first.
                shapes = self._bound_shapes(conversions, values)  # validates the inputs
                executable = self._specialize(self._conversion_list(conversions), shapes)
                if executable is None:
                    executable = self._conversion_executable(conversions)
            else:
                executable = self._conversion_executable(conversions)
            arrays = executable.prepare(values)  # validates before anything is remembered
            specialized = executable.shapes is not None
            record = ShapeRecord(
                shapes=[list(value.shape) for value in values],
                signature=_describe_signature(key[0], values),
                compile_ms=(time.perf_counter() - started) * 1e3,
                specialized=specialized,
            )
            self._shape_records[key] = record
            self._shape_cache.put(key, executable)
            return executable, arrays, record

    def _conversion_executable(self, conversions: tuple[Any, ...]) -> Executable:
        if all(conversion is None for conversion in conversions):
            return self._base
        if conversions not in self._conversions:
            self._conversions[conversions] = self._specialize(
                self._conversion_list(conversions), None
            )
        # None: the backend cannot convert in its graph; numpy converts for the base model.
        return self._conversions[conversions] or self._base

    def _conversion_list(self, conversions: tuple[Any, ...]) -> tuple[InputConversion, ...]:
        return tuple(
            InputConversion(index, dtype, layout, self._layouts[index] or "")
            for index, conversion in enumerate(conversions)
            if conversion is not None
            for dtype, layout in [conversion]
        )

    def _bound_shapes(
        self, conversions: tuple[Any, ...], values: list[Any]
    ) -> tuple[tuple[int, ...], ...]:
        """The shape each input will be bound at: the data's own (batch added) where the
        graph converts it, else the shape numpy prepares for the model."""
        shapes = []
        for plan, conversion, value in zip(self._plans, conversions, values):
            if conversion is None:
                shapes.append(plan.prepare(value).shape)
                continue
            shape = value.shape
            layout = conversion[1]
            shapes.append((1, *shape) if layout and len(shape) + 1 == len(layout) else shape)
        return tuple(shapes)

    def _specialize(
        self,
        conversions: tuple[InputConversion, ...],
        shapes: tuple[tuple[int, ...], ...] | None,
    ) -> Executable | None:
        loaded = self._loaded.specialize(conversions, shapes)
        if loaded is None:
            return None
        return Executable(loaded, self._layouts, conversions, shapes)

    def _retire(self, key: Hashable, executable: Executable) -> None:
        """A signature left the shape cache: keep its counts and compile time, let it go."""
        self._shape_records.pop(key, None)
        if executable.shapes is None:
            return  # the base or a conversion variant: shared, kept
        # Mark it first, then take what is idle: a run finishing meanwhile either finds it
        # marked and gives its request back itself, or leaves it idle for us to take.
        executable.retired = True
        self._evicted_compile_ms += executable.loaded.compile_ms
        self._reclaim_idle(executable)
        # Requests in use (a run, a stream, an async request, a queue frame) are given back
        # by their holders when they are done with them; closing them now would break runs.

    def _reclaim_idle(self, executable: Executable) -> None:
        idle = []
        while True:
            try:
                idle.append(executable.idle.pop())  # each request is popped exactly once
            except IndexError:
                break
        self.unregister(idle)

    def unregister(self, requests: Iterable[BackendRequest]) -> None:
        """Requests nobody will use again: keep their counts, release them."""
        self._released.extend(requests)
        self._drain_released()

    def unregister_later(self, requests: Iterable[BackendRequest]) -> None:
        """For finalizers: they run inside garbage collection, possibly in a thread that holds
        the model's locks, so they only queue the requests (a deque append takes no lock)."""
        self._released.extend(requests)

    def _drain_released(self) -> None:
        requests = []
        while True:
            try:
                requests.append(self._released.popleft())
            except IndexError:
                break
        if not requests:
            return
        with self._requests_lock:
            present = {id(request) for request in self._requests}
            # Given back twice (a holder, then a finalizer) counts once.
            requests = list({id(r): r for r in requests if id(r) in present}.values())
            gone = {id(request) for request in requests}
            for request in requests:
                self._retired.add(request, 0)
            self._requests = [r for r in self._requests if id(r) not in gone]
        for request in requests:
            request.close()

    def _values(self, inputs: Inputs) -> list[Any]:
        """The inputs in model order, as Tensors or arrays (names checked)."""
        names = self._names
        if isinstance(inputs, Mapping):
            if len(inputs) == len(names):
                try:
                    values = [inputs[name] for name in names]
                except KeyError:
                    pass  # fall through to the detailed message
                else:
                    return [
                        value if isinstance(value, (np.ndarray, Tensor)) else plan.coerce(value)
                        for value, plan in zip(values, self._plans)
                    ]
            self._check_names(inputs)
        if isinstance(inputs, (Tensor, np.ndarray, np.generic)):
            if len(names) == 1:
                return [self._as_value(inputs, self._plans[0])]
            raise InvalidInputError(
                f"inputs: the model has {len(names)} inputs ({self._input_listing()}); "
                f"pass a dict of name -> Tensor/array, got a single {type(inputs).__name__}"
            )
        raise InvalidInputError(
            f"inputs: expected a dict of input name -> Tensor/array ({self._input_listing()}), "
            f"got {type(inputs).__name__}"
        )

    @staticmethod
    def _as_value(value: Any, plan: InputPlan) -> Tensor | np.ndarray:
        if isinstance(value, (Tensor, np.ndarray)):
            return value
        return plan.coerce(value)

    def _check_names(self, inputs: Mapping[str, Any]) -> None:
        unknown = [name for name in inputs if name not in self._names]
        missing = [name for name in self._names if name not in inputs]
        problems = []
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing input(s) {', '.join(map(repr, missing))}")
        raise InvalidInputError(
            f"inputs: {'; '.join(problems)}; the model takes {self._input_listing()}"
        )

    def _input_listing(self) -> str:
        return ", ".join(f"'{plan.name}' {plan.signature()}" for plan in self._plans)

    def _wrap(self, outputs: Sequence[Any]) -> Outputs:
        """Host arrays become Tensors; device arrays (a GPU stream's outputs) DeviceTensors."""
        return {
            name: Tensor(array) if type(array) is np.ndarray else _device_tensor(array)
            for name, array in zip(self._output_names, outputs)
        }

    def _new_request(self, executable: Executable) -> BackendRequest:
        return self._register(executable, [executable.loaded.create_request()])[0]

    def _throughput_requests(
        self, executable: Executable, count: int | None
    ) -> list[BackendRequest]:
        return self._register(executable, executable.loaded.create_throughput_requests(count))

    def _register(
        self, executable: Executable, requests: list[BackendRequest]
    ) -> list[BackendRequest]:
        self._drain_released()
        with self._requests_lock:
            if self._closed:
                for request in requests:
                    request.close()
                raise ModelClosedError(f"model {self._path!r} is closed")
            for request in requests:
                request.owner = executable
            self._requests.extend(requests)  # a retired executable's too: holders give them back
        return requests


def _device_tensor(array: Any) -> Tensor:
    return Tensor(array) if isinstance(array, np.ndarray) else DeviceTensor(array)


def _describe_signature(conversions: tuple[Any, ...], values: Sequence[Any]) -> str:
    parts = []
    for conversion, value in zip(conversions, values):
        dtype = value.dtype
        text = format_signature(dtype, value.shape)
        if conversion is not None and conversion[1]:
            text += f" ({conversion[1]}, converted in graph)"
        elif conversion is not None:
            text += " (converted in graph)"
        parts.append(text)
    return ", ".join(parts)


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

    def merge(self, other: _Totals) -> None:
        self.runs += other.runs
        self.wall_ns += other.wall_ns
        self.device_ns += other.device_ns
        for layer in other.layers.values():
            self.add_layer(layer)

    def add_layer(self, layer: LayerRecord) -> None:
        key = (layer.name, layer.type)
        total = self.layers.get(key)
        if total is None:
            self.layers[key] = replace(layer)
        else:
            total.time_ms += layer.time_ms
            total.count += layer.count
