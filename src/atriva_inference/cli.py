"""``atriva-infer``: inspect a model, run it once or benchmark it from the command line.

::

    atriva-infer info model.xml --device CPU
    atriva-infer run model.onnx --backend onnxruntime --input images=frame.npy --iterations 20
    atriva-infer run model.xml            # random inputs shaped from the model
    atriva-infer bench model.onnx --mode async --requests 4 --seconds 10 --json out.json
    atriva-infer bench model.onnx --compare            # every usable backend, side by side

Every error the runtime raises (and bad ``.npy`` files or arguments) prints one line,
``atriva-infer: error: <message>``, to stderr and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from . import __version__, bench
from ._layouts import infer_layout
from .backends import BackendStatus, available_backends
from .dtypes import STRING, describe, kind_of
from .errors import BackendUnavailableError, InferenceRuntimeError, InvalidInputError
from .model import Model
from .runtime import InferenceRuntime
from .tensor import TensorInfo

__all__ = ["DEFAULT_BACKENDS", "main", "make_random_inputs", "summarize"]

PROG = "atriva-infer"

#: Backends tried, in order, when ``--backend`` is not given: the first usable one wins.
DEFAULT_BACKENDS = ("openvino", "onnxruntime")

#: Size given to a dynamic (``?``) dimension other than the first when inputs are random.
DEFAULT_DYNAMIC_SIZE = 32

#: Random integers are drawn from ``[0, INT_HIGH)`` (narrowed for tiny types such as int4).
INT_HIGH = 10

_WORDS = ("alpha", "bravo", "camera", "delta", "edge", "frame", "video", "zulu")

_RANDOM_HELP = (
    "Random inputs (when no --input is given): a dynamic first dimension becomes 1 (batch of "
    "one), any other dynamic dimension becomes --dynamic-size (default "
    f"{DEFAULT_DYNAMIC_SIZE}); floats are uniform in [0, 1), integers uniform in "
    f"[0, {INT_HIGH}), bools are fair coin flips and strings are short random words. "
    "--seed makes them reproducible."
)


# -- argument parsing ----------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from exc
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``atriva-infer`` argument parser (``info``, ``run`` and ``bench`` subcommands)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model", metavar="MODEL", help="model file (.xml OpenVINO IR or .onnx)")
    common.add_argument(
        "--backend",
        metavar="NAME",
        help="openvino, onnxruntime or tensorrt (default: the first usable of "
        f"{', '.join(DEFAULT_BACKENDS)})",
    )
    common.add_argument(
        "--device",
        default="AUTO",
        help="AUTO (first present of GPU, NPU, CPU), CPU, GPU, GPU.1, NPU (default: AUTO); "
        "an absent device is an error, never a silent fallback",
    )
    common.add_argument(
        "--precision",
        metavar="FP32|BF16|FP16",
        help="execution precision (default: the model's own)",
    )
    common.add_argument(
        "--dynamic",
        action="store_true",
        help="free dims the model declares static but does not need (N, H, W of image "
        "inputs), e.g. for fully convolutional detectors exported at one size",
    )
    common.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache compiled models in DIR; a later load of the same model reuses them",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect or run a model with atriva-inference (OpenVINO, ONNX Runtime, "
        "TensorRT).",
        epilog="Errors print one line, 'atriva-infer: error: <message>', and exit with status 2.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "info",
        parents=[common],
        help="show the backends, then load MODEL and describe it",
        description="Show the backends available here, then load MODEL and print the device "
        "and precision really used, whether it came from the cache, and its inputs and outputs.",
    )

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run MODEL on .npy inputs (or random ones) and print output statistics",
        description="Load MODEL, run it on the given .npy inputs (random ones when none are "
        "given) and print, per output, its dtype, shape and min/max/mean, then the median "
        "latency.",
        epilog=_RANDOM_HELP,
    )
    run.add_argument(
        "--input",
        "-i",
        dest="inputs",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="an input as a .npy file; repeat for each input; a bare FILE.npy (no NAME=) "
        "is allowed for a model with one input; none given: random inputs (see below)",
    )
    run.add_argument(
        "--iterations",
        "-n",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N times and report the median latency (default: 1)",
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    run.add_argument(
        "--dynamic-size",
        type=_positive_int,
        default=DEFAULT_DYNAMIC_SIZE,
        metavar="N",
        help="size of dynamic dimensions other than the first in random inputs "
        f"(default: {DEFAULT_DYNAMIC_SIZE})",
    )
    _add_bench_parser(commands, common)
    return parser


def _add_bench_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "bench",
        parents=[common],
        conflict_handler="resolve",  # --backend and --precision take comma lists here
        help="measure throughput and latency of MODEL (like benchmark_app / trtexec)",
        description="Load MODEL, warm it up, then run it on random inputs for --seconds or "
        "--iterations and print the throughput, latency percentiles and the profile. With "
        "--compare (or several --backend / --precision values) run each configuration on the "
        "same inputs and print them side by side: speed ratio and max abs / rel difference of "
        "every output against the first one.",
        epilog="A progress bar is drawn on stderr when it is a terminal. " + _RANDOM_HELP,
    )
    sub.add_argument(
        "--backend",
        metavar="NAME[,NAME..]",
        help="openvino, onnxruntime or tensorrt; a comma list compares them (default: the "
        "first usable of " + ", ".join(DEFAULT_BACKENDS) + "; with --compare: every usable one)",
    )
    sub.add_argument(
        "--precision",
        metavar="P[,P..]",
        help="execution precision, FP32 (F32), BF16, FP16 (default: the model's own); a comma "
        "list such as f32,bf16 compares them",
    )
    sub.add_argument(
        "--mode",
        choices=bench.MODES,
        default="sync",
        help="sync: model.run; stream: one model.create_stream(); async: the async queue "
        "(model.create_async_queue, its THROUGHPUT executable) with --requests frames in "
        "flight (default: sync)",
    )
    length = sub.add_mutually_exclusive_group()
    length.add_argument(
        "--seconds",
        "-t",
        type=_positive_float,
        metavar="S",
        help=f"measure for S seconds (default: {bench.DEFAULT_SECONDS:g})",
    )
    length.add_argument(
        "--iterations", "-n", type=_positive_int, metavar="N", help="measure exactly N iterations"
    )
    sub.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=bench.DEFAULT_WARMUP,
        metavar="N",
        help=f"iterations run first and not counted (default: {bench.DEFAULT_WARMUP})",
    )
    sub.add_argument(
        "--requests",
        type=_positive_int,
        default=bench.DEFAULT_REQUESTS,
        metavar="N",
        help="frames in flight with --mode async (default: the backend's optimal number)",
    )
    sub.add_argument(
        "--shape",
        dest="shapes",
        action="append",
        default=[],
        metavar="NAME=AxBxC",
        help="concrete shape of a dynamic input, e.g. images=1x3x480x640; repeat per input; "
        "a bare AxBxC for a one-input model",
    )
    sub.add_argument(
        "--profile", action="store_true", help="load with per-layer profiling (slower runs)"
    )
    sub.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace to FILE")
    sub.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    sub.add_argument(
        "--compare",
        action="store_true",
        help="run on every usable backend (or each of --backend) and compare",
    )
    sub.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    sub.add_argument(
        "--dynamic-size",
        type=_positive_int,
        default=DEFAULT_DYNAMIC_SIZE,
        metavar="N",
        help="size of dynamic dimensions without --shape, other than the first "
        f"(default: {DEFAULT_DYNAMIC_SIZE})",
    )


# -- helpers -------------------------------------------------------------------------------
def _choose_backend(requested: str | None, known: Sequence[BackendStatus] | None = None) -> str:
    """``requested`` as given, or the first usable of :data:`DEFAULT_BACKENDS`."""
    if requested is not None:
        return requested
    statuses = {status.name: status for status in known or available_backends()}
    for name in DEFAULT_BACKENDS:
        status = statuses.get(name)
        if status is not None and status.usable:
            return name
    reasons = "; ".join(
        f"{name}: {statuses[name].reason}" for name in DEFAULT_BACKENDS if name in statuses
    )
    raise BackendUnavailableError(f"no usable backend ({reasons})")


def _load(runtime: InferenceRuntime, args: argparse.Namespace) -> Model:
    return runtime.load_model(
        args.model, args.device, precision=args.precision, dynamic=args.dynamic
    )


def _shape_text(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "[...]"
    return "[" + ",".join("?" if dim is None else str(dim) for dim in shape) + "]"


def _port_line(info: TensorInfo, guess_layout: bool) -> str:
    layout = info.layout
    if layout is None and guess_layout:
        guessed = infer_layout(info)
        layout = f"{guessed} (guessed)" if guessed else None
    return (
        f"  {info.name}  dtype={describe(info.dtype)}  shape={_shape_text(info.shape)}  "
        f"layout={layout or '?'}"
    )


def make_random_inputs(
    infos: Sequence[TensorInfo], *, seed: int = 0, dynamic_size: int = DEFAULT_DYNAMIC_SIZE
) -> dict[str, np.ndarray]:
    """Random data for each input, shaped and typed as the model takes it.

    A dynamic first dimension becomes 1, any other dynamic dimension ``dynamic_size``.
    Floats are uniform in [0, 1), integers uniform in [0, :data:`INT_HIGH`), bools fair
    coin flips, strings short random words.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for info in infos:
        if info.shape is None:
            raise InvalidInputError(
                f"input '{info.name}' has an unknown rank, so no random data can be shaped "
                f"for it; pass --input {info.name}=FILE.npy"
            )
        shape = tuple(
            (1 if axis == 0 else dynamic_size) if dim is None else dim
            for axis, dim in enumerate(info.shape)
        )
        arrays[info.name] = _random_array(rng, info, shape)
    return arrays


def _random_array(rng: np.random.Generator, info: TensorInfo, shape: tuple[int, ...]) -> np.ndarray:
    dtype = info.dtype
    kind = kind_of(dtype)
    if kind == "f":
        return rng.random(shape).astype(dtype)
    if kind in "iu":
        high = min(INT_HIGH, int(ml_dtypes.iinfo(dtype).max) + 1)
        return rng.integers(0, high, size=shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind == "c":
        return (rng.random(shape) + 1j * rng.random(shape)).astype(dtype)
    if kind == "T":
        return np.asarray(rng.choice(_WORDS, size=shape), dtype=STRING)
    raise InvalidInputError(
        f"input '{info.name}': cannot generate random {describe(dtype)} data; "
        f"pass --input {info.name}=FILE.npy"
    )


def _read_npy(path: str, what: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise OSError(f"{what}: file '{path}' does not exist") from exc
    except IsADirectoryError as exc:
        raise OSError(f"{what}: '{path}' is a directory, not a .npy file") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{what}: cannot read '{path}' as a .npy file ({exc})") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise ValueError(f"{what}: '{path}' is an .npz archive; save one array with np.save")
    return array


def _read_inputs(specs: Sequence[str], infos: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
    """``NAME=FILE.npy`` (or a bare ``FILE.npy`` for a one-input model) -> arrays."""
    names = [info.name for info in infos]
    listing = ", ".join(f"'{name}'" for name in names) or "none"
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or (name not in names and os.path.isfile(spec)):
            if len(names) != 1:
                raise InvalidInputError(
                    f"--input {spec}: the model has {len(names)} inputs ({listing}); "
                    f"use NAME=FILE.npy"
                )
            name, path = names[0], spec
        elif name not in names:
            raise InvalidInputError(
                f"--input {spec}: the model has no input '{name}'; its inputs: {listing}"
            )
        if not path:
            raise InvalidInputError(f"--input {spec}: expected NAME=FILE.npy, the file is missing")
        if name in arrays:
            raise InvalidInputError(f"--input {spec}: input '{name}' is given more than once")
        arrays[name] = _read_npy(path, f"input '{name}'")
    return arrays


def _is_text(array: np.ndarray) -> bool:
    """Strings, including the object arrays of ``str`` some backends return."""
    if array.dtype.kind == "O":
        return all(isinstance(item, (str, bytes)) for item in array.flat)
    return kind_of(array.dtype) == "T"


def _dtype_name(array: np.ndarray) -> str:
    return "string" if _is_text(array) else describe(array.dtype)


def summarize(array: np.ndarray) -> str:
    """``min=... max=... mean=...`` for numbers and bools; sample values for strings."""
    kind = "T" if _is_text(array) else kind_of(array.dtype)
    if array.size == 0:
        return "(empty)"
    if kind in "biuf":
        values = array.astype(np.float64)
        text = f"min={values.min():.6g}  max={values.max():.6g}  mean={values.mean():.6g}"
        bad = int(np.count_nonzero(~np.isfinite(values)))
        return text + (f"  non-finite={bad}" if bad else "")
    if kind == "c":
        magnitude = np.abs(array.astype(np.complex128))
        return f"|min|={magnitude.min():.6g}  |max|={magnitude.max():.6g}"
    if kind == "T":
        sample = ", ".join(
            repr(item.decode(errors="replace") if isinstance(item, bytes) else str(item))
            for item in array.flat[:3]
        )
        return f"values={sample}{', ...' if array.size > 3 else ''}"
    return ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


# -- commands ------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    statuses = available_backends()
    print("backends:")
    for status in statuses:
        devices = ", ".join(status.devices) or "-"
        state = "usable" if status.usable else "unusable"
        print(f"  {status.name:<12} {state:<9} devices={devices:<12} {status.reason}")
    backend = _choose_backend(args.backend, statuses)
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = _load(runtime, args)
        cache = "yes" if model.loaded_from_cache else "no"
        if args.cache_dir is None:
            cache += " (no --cache-dir)"
        print(f"model:      {model.path}")
        print(f"backend:    {model.backend}")
        print(f"device:     {model.device}")
        print(f"precision:  {model.precision}")
        print(f"from cache: {cache}")
        print(f"load time:  {model.get_profiling().compile_ms:.1f} ms")
        print("inputs:")
        for info in model.inputs:
            print(_port_line(info, guess_layout=True))
        print("outputs:")
        for info in model.outputs:
            print(_port_line(info, guess_layout=False))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    backend = _choose_backend(args.backend)
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = _load(runtime, args)
        print(
            f"model: {model.path}  backend={model.backend}  device={model.device}  "
            f"precision={model.precision}"
        )
        if args.inputs:
            inputs = _read_inputs(args.inputs, model.inputs)
            source = "from file"
        else:
            inputs = make_random_inputs(
                model.inputs, seed=args.seed, dynamic_size=args.dynamic_size
            )
            source = f"random (seed {args.seed})"
        print("inputs:")
        for name, array in inputs.items():
            print(
                f"  {name}  dtype={_dtype_name(array)}  shape={_shape_text(array.shape)}  {source}"
            )
        latencies = []
        outputs = {}
        for _ in range(args.iterations):
            started = time.perf_counter()
            outputs = model.run(inputs)
            latencies.append((time.perf_counter() - started) * 1e3)
        print("outputs:")
        for name, tensor in outputs.items():
            array = tensor.to_numpy()
            print(
                f"  {name}  dtype={_dtype_name(array)}  shape={_shape_text(array.shape)}  "
                f"{summarize(array)}".rstrip()
            )
        runs = f"{args.iterations} iteration{'s' if args.iterations != 1 else ''}"
        print(f"latency: median {statistics.median(latencies):.3f} ms over {runs}")
    return 0


class _ProgressBar:
    """A transient ``rich`` progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, seconds: float | None, iterations: int | None) -> None:
        self._seconds = seconds
        self._iterations = iterations
        self._progress: Any = None

    def __enter__(self) -> _ProgressBar:
        if not sys.stderr.isatty():
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        count = MofNCompleteColumn() if self._iterations is not None else TaskProgressColumn()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            count,
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            auto_refresh=False,  # no refresh thread competing with the measured loop
        )
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def task(self, label: str) -> bench.ProgressFn | None:
        """A callback for :func:`bench.measure` that advances a new bar named ``label``."""
        progress = self._progress
        if progress is None:
            return None
        by_count = self._iterations is not None
        total = self._iterations if by_count else self._seconds
        task_id = progress.add_task(label, total=total)
        progress.refresh()

        def update(done: int, elapsed: float) -> None:
            completed = done if by_count else min(elapsed, total or elapsed)
            progress.update(task_id, completed=completed, refresh=True)

        return update


def _split_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InvalidInputError(f"{what}: expected a name or a comma list, got {text!r}")
    return list(dict.fromkeys(items))  # keep order, drop repeats


def _check_writable(path: str | None, option: str) -> None:
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise OSError(f"{option} {path}: the folder '{Path(path).parent}' does not exist")


def _inputs_line(inputs: dict[str, np.ndarray], seed: int) -> str:
    parts = [f"{name} {_dtype_name(a)}{_shape_text(a.shape)}" for name, a in inputs.items()]
    return f"{', '.join(parts) or '(none)'} (random, seed {seed})"


def _latency_line(result: bench.BenchResult) -> str:
    lat = result.latency_ms()
    text = "  ".join(f"{key} {lat[key]:.3f}" for key in ("median", "p90", "p99", "min", "max"))
    return text + ("  (per request, start -> wait)" if result.mode == "async" else "")


def _mode_text(result: bench.BenchResult) -> str:
    if result.mode == "async":
        return f"async, {result.requests} request{'s' if result.requests != 1 else ''}"
    return result.mode


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")


def _cmd_bench(args: argparse.Namespace) -> int:
    precisions: list[str | None] = (
        [None] if args.precision is None else list(_split_list(args.precision, "--precision"))
    )
    if args.backend is not None:
        backends = _split_list(args.backend, "--backend")
    elif args.compare:
        statuses = available_backends()
        backends = [status.name for status in statuses if status.usable]
        if not backends:
            reasons = "; ".join(f"{status.name}: {status.reason}" for status in statuses)
            raise BackendUnavailableError(f"--compare: no usable backend ({reasons})")
    else:
        backends = [_choose_backend(None)]
    comparing = args.compare or len(backends) > 1 or len(precisions) > 1
    _check_writable(args.json, "--json")
    _check_writable(args.trace, "--trace")
    if args.trace is not None and comparing:
        raise InvalidInputError(
            "--trace records one configuration: drop --compare and the comma lists"
        )
    seconds = args.seconds
    if seconds is None and args.iterations is None:
        seconds = bench.DEFAULT_SECONDS
    used: dict[str, np.ndarray] = {}

    def make_inputs(infos: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
        infos = bench.parse_shapes(args.shapes, infos)
        used.update(make_random_inputs(infos, seed=args.seed, dynamic_size=args.dynamic_size))
        return used

    options: dict[str, Any] = {
        "seconds": seconds,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "requests": args.requests,
    }
    if comparing:
        configs = [bench.Config(b, p) for b in backends for p in precisions]
        return _bench_compare(args, configs, make_inputs, options, used)
    return _bench_one(args, backends[0], precisions[0], make_inputs, options)


def _bench_one(
    args: argparse.Namespace,
    backend: str,
    precision: str | None,
    make_inputs: Callable[[Sequence[TensorInfo]], dict[str, np.ndarray]],
    options: dict[str, Any],
) -> int:
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = runtime.load_model(
            args.model,
            args.device,
            precision=precision,
            profiling=args.profile,
            dynamic=args.dynamic,
        )
        inputs = make_inputs(model.inputs)
        print(f"model:       {model.path}")
        print(f"backend:     {model.backend}")
        print(f"device:      {model.device}")
        print(f"precision:   {model.precision}")
        print(f"inputs:      {_inputs_line(inputs, args.seed)}")
        sys.stdout.flush()
        with _ProgressBar(options["seconds"], options["iterations"]) as bar:
            result = bench.measure(
                model, inputs, args.mode, progress=bar.task(f"{backend} {args.mode}"), **options
            )
        print(f"mode:        {_mode_text(result)}")
        print(f"warm-up:     {result.warmup} iterations (not counted)")
        print(f"iterations:  {result.iterations}")
        print(f"wall time:   {result.seconds:.3f} s")
        print(f"throughput:  {result.throughput_fps:.1f} fps")
        print(f"latency ms:  {_latency_line(result)}")
        profile = model.get_profiling()
        print()
        print(profile)
        if args.trace is not None:
            profile.to_chrome_trace(args.trace)
            print(f"trace:       {args.trace}")
        if args.json is not None:
            data = {
                "model": model.path,
                "backend": model.backend,
                "device": model.device,
                "precision": model.precision,
                **result.to_dict(),
                "inputs": {name: list(a.shape) for name, a in inputs.items()},
                "profile": profile.to_dict(),
            }
            _write_json(args.json, data)
            print(f"json:        {args.json}")
    return 0


def _diff_text(pair: tuple[float, float] | None) -> str:
    if pair is None:
        return f"{'-':>12} {'-':>12}"
    return f"{pair[0]:>12.3g} {pair[1]:>12.3g}"


def _bench_compare(
    args: argparse.Namespace,
    configs: list[bench.Config],
    make_inputs: Callable[[Sequence[TensorInfo]], dict[str, np.ndarray]],
    options: dict[str, Any],
    used: dict[str, np.ndarray],
) -> int:
    with _ProgressBar(options["seconds"], options["iterations"]) as bar:
        rows = bench.compare(
            args.model,
            configs,
            make_inputs,
            device=args.device,
            mode=args.mode,
            profiling=args.profile,
            dynamic=args.dynamic,
            cache_dir=args.cache_dir,
            progress=lambda config: bar.task(config.label),
            **options,
        )
    measured = [row for row in rows if row.result is not None]
    first = measured[0] if measured else None
    print(f"model:   {args.model}")
    print(f"inputs:  {_inputs_line(used, args.seed) if used else '-'}")
    if first is not None and first.result is not None:
        print(f"mode:    {_mode_text(first.result)}, warm-up {first.result.warmup} iterations")
    header = (
        f"{'backend':<12} {'device':<7} {'precision':<9} {'median ms':>10} {'p90 ms':>9} "
        f"{'fps':>10} {'speed':>7} {'max abs diff':>12} {'max rel diff':>12}"
    )
    print(header)
    print("-" * len(header))
    skipped = []
    for row in rows:
        lead = f"{row.config.backend:<12} {row.device or '-':<7} "
        if row.result is None:
            asked = row.config.precision.upper() if row.config.precision else "-"
            if row.skipped:
                skipped.append(f"{row.config.backend}: {row.error}")
                print(f"{lead}{asked:<9} skipped (see below)")
            else:
                print(f"{lead}{asked:<9} error: {row.error}")
            continue
        lat = row.result.latency_ms()
        ratio = f"{row.speed_ratio:.2f}x" if row.speed_ratio is not None else "-"
        diff = (
            f"{'reference':>12} {'reference':>12}"
            if row.reference
            else _diff_text(row.max_difference())
        )
        print(
            f"{lead}{row.precision:<9} {lat['median']:>10.3f} {lat['p90']:>9.3f} "
            f"{row.result.throughput_fps:>10.1f} {ratio:>7} {diff}"
        )
        if len(row.differences) > 1 and not row.reference:
            for name, pair in row.differences.items():
                print(f"    output '{name}': max abs {pair[0]:.3g}  max rel {pair[1]:.3g}")
        for note in row.difference_notes:
            print(f"    {note}")
    if first is not None:
        print(
            "speed = fps / fps of the first row; diffs are vs the first row "
            f"({first.config.backend} {first.precision})"
        )
    for note in skipped:
        print(f"skipped {note}")
    if args.profile:
        for row in measured:
            print()
            print(row.profile)
    if args.json is not None:
        data: dict[str, Any] = {"model": args.model}
        if first is not None and first.result is not None:
            data.update(
                {
                    "backend": first.config.backend,
                    "device": first.device,
                    "precision": first.precision,
                    **first.result.to_dict(),
                    "inputs": {name: list(a.shape) for name, a in used.items()},
                    "profile": first.profile.to_dict(),
                }
            )
        data["compare"] = [row.to_dict() for row in rows]
        _write_json(args.json, data)
        print(f"json:    {args.json}")
    if first is None:
        raise InferenceRuntimeError("no configuration could be measured (see the table)")
    return 0


# -- entry point ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run ``atriva-infer`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command = {"info": _cmd_info, "run": _cmd_run, "bench": _cmd_bench}[args.command]
    try:
        return command(args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        with contextlib.suppress(OSError, ValueError):  # keep the final flush from failing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (InferenceRuntimeError, OSError, ValueError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, but say what it was
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
