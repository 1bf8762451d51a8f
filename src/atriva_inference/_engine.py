"""The execution engine under every :class:`~atriva_inference.Model`: written once for all
backends.

It owns the executables (the model as loaded, and its forms specialized per input signature in
a bounded LRU), the registry of every request made from them, and the one run path:
route the inputs -> borrow a request -> run it -> record the timing -> wrap the outputs.
``Model.run``, streams, async requests and the async queue differ only in where they borrow
their request from (a :class:`Holder`), so they all run through :meth:`Engine.run` or
:meth:`Engine.start`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from ._layouts import infer_layout
from ._preparation import InputPlan, PortPlan, plan_for
from .backends.base import BackendRequest, InputConversion, LoadedModel
from .errors import InferenceFailedError, InferenceRuntimeError, InvalidInputError, ModelClosedError
from .profiling import Profile, ProfileTotals, RequestStats, ShapeRecord
from .shapes import ShapeCache, ShapeCacheInfo
from .tensor import DeviceTensor, Tensor, format_signature

__all__ = ["Engine", "Executable", "Holder", "Inputs", "Outputs"]

#: Exact for models whose outputs are tensors; a sequence output holds a list of Tensors and
#: an absent optional one None (docs/onnx-types.md), so plain models need no narrowing.
Outputs = dict[str, Tensor]
#: A list or tuple: the items of a model's one input when that input is a sequence.
Inputs = Mapping[str, Any] | Tensor | np.ndarray | list[Any] | tuple[Any, ...]
#: Called once when an asynchronous run ends: ``(outputs, None)`` or ``(None, error)``.
Completion = Callable[[Outputs | None, BaseException | None], None]


class Executable:
    """One compiled form of the model -- as loaded, or specialized for an input signature
    (conversion compiled into the graph) or a static shape -- with its pool of idle requests."""

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
        self.plans: list[InputPlan | PortPlan] = [
            plan_for(info, converted.get(index) or layouts[index], loaded.device_inputs)
            for index, info in enumerate(loaded.inputs)
        ]
        self.idle: list[BackendRequest] = []
        self.retired = False  # evicted from the shape cache (or closed): holders let go

    def prepare(self, values: Sequence[Any]) -> list[np.ndarray]:
        return [plan.prepare(value) for plan, value in zip(self.plans, values)]


class Holder(Protocol):
    """Where a run borrows its request from, and gives it back to."""

    def take(self, executable: Executable) -> BackendRequest: ...

    def give(self, executable: Executable, request: BackendRequest) -> None: ...


class Engine:
    """Executables, their requests and the one run path of one loaded model.

    The engine is also ``Model.run``'s holder (:meth:`take`, :meth:`give`): each executable's
    idle requests, one more made per concurrent caller, so threads never wait on a global
    lock. (Being its own holder keeps it out of a reference cycle.)
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        backend: str,
        path: str,
        layouts: Mapping[str, str] | None = None,
        shape_cache_size: int = 8,
    ) -> None:
        self.loaded = loaded
        self.backend = backend
        self.path = path
        hints = dict(layouts or {})
        self._layouts = [
            (hints.get(info.name) or infer_layout(info)) if info.is_tensor else None
            for info in loaded.inputs
        ]
        self.inputs = [
            replace(info, layout=layout) for info, layout in zip(loaded.inputs, self._layouts)
        ]
        self.base = Executable(loaded, self._layouts)
        self._plans = self.base.plans
        self._names = [plan.name for plan in self._plans]
        self._output_names = [info.name for info in loaded.outputs]
        # Sequence and optional ports (ONNX Runtime): routed and wrapped apart, so that
        # models of plain tensors keep the short paths.
        self._ports = not all(info.is_tensor for info in loaded.inputs)
        self._optional = {info.name for info in loaded.inputs if info.optional}
        self._output_ports = not all(info.is_tensor for info in loaded.outputs)
        self._conversions: dict[tuple[Any, ...], Executable | None] = {}
        self._shape_cache: ShapeCache[Executable] = ShapeCache(shape_cache_size)
        self._shape_records: dict[tuple[Any, ...], ShapeRecord] = {}
        self._prepare_lock = threading.Lock()
        self._requests = _Registry()
        self._gone_compile_ms = 0.0  # compiles of executables evicted or closed
        self.closed = False

    # -- the run path --------------------------------------------------------------------
    def run(self, inputs: Inputs, holder: Holder, *, bound: bool = False) -> Outputs:
        """Run synchronously on a request from ``holder``. ``bound``: outputs may be views
        into the request's own buffers (a stream's), valid until its next run."""
        started = time.perf_counter_ns()
        if self.closed:
            raise self.closed_error()
        executable, arrays, first = self.route(inputs)
        request = holder.take(executable)
        try:
            outputs = request.infer_bound(arrays) if bound else request.infer(arrays)
        finally:
            ended = time.perf_counter_ns()
            request.stats.record(started, ended)
            holder.give(executable, request)
        if first is not None:
            first.first_call_ms = (ended - started) / 1e6
        return self.wrap(outputs)

    def start(self, inputs: Inputs, holder: Holder, on_done: Completion) -> None:
        """Begin an asynchronous run on a request from ``holder``; ``on_done`` is called
        exactly once, on the backend's thread, with the wrapped outputs or a runtime error.

        Invalid inputs raise here, before anything starts. The input arrays are read in place
        until the run ends (no copy is taken): the caller must not write to them meanwhile.
        """
        started = time.perf_counter_ns()
        if self.closed:
            raise self.closed_error()
        executable, arrays, _first = self.route(inputs)
        request = holder.take(executable)

        def completed(outputs: list[Any] | None, error: BaseException | None) -> None:
            request.stats.record(started, time.perf_counter_ns())
            holder.give(executable, request)
            del arrays[:]  # the backend is done reading them; they were kept alive until now
            if error is not None:
                on_done(None, _runtime_error(error))
            else:
                on_done(self.wrap(outputs or []), None)

        try:
            request.start(arrays, completed)
        except BaseException:
            holder.give(executable, request)
            raise

    def take(self, executable: Executable) -> BackendRequest:
        try:
            return executable.idle.pop()  # atomic under the GIL; no lock on the hot path
        except IndexError:
            return self.new_requests(executable, 1)[0]

    def give(self, executable: Executable, request: BackendRequest) -> None:
        executable.idle.append(request)
        if executable.retired:  # evicted or closed while this run used it: nobody else will
            self.reclaim_idle(executable)

    def wrap(self, outputs: Sequence[Any]) -> Outputs:
        """Host arrays become Tensors; device arrays (a GPU stream's outputs) DeviceTensors;
        a sequence a list of Tensors, an absent optional None."""
        if self._output_ports:
            return {name: _wrap_port(value) for name, value in zip(self._output_names, outputs)}
        return {
            name: Tensor(array) if type(array) is np.ndarray else _device_tensor(array)
            for name, array in zip(self._output_names, outputs)
        }

    # -- routing -------------------------------------------------------------------------
    def route(self, inputs: Inputs) -> tuple[Executable, list[np.ndarray], ShapeRecord | None]:
        """Pick the executable for these inputs (preparing it on first use) and the arrays
        to hand it. The third item is the signature's record when this is its first run."""
        values = self._values(inputs)
        conversions = tuple(plan.conversion(value) for plan, value in zip(self._plans, values))
        if self._ports:  # a sequence or optional is one signature whatever it holds
            key = (conversions, tuple(_shape_key(value) for value in values))
        else:
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
            if self.closed:
                raise self.closed_error()
            started = time.perf_counter()
            if self.loaded.static_shapes:
                # One compile for conversion and shape together: a device that needs static
                # shapes cannot compile the dynamic conversion variant first.
                shapes = self._bound_shapes(conversions, values)  # validates the inputs
                executable = self._specialize(self._conversion_list(conversions), shapes)
                if executable is None:
                    executable = self._conversion_executable(conversions)
            else:
                executable = self._conversion_executable(conversions)
            arrays = executable.prepare(values)  # validates before anything is remembered
            record = ShapeRecord(
                shapes=[list(_shape_key(value) or ()) for value in values],
                signature=_describe_signature(key[0], values, self._plans),
                compile_ms=(time.perf_counter() - started) * 1e3,
                specialized=executable.shapes is not None,
            )
            self._shape_records[key] = record
            for old_key, old in self._shape_cache.put(key, executable):
                self._evict(old_key, old)
            return executable, arrays, record

    def _conversion_executable(self, conversions: tuple[Any, ...]) -> Executable:
        if all(conversion is None for conversion in conversions):
            return self.base
        if conversions not in self._conversions:
            self._conversions[conversions] = self._specialize(
                self._conversion_list(conversions), None
            )
        # None: the backend cannot convert in its graph; numpy converts for the base model.
        return self._conversions[conversions] or self.base

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
        loaded = self.loaded.specialize(conversions, shapes)
        if loaded is None:
            return None
        return Executable(loaded, self._layouts, conversions, shapes)

    def _evict(self, key: Hashable, executable: Executable) -> None:
        """A signature left the shape cache: keep its counts and compile time, let it go."""
        self._shape_records.pop(key, None)
        if executable.shapes is None:
            return  # the base or a conversion variant: shared, kept
        # Mark it first, then take what is idle: a run finishing meanwhile either finds it
        # marked and gives its request back itself, or leaves it idle for us to take.
        executable.retired = True
        self._gone_compile_ms += executable.loaded.compile_ms
        self.reclaim_idle(executable)
        # Requests in use (a run, a stream, an async request, a queue frame) are given back
        # by their holders when they are done with them; closing them now would break runs.

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
            return self._named_values(inputs)
        if isinstance(inputs, (Tensor, np.ndarray, np.generic)):
            if len(names) == 1:
                if isinstance(inputs, (Tensor, np.ndarray)):
                    return [inputs]
                return [self._plans[0].coerce(inputs)]
            raise InvalidInputError(
                f"inputs: the model has {len(names)} inputs ({self._input_listing()}); "
                f"pass a dict of name -> Tensor/array, got a single {type(inputs).__name__}"
            )
        if len(names) == 1 and isinstance(inputs, (list, tuple)) and self._plans[0].info.sequence:
            return [inputs]  # the model's one input is a sequence (its plan checks the items)
        raise InvalidInputError(
            f"inputs: expected a dict of input name -> Tensor/array ({self._input_listing()}), "
            f"got {type(inputs).__name__}"
        )

    def _named_values(self, inputs: Mapping[str, Any]) -> list[Any]:
        """The values of a dict that does not name every input once: absent optional inputs
        are None; anything else missing or unknown is refused, all of it in one message."""
        unknown = [name for name in inputs if name not in self._names]
        missing = [
            name for name in self._names if name not in inputs and name not in self._optional
        ]
        if not unknown and not missing:
            values = [inputs.get(name) for name in self._names]
            return [
                value if isinstance(value, (np.ndarray, Tensor)) else plan.coerce(value)
                for value, plan in zip(values, self._plans)
            ]
        problems = []
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing input(s) {', '.join(map(repr, missing))}")
        raise InvalidInputError(
            f"inputs: {'; '.join(problems)}; the model takes {self._input_listing()}"
            + (" (optional ones may be left out)" if self._optional else "")
        )

    def _input_listing(self) -> str:
        return ", ".join(f"'{plan.name}' {plan.signature()}" for plan in self._plans)

    # -- requests ------------------------------------------------------------------------
    def new_requests(
        self, executable: Executable, count: int | None = 1, *, throughput: bool = False
    ) -> list[BackendRequest]:
        """Registered requests of ``executable``: ordinary ones, or ``throughput`` ones for
        many in flight (``count=None``: the backend's optimal number)."""
        loaded = executable.loaded
        if throughput:
            requests = loaded.create_throughput_requests(count)
        else:
            requests = [loaded.create_request() for _ in range(count or 1)]
        if not self._requests.register(requests):
            raise self.closed_error()
        return requests

    def release(self, requests: Iterable[BackendRequest]) -> None:
        """Requests nobody will use again: keep their counts, close them."""
        self._requests.release(requests)

    def release_later(self, requests: Iterable[BackendRequest]) -> None:
        """For finalizers: they run inside garbage collection, possibly in a thread that holds
        the engine's locks, so they only queue the requests (a deque append takes no lock)."""
        self._requests.release_later(requests)

    def reclaim_idle(self, executable: Executable) -> None:
        """Release the idle requests of a retired executable."""
        idle = []
        while True:
            try:
                idle.append(executable.idle.pop())  # each request is popped exactly once
            except IndexError:
                break
        self.release(idle)

    def tidy(self) -> None:
        """Release what finalizers queued (called at safe points: outside any lock)."""
        self._requests.drain()

    # -- profiling -----------------------------------------------------------------------
    def profile(self) -> Profile:
        totals = self._requests.totals()
        with self._prepare_lock:
            shapes = [replace(record) for record in self._shape_records.values()]
            executables = [] if self.closed else self._executables()
        for executable in executables:
            for layer in executable.loaded.collect_layers():
                totals.add_layer(layer)
        # Every compile: the load, the queue's, each conversion and static-shape variant.
        compile_ms = self._gone_compile_ms + sum(e.loaded.compile_ms for e in executables)
        loaded = self.loaded
        return Profile(
            backend=self.backend,
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
            quantization=loaded.quantization,
        )

    def reset_profiling(self) -> None:
        self._requests.reset()
        with self._prepare_lock:
            executables = [] if self.closed else self._executables()
        for executable in executables:
            executable.loaded.reset_layers()

    def shape_cache_info(self) -> ShapeCacheInfo:
        return self._shape_cache.info()

    # -- lifecycle -----------------------------------------------------------------------
    def closed_error(self) -> ModelClosedError:
        return ModelClosedError(f"model {self.path!r} is closed; load it again to use it")

    def close(self) -> None:
        """Release every executable and request. Requests in use finish their run and are
        closed when given back. Idempotent."""
        with self._prepare_lock:
            if self.closed:
                return
            self.closed = True
            executables = self._executables()
            self._conversions.clear()
            self._shape_cache.clear()
        for executable in executables:
            executable.retired = True
            for layer in executable.loaded.collect_layers():  # kept for get_profiling()
                self._requests.retired_totals.add_layer(layer)
            self._gone_compile_ms += executable.loaded.compile_ms
        self._requests.close()
        for executable in executables:
            executable.loaded.close()

    def _executables(self) -> list[Executable]:
        """Every executable alive: the base, conversion variants, static-shape ones."""
        found = {id(self.base): self.base}
        for executable in [*self._conversions.values(), *self._shape_cache.values()]:
            if executable is not None:
                found[id(executable)] = executable
        return list(found.values())


class _Registry:
    """Every request made for one model, and the counts of those released, so the profile
    covers them all. Holders give requests back; finalizers only queue them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, BackendRequest] = {}
        self._queued: deque[BackendRequest] = deque()  # given back, not yet released
        self.retired_totals = ProfileTotals()
        self._closed = False

    def __len__(self) -> int:
        """How many requests are live (made and not yet released)."""
        self.drain()
        return len(self._live)

    def register(self, requests: list[BackendRequest]) -> bool:
        """Track ``requests``; False (and they are closed) when the model is closed."""
        self.drain()
        with self._lock:
            if not self._closed:
                self._live.update((id(request), request) for request in requests)
                return True
        for request in requests:
            request.close()
        return False

    def release_later(self, requests: Iterable[BackendRequest]) -> None:
        self._queued.extend(requests)

    def release(self, requests: Iterable[BackendRequest]) -> None:
        self._queued.extend(requests)
        self.drain()

    def drain(self) -> None:
        requests = []
        while True:
            try:
                requests.append(self._queued.popleft())
            except IndexError:
                break
        if not requests:
            return
        with self._lock:
            # Given back twice (a holder, then a finalizer) counts and closes once.
            gone = [self._live.pop(id(r)) for r in requests if id(r) in self._live]
            for request in gone:
                self.retired_totals.add(request.stats, 0)
        for request in gone:
            request.close()

    def totals(self) -> ProfileTotals:
        self.drain()
        totals = ProfileTotals()
        with self._lock:  # one snapshot: a request is either retired or live
            totals.merge(self.retired_totals)
            requests = list(self._live.values())
        for index, request in enumerate(requests):
            totals.add(request.stats, index)
        return totals

    def reset(self) -> None:
        self.drain()  # counts given back before the reset go with it
        with self._lock:
            requests = list(self._live.values())
            self.retired_totals = ProfileTotals()
        for request in requests:
            request.stats = RequestStats()

    def close(self) -> None:
        """Release every request (their counts stay); none is registered afterwards."""
        with self._lock:
            self._closed = True
            requests = list(self._live.values())
        self.release(requests)


def _runtime_error(error: BaseException) -> BaseException:
    """A backend error that is not ours yet is wrapped (and chained); ours pass as they are."""
    if isinstance(error, InferenceRuntimeError):
        return error
    wrapped = InferenceFailedError(f"asynchronous inference failed: {error}")
    wrapped.__cause__ = error
    return wrapped


def _device_tensor(array: Any) -> Tensor:
    return Tensor(array) if isinstance(array, np.ndarray) else DeviceTensor(array)


def _wrap_port(value: Any) -> Tensor | list[Tensor] | None:
    """An output of a model with sequence or optional outputs: an absent optional is None,
    a sequence a list of (host) Tensors."""
    if value is None:
        return None
    if isinstance(value, list):
        return [Tensor(item) for item in value]
    return _device_tensor(value)


def _shape_key(value: Any) -> tuple[int, ...] | None:
    """The shape of an array or Tensor; None for a sequence's list or an absent optional:
    one signature whatever they hold (ONNX Runtime compiles nothing per shape)."""
    return value.shape if isinstance(value, (np.ndarray, Tensor)) else None


def _describe_signature(
    conversions: tuple[Any, ...], values: Sequence[Any], plans: Sequence[InputPlan | PortPlan]
) -> str:
    parts = []
    for conversion, value, plan in zip(conversions, values, plans):
        if isinstance(plan, PortPlan):
            parts.append(plan.signature())
            continue
        text = format_signature(value.dtype, value.shape)
        if conversion is not None and conversion[1]:
            text += f" ({conversion[1]}, converted in graph)"
        elif conversion is not None:
            text += " (converted in graph)"
        parts.append(text)
    return ", ".join(parts)
