"""Running an engine: the loaded model (its inputs, outputs, profiles and precision) and
its requests, each with an execution context, a CUDA stream, device buffers and pinned
staging of its own, on the CUDA layer (:mod:`atriva_inference.cuda`).

Host data is staged through pinned memory; a ``DeviceArray`` already on the model's GPU is
bound in place (zero-copy) when TensorRT can take its address, else copied on the device.
``infer`` returns host arrays the caller owns; ``infer_bound`` (the runtime's streams)
returns ``DeviceArray`` views of the device output buffers, valid until the request's next
run. An async request completes on a blocking-sync CUDA event, waited for (asleep, not
spinning) on the shared executor thread pool.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np

from ... import cuda
from ...devices import Device
from ...errors import InferenceFailedError, InvalidInputError, ModelClosedError, ModelLoadError
from ...profiling import LayerRecord
from ...tensor import TensorInfo
from ..base import BackendRequest, DoneCallback, LoadedModel, _async_executor, declared_precision
from .messages import translate
from .profiles import ShapeRange, select_profile

__all__ = [
    "TENSOR_ALIGNMENT",
    "TensorRTModel",
    "TensorRTRequest",
    "binds_in_place",
    "numpy_dtype_for",
    "submit_wait",
]

#: The alignment TensorRT requires of every tensor address (see :func:`binds_in_place`).
TENSOR_ALIGNMENT = 256


def binds_in_place(ptr: int) -> bool:
    """Whether a GPU input at device address ``ptr`` can be bound as it is.

    TensorRT requires every tensor address to be 256-byte aligned (NvInferRuntime.h,
    ``IExecutionContext::setTensorAddress``: "The pointer must have at least 256-byte
    alignment") and refuses null. CUDA allocations are aligned, but a view at an offset
    (one image of a batch, a DLPack ``byte_offset``) need not be: such an input is copied
    into the request's own device buffer on its stream instead (device to device).
    """
    return ptr != 0 and ptr % TENSOR_ALIGNMENT == 0


def submit_wait(executor: Executor, wait: Callable[..., None], *args: Any) -> None:
    """Hand ``wait(*args)`` to ``executor``; its refusal (``RuntimeError`` once the pool or
    the interpreter is shutting down) becomes :class:`InferenceFailedError`, chained.

    The caller then knows nothing was handed over: ``wait`` will not run, so it must not
    expect a completion callback (the request's ``start`` raises instead)."""
    try:
        executor.submit(wait, *args)
    except RuntimeError as exc:
        raise InferenceFailedError(
            f"cannot complete an asynchronous TensorRT inference: it needs a thread of the "
            f"shared worker pool to wait for the GPU, and the pool refused ({exc}); "
            f"expected a running interpreter, not one shutting down"
        ) from exc


# TensorRT DataType member names -> numpy dtypes, for the types ``trt.nptype`` cannot
# name (bf16, fp8, e8m0 have ml_dtypes equivalents). INT4/FP4 pack two values per byte on
# the device, which host staging cannot mirror element for element: refused as I/O.
_DTYPES_BY_NAME: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "FP8": np.dtype(ml_dtypes.float8_e4m3fn),
    "E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
}


def numpy_dtype_for(type_name: str, tensor: str) -> np.dtype:
    """The numpy dtype of a TensorRT ``DataType`` member name (``"FLOAT"``, ``"BF16"`` ...)."""
    dtype = _DTYPES_BY_NAME.get(type_name)
    if dtype is None:
        raise ModelLoadError(
            f"tensor '{tensor}' has TensorRT type {type_name}, which this runtime cannot "
            f"exchange with numpy (supported: {', '.join(_DTYPES_BY_NAME)})"
        )
    return dtype


def dims(shape: Iterable[int]) -> tuple[int | None, ...]:
    """TensorRT dims as ours: -1 (dynamic) becomes None."""
    return tuple(int(dim) if int(dim) >= 0 else None for dim in shape)


def _tensor_dtype(trt: ModuleType, trt_dtype: Any, tensor: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError:  # bf16, fp8, ...: nptype names only the types numpy has
        return numpy_dtype_for(getattr(trt_dtype, "name", str(trt_dtype)), tensor)


def _layer_types(trt: ModuleType, engine: Any) -> dict[str, str]:
    """Layer name -> type from the engine inspector (built with detailed verbosity).

    Optional detail: an engine without it, or a TensorRT build without the inspector,
    gives layers with an empty type rather than failing the load."""
    try:
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception:
        return {}
    types = {}
    for layer in info.get("Layers", []) if isinstance(info, dict) else []:
        if isinstance(layer, dict) and "Name" in layer:
            types[str(layer["Name"])] = str(layer.get("LayerType", ""))
    return types


@functools.cache
def _profiler_class(trt: ModuleType) -> type:
    """The IProfiler subclass, made once per tensorrt module (it subclasses a pybind class)."""

    class LayerProfiler(trt.IProfiler):  # type: ignore[misc,name-defined]
        """Sums TensorRT's per-layer times into the owning request's ``stats.layers``.

        It reads ``request.stats`` at each report, since the model swaps in fresh stats
        on ``reset_profiling``; a weak reference avoids a request<->context cycle."""

        def __init__(self, request: TensorRTRequest, types: Mapping[str, str], device: str):
            trt.IProfiler.__init__(self)
            self._request = weakref.ref(request)
            self._types = types
            self._device = device

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            request = self._request()
            if request is None:
                return
            layer_type = self._types.get(layer_name, "")
            layers = request.stats.layers
            record = layers.get((layer_name, layer_type))
            if record is None:
                record = layers[(layer_name, layer_type)] = LayerRecord(
                    name=layer_name,
                    type=layer_type,
                    implementation="TensorRT",
                    device=self._device,
                    preprocessing="__atriva_" in layer_name,  # the prologue onnx_graph adds
                )
            record.time_ms += float(ms)
            record.count += 1

    return LayerProfiler


class TensorRTModel(LoadedModel):
    """A deserialised engine on one GPU; requests get their own execution contexts."""

    static_shapes = False  # profiles cover a range of shapes: no per-shape compile

    def __init__(
        self,
        trt: ModuleType,
        engine: Any,
        device: Device,
        index: int,
        precision: str | None,
        logger: Any,
    ) -> None:
        self.trt = trt
        self.engine = engine
        self.device = device.name
        self.device_index = index
        self.device_inputs = device
        self.logger = logger
        self.inputs = []
        self.outputs = []
        with translate(ModelLoadError, "cannot read the engine's inputs and outputs"):
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                mode = engine.get_tensor_mode(name)
                if engine.get_tensor_location(name) == trt.TensorLocation.HOST:
                    raise ModelLoadError(
                        f"tensor '{name}' is a shape tensor TensorRT reads on the host, which "
                        f"this backend does not support"
                    )
                # The engine's own I/O types: strongly typed, an FP16 model takes float16.
                info = TensorInfo(
                    name=name,
                    shape=dims(engine.get_tensor_shape(name)),
                    dtype=_tensor_dtype(trt, engine.get_tensor_dtype(name), name),
                )
                if mode == trt.TensorIOMode.INPUT:
                    self.inputs.append(info)
                elif mode == trt.TensorIOMode.OUTPUT:
                    self.outputs.append(info)
            self.profiles: list[dict[str, ShapeRange]] = []
            dynamic = [info.name for info in self.inputs if info.shape and None in info.shape]
            for profile_index in range(engine.num_optimization_profiles):
                profile = {}
                for name in dynamic:
                    low, opt, high = engine.get_tensor_profile_shape(name, profile_index)
                    profile[name] = ShapeRange(tuple(low), tuple(opt), tuple(high))
                self.profiles.append(profile)
        if not any(self.profiles):
            self.profiles = []
        self.precision = precision or declared_precision(self.inputs + self.outputs)
        self._layer_types: dict[str, str] | None = None

    def layer_types(self) -> dict[str, str]:
        """Layer name -> type, read once from the engine inspector."""
        if self._layer_types is None:
            self._layer_types = _layer_types(self.trt, self.engine)
        return self._layer_types

    def create_request(self) -> BackendRequest:
        return TensorRTRequest(self)

    def close(self) -> None:
        self.engine = None


class TensorRTRequest(BackendRequest):
    """One execution context with its own stream, device buffers and pinned staging.

    The stream is a *blocking* CUDA stream (``cuda.Stream``'s default): its work
    waits for what was queued before it on the legacy default stream, where CuPy and
    PyTorch work by default, so a GPU input they refill every frame is read only once
    written, without the caller synchronizing. (Work on a per-thread default stream or a
    library's own stream is not covered: synchronize it, or wrap the array again with
    ``DeviceArray.from_object(obj, stream=...)``.) The event an asynchronous run is waited
    on is created with blocking sync, so the waiting pool thread sleeps instead of spinning.
    """

    native_async = True

    def __init__(self, model: TensorRTModel) -> None:
        super().__init__()
        if model.engine is None:
            raise ModelClosedError("the TensorRT model is closed; load it again")
        self._device = model.device
        self._index = model.device_index
        self._logger = model.logger
        self._profiles = model.profiles
        self._input_names = [info.name for info in model.inputs]
        self._output_names = [info.name for info in model.outputs]
        self._input_dtypes = [info.dtype for info in model.inputs]
        self._output_dtypes = [info.dtype for info in model.outputs]
        count = len(model.inputs) + len(model.outputs)
        cuda.use_device(self._index)
        model.logger.take()
        with translate(InferenceFailedError, "cannot create a TensorRT execution context"):
            self._context = model.engine.create_execution_context()
        if self._context is None:
            said = model.logger.take() or "no message (out of GPU memory?)"
            raise InferenceFailedError(f"TensorRT cannot create an execution context: {said}")
        self._stream = cuda.Stream(self._index, blocking=True)
        # Only _copied is waited on by the host: it sleeps there (blocking sync). The timing
        # events are read after it completes, so they need no host wake-up of their own.
        self._started = cuda.Event(self._index, timing=True, blocking_sync=False)
        self._executed = cuda.Event(self._index, timing=True, blocking_sync=False)
        self._copied = cuda.Event(self._index, blocking_sync=True)
        self._in_use = threading.Lock()
        self._device_buffers: list[Any] = [None] * count  # inputs first, then outputs
        self._pinned: list[Any] = [None] * count
        self._addresses: list[int] = [0] * count  # what set_tensor_address holds now
        self._shapes: list[tuple[int, ...] | None] = [None] * len(model.inputs)
        self._output_shapes: list[tuple[int, ...]] = []
        self._profile = 0
        if model.profiling:
            # Kept on the request too: the context's reference alone is not documented.
            self._profiler = _profiler_class(model.trt)(self, model.layer_types(), model.device)
            with translate(InferenceFailedError, "cannot attach the TensorRT profiler"):
                self._context.profiler = self._profiler

    # -- running ---------------------------------------------------------------------
    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Host arrays the caller owns (copied out of the pinned staging)."""
        views = self._run(inputs, to_host=True)
        return [view.copy() for view in views]

    def infer_bound(self, inputs: Sequence[Any]) -> list[Any]:
        """Outputs stay on the GPU: ``cuda.DeviceArray`` views of this request's
        device output buffers, complete on return (the stream is synchronized) and valid
        until this request's next run, as ONNX Runtime's CUDA requests return them. No
        device-to-host copy is made; ``to_numpy()`` makes one when asked."""
        return self._run(inputs, to_host=False)

    def _run(self, inputs: Sequence[Any], *, to_host: bool) -> list[Any]:
        views = self._enqueue(inputs, to_host=to_host)
        with translate(InferenceFailedError, "TensorRT inference failed"):
            # A blocking-sync event, not cudaStreamSynchronize: that one spins a CPU core.
            self._copied.record(self._stream)
            self._copied.synchronize()
            self._count_device_time()
        return views

    def start(self, inputs: Sequence[Any], on_done: DoneCallback) -> None:
        """Enqueue everything now; a shared pool thread waits on the CUDA event, then
        reports through ``on_done`` (exactly once). When this raises, nothing was handed
        to the pool and ``on_done`` is never called: the error is the caller's, as the
        base contract has it (the async request resets itself)."""
        views = self._enqueue(inputs, to_host=True)
        try:
            with translate(InferenceFailedError, "TensorRT inference failed"):
                self._copied.record(self._stream)
            submit_wait(_async_executor(), self._wait_and_report, views, on_done)
        except BaseException:
            # Nobody will wait for the queued work: it must end before the buffers are reused.
            with contextlib.suppress(Exception):
                self._stream.synchronize()
            raise

    def _wait_and_report(self, views: list[np.ndarray], on_done: DoneCallback) -> None:
        try:
            with translate(InferenceFailedError, "asynchronous TensorRT inference failed"):
                # A pool thread starts with GPU.0 current: without this, waiting for a model
                # on GPU.1 would make CUDA create a context (device memory) on GPU.0 too.
                cuda.use_device(self._index)
                self._copied.synchronize()
                self._count_device_time()
            outputs = [view.copy() for view in views]
        except BaseException as exc:  # reported to the waiter, never lost
            on_done(None, exc)
        else:
            on_done(outputs, None)

    def _count_device_time(self) -> None:
        self.stats.device_ns += int(self._executed.elapsed_ms(self._started) * 1e6)

    def _enqueue(self, inputs: Sequence[Any], *, to_host: bool) -> list[Any]:
        """Stage, bind and execute on the stream, and with ``to_host`` copy the outputs to
        pinned memory; returns the pinned views, else views of the device output buffers
        (either filled once the stream reaches them)."""
        with self._in_use:  # close() from another thread waits for this enqueue
            return self._enqueue_locked(inputs, to_host)

    def _enqueue_locked(self, inputs: Sequence[Any], to_host: bool) -> list[Any]:
        if self._context is None:
            raise ModelClosedError("this TensorRT request is closed; create another")
        if len(inputs) != len(self._input_names):
            raise InvalidInputError(
                f"expected {len(self._input_names)} inputs "
                f"({', '.join(map(repr, self._input_names))}), got {len(inputs)}"
            )
        cuda.use_device(self._index)  # the calling thread may be a fresh worker
        try:
            with translate(InferenceFailedError, "TensorRT inference failed"):
                return self._enqueue_on_stream(inputs, to_host)
        except BaseException:
            # Nothing may still read the staging buffers when the caller retries.
            with contextlib.suppress(Exception):
                self._stream.synchronize()
            raise

    def _enqueue_on_stream(self, inputs: Sequence[Any], to_host: bool) -> list[Any]:
        context, stream = self._context, self._stream
        shapes = {name: tuple(value.shape) for name, value in zip(self._input_names, inputs)}
        profile = select_profile(self._profiles, shapes, prefer=self._profile)
        if profile != self._profile:
            context.set_optimization_profile_async(profile, stream.handle)
            self._profile = profile
            self._shapes = [None] * len(self._shapes)  # a new profile forgets input shapes
        shapes_changed = False
        for index, value in enumerate(inputs):
            name = self._input_names[index]
            address = self._stage_input(index, name, value)
            shape = tuple(value.shape)
            if shape != self._shapes[index]:
                if not context.set_input_shape(name, shape):
                    said = self._logger.take() or "no message"
                    raise InvalidInputError(
                        f"TensorRT refuses shape {shape} for input '{name}': {said}"
                    )
                self._shapes[index] = shape
                shapes_changed = True
            self._bind(index, name, address)
        if shapes_changed or not self._output_shapes:
            self._output_shapes = [self._output_shape(name) for name in self._output_names]
        views = []
        first_output = len(self._input_names)
        for offset, name in enumerate(self._output_names):
            index = first_output + offset
            shape = self._output_shapes[offset]
            dtype = self._output_dtypes[offset]
            nbytes = math.prod(shape) * dtype.itemsize
            self._bind(index, name, self._device_memory(index, nbytes))
            if to_host:
                views.append(self._pinned_buffer(index, nbytes).array(dtype, shape))
            else:
                views.append(self._device_buffers[index].array(dtype, shape))
        self._started.record(stream)
        self._logger.take()
        if not context.execute_async_v3(stream.handle):
            said = self._logger.take() or "no message"
            raise InferenceFailedError(f"TensorRT could not run the engine: {said}")
        self._executed.record(stream)
        if to_host:
            for offset, view in enumerate(views):
                cuda.copy_to_host(view, self._addresses[first_output + offset], stream)
        return views

    def _stage_input(self, index: int, name: str, value: Any) -> int:
        """The device address of input ``index``: the caller's own for a DeviceArray
        (zero-copy) when TensorRT can bind it (:func:`binds_in_place`), else the request's
        device buffer, which a misaligned DeviceArray is copied into on the device and host
        data through pinned staging."""
        dtype = self._input_dtypes[index]
        if isinstance(value, np.ndarray):
            if value.dtype != dtype:
                raise InvalidInputError(
                    f"input '{name}': expected {dtype.name} data, got {value.dtype.name}"
                )
            staged = self._pinned_buffer(index, value.nbytes).array(dtype, value.shape)
            np.copyto(staged, value)
            address = self._device_memory(index, value.nbytes)
            cuda.copy_to_device(address, staged, self._stream)
            return address
        if not isinstance(value, cuda.DeviceArray):
            raise InvalidInputError(
                f"input '{name}': expected a numpy array or a GPU array, got {type(value).__name__}"
            )
        if value.device != self._index:
            raise InvalidInputError(
                f"input '{name}': the data is on GPU.{value.device}, the model runs on "
                f"{self._device}; pass host data or load the model on GPU.{value.device}"
            )
        if np.dtype(value.dtype) != dtype:
            raise InvalidInputError(
                f"input '{name}': expected {dtype.name} data on the GPU, got "
                f"{np.dtype(value.dtype).name} (GPU data is used in place, never converted)"
            )
        ptr = int(value.ptr)
        if binds_in_place(ptr):
            return ptr
        address = self._device_memory(index, value.nbytes)
        # On the request stream: ordered after the producer's writes like a bound input.
        cuda.copy_on_device(address, ptr, value.nbytes, self._stream)
        return address

    def _bind(self, index: int, name: str, address: int) -> None:
        if address != self._addresses[index]:
            if not self._context.set_tensor_address(name, address):
                said = self._logger.take() or "no message"
                raise InferenceFailedError(f"TensorRT cannot bind tensor '{name}': {said}")
            self._addresses[index] = address

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = tuple(int(dim) for dim in self._context.get_tensor_shape(name))
        if any(dim < 0 for dim in shape):
            raise InferenceFailedError(
                f"output '{name}' has a data-dependent shape {shape}, which this backend "
                f"cannot size before running (it needs an output allocator)"
            )
        return shape

    def _device_memory(self, index: int, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` for tensor ``index`` (never a null
        address, which TensorRT refuses even for empty tensors)."""
        buffer = self._device_buffers[index]
        if buffer is None:
            buffer = self._device_buffers[index] = cuda.DeviceBuffer(max(nbytes, 1), self._index)
            return int(buffer.ptr)
        return int(buffer.ensure(max(nbytes, 1)))

    def _pinned_buffer(self, index: int, nbytes: int) -> Any:
        buffer = self._pinned[index]
        if buffer is None:
            buffer = self._pinned[index] = cuda.PinnedBuffer(max(nbytes, 1))
        else:
            buffer.ensure(max(nbytes, 1))
        return buffer

    def close(self) -> None:
        # Model.close() may close a request another thread is enqueuing on: the lock keeps
        # the buffers from being freed under execute_async_v3.
        with self._in_use:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._context is None:
            return
        with contextlib.suppress(Exception):
            self._stream.synchronize()  # nothing in flight may outlive its buffers
        self._context = None
        for buffer in [*self._device_buffers, *self._pinned]:
            if buffer is not None:
                buffer.close()
        self._device_buffers = [None] * len(self._device_buffers)
        self._pinned = [None] * len(self._pinned)
        for event in (self._started, self._executed, self._copied):
            event.close()
        self._stream.close()
