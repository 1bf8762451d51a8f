"""``atriva-infer``: inspect a model or run it once from the command line.

::

    atriva-infer info model.xml --device CPU
    atriva-infer run model.onnx --backend onnxruntime --input images=frame.npy --iterations 20
    atriva-infer run model.xml            # random inputs shaped from the model

Every error the runtime raises (and bad ``.npy`` files or arguments) prints one line,
``atriva-infer: error: <message>``, to stderr and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Sequence

import ml_dtypes
import numpy as np

from . import __version__
from .backends import BackendStatus, available_backends
from .dtypes import STRING, describe, kind_of
from .errors import BackendUnavailableError, InferenceRuntimeError, InvalidInputError
from .model import Model, infer_layout
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
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``atriva-infer`` argument parser (``info`` and ``run`` subcommands)."""
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
    return parser


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
    return runtime.load_model(args.model, args.device, precision=args.precision)


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
    except FileNotFoundError:
        raise OSError(f"{what}: file '{path}' does not exist") from None
    except IsADirectoryError:
        raise OSError(f"{what}: '{path}' is a directory, not a .npy file") from None
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


# -- entry point ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run ``atriva-infer`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command = _cmd_info if args.command == "info" else _cmd_run
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
