"""Model: the user's handle on a loaded model -- what it takes and gives, and the ways to run
it. The work is the execution engine's (:mod:`atriva_inference._engine`)."""

from __future__ import annotations

from collections.abc import Callable

from ._engine import Engine, Inputs, Outputs
from .errors import InvalidInputError
from .execution import AsyncQueue, AsyncRequest, Stream
from .precision import Quantization
from .profiling import Profile
from .shapes import ShapeCacheInfo
from .tensor import TensorInfo

__all__ = ["Model"]


class Model:
    """A model loaded on one device. Create it with ``InferenceRuntime.load_model``.

    ``run`` is thread-safe: each call borrows an execution request from an internal pool
    (created on demand, one per concurrent caller) so threads never wait on a global lock.
    Every new input signature (shape, and dtype/layout where a conversion is compiled into
    the graph) is prepared once and remembered in a bounded LRU (``shape_cache_info()``).
    """

    def __init__(self, engine: Engine, on_close: Callable[[Model], None] | None = None) -> None:
        self._engine = engine
        self._on_close = on_close

    # -- description -------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorInfo]:
        """The inputs the backend really takes, in order, with the layout each wants (from
        the model, the ``layout=`` hint at load, or guessed for 4-D image inputs). ONNX
        sequence and optional inputs (ONNX Runtime) say so: ``info.sequence``,
        ``info.optional`` (see ``docs/onnx-types.md``)."""
        return list(self._engine.inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        """The outputs in the order ``run`` returns them."""
        return list(self._engine.loaded.outputs)

    @property
    def device(self) -> str:
        """The device really used (``"CPU"``, ``"GPU.0"``, ...), never ``"AUTO"``."""
        return self._engine.loaded.device

    @property
    def precision(self) -> str:
        """The execution precision really used: ``"INT8"`` when INT8 kernels run (a
        quantized model; ``quantization`` says how many), else ``"FP32"``, ``"BF16"``,
        ``"FP16"``."""
        return self._engine.loaded.precision

    @property
    def quantization(self) -> Quantization | None:
        """How much of a quantized model really runs in INT8, and the precision of the rest
        (``str()`` reads "28 of 32 compute layers in INT8, the rest in FP32"); ``None`` for
        a float model. A quantized model whose executed graph could not say has
        ``known`` False and ``unknown`` saying why (``precision`` is then not "INT8", and
        loading it warned ``QuantizationWarning``)."""
        return self._engine.loaded.quantization

    @property
    def backend(self) -> str:
        return self._engine.backend

    @property
    def path(self) -> str:
        return self._engine.path

    @property
    def loaded_from_cache(self) -> bool:
        """True when ``cache_dir`` supplied the compiled model instead of a fresh compile."""
        return self._engine.loaded.loaded_from_cache

    @property
    def closed(self) -> bool:
        return self._engine.closed

    def __repr__(self) -> str:
        if self.closed:
            state = "closed"
        else:
            quantization = self.quantization
            extra = f": {quantization}" if quantization is not None else ""
            state = f"{self.device}, {self.precision}{extra}"
        return f"<Model {self.path!r} on {self.backend} ({state})>"

    def shape_cache_info(self) -> ShapeCacheInfo:
        """``(hits, misses, maxsize, currsize)``; a miss is the first run at a signature."""
        return self._engine.shape_cache_info()

    # -- execution -----------------------------------------------------------------------
    def run(self, inputs: Inputs) -> Outputs:
        """Run synchronously; returns ``{output name: Tensor}`` in model output order.

        The outputs belong to the caller: later runs never overwrite them. A sequence input
        takes a list of arrays and an optional one ``None`` (or nothing); a sequence output
        is a list of Tensors and an absent optional one ``None`` (``docs/onnx-types.md``).
        """
        engine = self._engine
        return engine.run(inputs, engine)

    def create_async_request(self) -> AsyncRequest:
        """A reusable request: ``start(inputs, callback=None)`` then ``wait()``."""
        self._check_open()
        return AsyncRequest(self._engine)

    def create_async_queue(self, depth: int | None = None) -> AsyncQueue:
        """A bounded queue of ``depth`` in-flight requests for pipelines, results in order.

        ``depth=None`` takes the backend's optimal number of requests (OpenVINO's
        ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` under its THROUGHPUT hint). The queue's
        throughput-tuned executable is compiled on first use; that compile is counted in
        ``get_profiling().compile_ms``.
        """
        self._check_open()
        if depth is not None and (
            not isinstance(depth, int) or isinstance(depth, bool) or depth < 1
        ):
            raise InvalidInputError(f"depth: expected a positive integer or None, got {depth!r}")
        engine = self._engine
        return AsyncQueue(engine, engine.new_requests(engine.base, depth, throughput=True))

    def create_stream(self) -> Stream:
        """A dedicated request for one producer (one camera), reused every frame."""
        self._check_open()
        return Stream(self._engine)

    # -- profiling -----------------------------------------------------------------------
    def get_profiling(self) -> Profile:
        """Aggregates since load (or the last reset), plus layers when ``profiling=True``;
        still readable after ``close()``."""
        return self._engine.profile()

    def reset_profiling(self) -> None:
        """Zero the counters and layer records (compile times, properties of the load and
        of each prepared signature, stay)."""
        self._engine.reset_profiling()

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the compiled model, its specialized forms and requests. Idempotent."""
        if self._engine.closed:
            return
        self._engine.close()
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> Model:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._engine.closed:
            raise self._engine.closed_error()
