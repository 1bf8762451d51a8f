"""The models a server serves, by name: their Open Inference Protocol metadata, the checks a
request passes before it reaches a model, and the bounded asynchronous run both front ends
(REST and gRPC) await.

A request runs on the model's throughput-tuned async queue without a thread hop: the
backend starts it, and its completion is handed back to the event loop that awaits it. At
most the queue's depth run at once; up to ``max_queue`` more wait (in arrival order) and
the rest are refused with :class:`ServerBusyError` (HTTP 503 / gRPC UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..backends import choose_backend
from ..errors import InvalidInputError
from ..execution import AsyncQueue
from ..model import Model
from ..runtime import InferenceRuntime
from ..tensor import Tensor, TensorInfo, format_signature
from .config import DEFAULT_MAX_QUEUE, ServeConfig
from .errors import ModelNotFoundError, ServerBusyError
from .metrics import Metrics, ModelMetrics
from .protocol import datatype_of

__all__ = [
    "EXTENSIONS",
    "SERVER_NAME",
    "VERSION",
    "InferOutput",
    "ModelRepository",
]

SERVER_NAME = "atriva-inference"
#: The one version each model has (the protocol names versions; a file has one).
VERSION = "1"
#: Protocol extensions this server implements (``GET /v2``, ``ServerMetadata``).
EXTENSIONS = ("binary_tensor_data",)
#: Backends tried, in order, when the configuration names none.


@dataclass(frozen=True)
class InferOutput:
    """One output of an answered request."""

    name: str
    datatype: str
    array: np.ndarray


class _Served:
    """One model: its description, its queue and the gate that bounds who waits for it."""

    def __init__(self, name: str, model: Model, max_queue: int, metrics: ModelMetrics) -> None:
        self.name = name
        self.model = model
        self.inputs = {info.name: info for info in model.inputs}
        self.outputs = [info.name for info in model.outputs]
        self.metadata = {
            "name": name,
            "versions": [VERSION],
            "platform": f"{model.backend}_{Path(model.path).suffix.lstrip('.') or 'model'}",
            "inputs": [_tensor_metadata(info) for info in model.inputs],
            "outputs": [_tensor_metadata(info) for info in model.outputs],
        }
        self.queue: AsyncQueue = model.create_async_queue()
        self.depth = self.queue.depth
        self.max_queue = max_queue
        self.metrics = metrics
        self._lock = threading.Lock()
        self._running = 0
        self._waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._idle = threading.Condition(self._lock)

    # -- requests -----------------------------------------------------------------------
    def check_version(self, version: str) -> None:
        if version not in ("", VERSION):
            raise ModelNotFoundError(
                f"model '{self.name}' has no version {version!r}; it has version '{VERSION}'"
            )

    def feed(self, inputs: Sequence[tuple[str, np.ndarray]]) -> dict[str, Any]:
        """The request's arrays by input name, checked against the model: every input once,
        each of the model's datatype (uint8 frames also into float image inputs)."""
        feed: dict[str, Any] = {}
        for name, array in inputs:
            info = self.inputs.get(name)
            if info is None:
                raise InvalidInputError(
                    f"model '{self.name}': unknown input {name!r}; it takes "
                    f"{', '.join(map(repr, self.inputs))}"
                )
            if name in feed:
                raise InvalidInputError(f"model '{self.name}': input {name!r} given twice")
            feed[name] = _as_model_input(self.name, info, array)
        missing = [name for name in self.inputs if name not in feed]
        if missing:
            raise InvalidInputError(
                f"model '{self.name}': missing input(s) {', '.join(map(repr, missing))}; it "
                f"takes {', '.join(map(repr, self.inputs))}"
            )
        return feed

    def check_outputs(self, names: Sequence[str] | None) -> list[str]:
        if not names:
            return self.outputs
        unknown = [name for name in names if name not in self.outputs]
        if unknown:
            raise InvalidInputError(
                f"model '{self.name}': unknown output(s) {', '.join(map(repr, unknown))}; it "
                f"gives {', '.join(map(repr, self.outputs))}"
            )
        return list(names)

    # -- the gate: depth run, max_queue wait, the rest are refused ----------------------------
    async def acquire(self) -> None:
        with self._lock:
            if self._running < self.depth and not self._waiting:
                self._running += 1
                self.metrics.running(self._running)
                return
            if len(self._waiting) >= self.max_queue:
                raise ServerBusyError(
                    f"model '{self.name}': {len(self._waiting)} requests already wait for it "
                    f"(max_queue={self.max_queue}); retry later"
                )
            loop = asyncio.get_running_loop()
            turn = loop.create_future()
            self._waiting.append((loop, turn))
            self.metrics.waiting(len(self._waiting))
        try:
            await turn
        except asyncio.CancelledError:
            with self._lock:
                waiting = (loop, turn) in self._waiting
                if waiting:
                    self._waiting.remove((loop, turn))
                    self.metrics.waiting(len(self._waiting))
            if not waiting:  # cancelled just as the slot was handed over: pass it on
                self.release()
            raise

    def release(self) -> None:
        """A run ended: hand its slot to the next waiter, or free it."""
        with self._lock:
            if self._waiting:
                loop, turn = self._waiting.popleft()
                self.metrics.waiting(len(self._waiting))
                loop.call_soon_threadsafe(_hand_over, turn)
                return
            self._running -= 1
            self.metrics.running(self._running)
            if not self._running:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None) -> bool:
        """Block until nothing runs or waits (draining); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._running or self._waiting:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True


def _hand_over(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)
    # A cancelled waiter's acquire() sees its turn arrive and passes the slot on.


class ModelRepository:
    """Models by name, as both front ends serve them.

    Build it from a :class:`ServeConfig` (:meth:`from_config`, which loads the models and
    closes them in :meth:`close`) or from models already loaded (``{name: Model}``, which
    stay the caller's). Creating one starts nothing: it is what a Ray Serve replica holds.
    """

    def __init__(
        self,
        models: Mapping[str, Model],
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if not models:
            raise InvalidInputError("models: expected at least one model to serve, got none")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise InvalidInputError(f"max_queue: expected a positive integer, got {max_queue!r}")
        self.metrics = Metrics()
        self._served: dict[str, _Served] = {}
        try:
            for name, model in models.items():
                if not isinstance(model, Model):
                    raise InvalidInputError(
                        f"models[{name!r}]: expected a loaded Model, got {type(model).__name__}"
                    )
                self._served[name] = _Served(name, model, max_queue, self.metrics.model(name))
        except BaseException:
            for served in self._served.values():
                served.queue.close()
            raise
        self._on_close = on_close
        self._draining = False
        self._closed = False

    @classmethod
    def from_config(cls, config: ServeConfig) -> ModelRepository:
        """Load every model of ``config`` (on one runtime) and serve them."""
        runtime = _runtime(config.backend, config.cache_dir)
        models: dict[str, Model] = {}
        try:
            for name, path in config.models.items():
                models[name] = runtime.load_model(
                    path,
                    config.device,
                    precision=config.precision,
                    dynamic=config.dynamic,
                )
            return cls(models, max_queue=config.max_queue, on_close=runtime.close)
        except BaseException:
            runtime.close()
            raise

    # -- what is served -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._served)

    def model(self, name: str) -> Model:
        """The model served as ``name``."""
        return self._served_model(name).model

    def concurrency(self, name: str) -> int:
        """How many requests model ``name`` runs at once (its async queue's depth); up to
        ``max_queue`` more wait."""
        return self._served_model(name).depth

    def __contains__(self, name: object) -> bool:
        return name in self._served

    @property
    def live(self) -> bool:
        return not self._closed

    @property
    def ready(self) -> bool:
        """Every model can be inferred (False while draining)."""
        return not (self._draining or self._closed) and all(
            not served.model.closed for served in self._served.values()
        )

    def model_ready(self, name: str, version: str = "") -> bool:
        """Raises :class:`ModelNotFoundError` for a model or version not served."""
        served = self._served_model(name)
        served.check_version(version)
        return not (self._draining or self._closed or served.model.closed)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        """``{name, versions, platform, inputs, outputs}``; -1 for a dynamic dimension."""
        served = self._served_model(name)
        served.check_version(version)
        return served.metadata

    def describe(self) -> str:
        """``name (backend, device, precision)`` of every model, for the startup line."""
        return ", ".join(
            f"{name} ({served.model.backend}, {served.model.device}, {served.model.precision})"
            for name, served in self._served.items()
        )

    # -- inference ------------------------------------------------------------------------
    async def infer(
        self,
        name: str,
        version: str,
        inputs: Sequence[tuple[str, np.ndarray]],
        outputs: Sequence[str] | None = None,
    ) -> list[InferOutput]:
        """Run model ``name`` on ``inputs`` (``(input name, array)`` pairs); return the
        requested ``outputs`` (all, in model order, when none are named).

        Raises :class:`ModelNotFoundError`, :class:`InvalidInputError` (bad request),
        :class:`ServerBusyError` (queue full or draining), or the run's own error.
        """
        started = time.perf_counter()
        served = self._served_model(name)
        metrics = served.metrics
        try:
            served.check_version(version)
            feed = served.feed(inputs)
            wanted = served.check_outputs(outputs)
            if self._draining or self._closed:
                raise ServerBusyError("the server is shutting down; retry on another replica")
            await served.acquire()
            queued = time.perf_counter()
            results, computed = await self._run(served, feed)
        except BaseException as exc:
            metrics.failed(exc)
            raise
        metrics.succeeded(_batch_size(feed), started, queued, computed, time.perf_counter())
        return [
            InferOutput(output, datatype_of(array.dtype), array)
            for output in wanted
            for array in (results[output].to_numpy(),)
        ]

    async def _run(self, served: _Served, feed: dict[str, Any]) -> tuple[dict[str, Tensor], float]:
        """Start the run on the model's queue; the backend's completion wakes this loop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[dict[str, Tensor], float]] = loop.create_future()

        def on_done(outputs: dict[str, Tensor] | None, error: BaseException | None) -> None:
            # On the backend's thread. The slot is freed here, when the run is over, even
            # if the client went away meanwhile (its task was cancelled).
            computed = time.perf_counter()
            served.release()
            loop.call_soon_threadsafe(_settle, done, outputs, error, computed)

        try:
            _start(served, feed, on_done)
        except BaseException:  # refused before it started (the runtime's own checks)
            served.release()
            raise
        return await done

    # -- lifecycle ------------------------------------------------------------------------
    def drain(self, timeout: float | None = None) -> bool:
        """Refuse new requests (503 / UNAVAILABLE, not ready) and wait for those admitted;
        False when some were still running after ``timeout`` seconds.

        It blocks: call it from a thread other than the event loop serving the requests
        (waiting ones need that loop to run)."""
        self._draining = True
        deadline = None if timeout is None else time.monotonic() + timeout
        for served in self._served.values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not served.wait_idle(remaining):
                return False
        return True

    def close(self) -> None:
        """Drain, close the queues, and the models when this repository loaded them.
        Idempotent; blocks like :meth:`drain`."""
        if self._closed:
            return
        self.drain()
        self._closed = True
        for served in self._served.values():
            served.queue.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> ModelRepository:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _served_model(self, name: str) -> _Served:
        served = self._served.get(name)
        if served is None:
            raise ModelNotFoundError(
                f"unknown model {name!r}; this server serves {', '.join(map(repr, self._served))}"
            )
        return served


def _start(served: _Served, feed: dict[str, Any], on_done: Callable[..., None]) -> None:
    # AsyncQueue.submit reports a failed run only through its AsyncResult (its callback sees
    # successes), which would need a thread to wait on; the engine's start reports both
    # through on_done. The queue stays the holder of the throughput-tuned requests.
    queue = served.queue
    queue._engine.start(feed, queue, on_done)


def _settle(
    done: asyncio.Future[Any],
    outputs: dict[str, Tensor] | None,
    error: BaseException | None,
    computed: float,
) -> None:
    if done.done():  # the request was cancelled (client gone): nobody reads the result
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result((outputs, computed))


def _batch_size(feed: dict[str, Any]) -> int:
    """Inferences in a request, for ``nv_inference_count``: the first input's N."""
    first = next(iter(feed.values()))
    shape = first.shape
    layout = first.layout if isinstance(first, Tensor) else None
    if layout is not None:  # a frame declared HWC is one inference
        return int(shape[layout.index("N")]) if "N" in layout else 1
    return int(shape[0]) if len(shape) > 1 else 1


def _tensor_metadata(info: TensorInfo) -> dict[str, Any]:
    shape = [-1] if info.shape is None else [-1 if dim is None else int(dim) for dim in info.shape]
    return {"name": info.name, "datatype": datatype_of(info.dtype), "shape": shape}


def _as_model_input(model: str, info: TensorInfo, array: np.ndarray) -> Any:
    """``array`` as the input ``info`` takes it, or a 400 that says expected vs got.

    The datatype must be the model's; a float image input (a layout with C, H and W) also
    takes uint8 frames, channels first or last, with or without the batch dimension: the
    runtime converts them (in the graph where the backend can).
    """
    if array.dtype == info.dtype or (array.dtype.kind == "U" and info.dtype.kind in "USO"):
        return array
    layout = info.layout
    if (
        array.dtype != np.uint8
        or info.dtype.kind != "f"
        or layout is None
        or not {"C", "H", "W"} <= set(layout)
    ):
        raise InvalidInputError(
            f"model '{model}' input '{info.name}': expected datatype {datatype_of(info.dtype)} "
            f"({format_signature(info.dtype, info.shape)}), got {datatype_of(array.dtype)} "
            f"{list(array.shape)}"
        )
    channels_last = layout.replace("C", "") + "C"
    for candidate in (layout, channels_last):
        for declared in (candidate, candidate.replace("N", "")):
            if len(declared) == array.ndim and _admits(info, declared, array.shape):
                return Tensor(array, declared)
    raise InvalidInputError(
        f"model '{model}' input '{info.name}': expected a uint8 frame as {layout} or "
        f"{channels_last} (with or without N) fitting {format_signature(info.dtype, info.shape)} "
        f"({layout}), got UINT8 {list(array.shape)}"
    )


def _admits(info: TensorInfo, declared: str, shape: tuple[int, ...]) -> bool:
    """Whether data of ``shape`` in layout ``declared`` fits the model's static dims."""
    if info.shape is None or info.layout is None:
        return True
    sizes = dict(zip(declared, shape))
    sizes.setdefault("N", 1)  # a frame without its batch dimension is a batch of one
    return all(dim is None or sizes.get(axis) == dim for axis, dim in zip(info.layout, info.shape))


def _runtime(backend: str | None, cache_dir: str | os.PathLike[str] | None) -> InferenceRuntime:
    return InferenceRuntime(choose_backend(backend), cache_dir=cache_dir)
