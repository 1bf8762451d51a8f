"""The commands of ``atriva-infer`` (``info``, ``run``, ``bench``) and :func:`main`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .._layouts import infer_layout
from ..backends import available_backends, choose_backend
from ..errors import BackendUnavailableError, InferenceRuntimeError, InvalidInputError
from ..model import Model
from ..profiling import CallTimes
from ..runtime import InferenceRuntime
from ..tensor import Tensor, TensorInfo, format_signature
from . import bench
from . import pipeline as pipeline_command
from . import quantize as quantize_command
from . import serve as serve_command
from .inputs import make_random_inputs, parse_shapes, read_feeds, read_inputs
from .options import (
    EXIT_BROKEN_PIPE,
    EXIT_BUG,
    EXIT_ERROR,
    PROG,
    TerminalProgress,
    check_writable,
    preparation,
    write_json,
)
from .parser import build_parser
from .text import array_dtype, one_line, port_fields, summarize

__all__ = ["main"]


# -- helpers -------------------------------------------------------------------------------
def _load(runtime: InferenceRuntime, args: argparse.Namespace) -> Model:
    return runtime.load_model(
        args.model, args.device, precision=args.precision, dynamic=args.dynamic
    )


def _port_line(info: TensorInfo, guess_layout: bool) -> str:
    layout = info.layout
    if layout is None and guess_layout:
        guessed = infer_layout(info)
        layout = f"{guessed} (guessed)" if guessed else None
    return f"  {info.name}  {port_fields(info.dtype, info.shape)}  layout={layout or '?'}"


# -- commands ------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    statuses = available_backends()
    print("backends:")
    for status in statuses:
        devices = ", ".join(status.devices) or "-"
        state = "usable" if status.usable else "unusable"
        print(f"  {status.name:<12} {state:<9} devices={devices:<12} {status.reason}")
    backend = choose_backend(args.backend, statuses)
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = _load(runtime, args)
        cache = "yes" if model.loaded_from_cache else "no"
        if args.cache_dir is None:
            cache += " (no --cache-dir)"
        print(f"model:      {model.path}")
        print(f"backend:    {model.backend}")
        print(f"device:     {model.device}")
        print(f"precision:  {model.precision}")
        print(f"quantization: {bench.quantization_text(model)}")
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
    backend = choose_backend(args.backend)
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = _load(runtime, args)
        print(
            f"model: {model.path}  backend={model.backend}  device={model.device}  "
            f"precision={model.precision}"
        )
        if args.inputs:
            inputs = read_inputs(args.inputs, model.inputs)
            source = "from file"
        else:
            inputs = make_random_inputs(
                model.inputs, seed=args.seed, dynamic_size=args.dynamic_size
            )
            source = f"random (seed {args.seed})"
        print("inputs:")
        for name, array in inputs.items():
            print(f"  {name}  {port_fields(array_dtype(array), array.shape)}  {source}")
        outputs: dict[str, Tensor] = {}
        # dict.update: the last run's outputs are the ones printed
        times = CallTimes.measure(
            lambda: outputs.update(model.run(inputs)), iterations=args.iterations
        )
        print("outputs:")
        for name, tensor in outputs.items():
            array = tensor.to_numpy()
            fields = port_fields(array_dtype(array), array.shape)
            print(f"  {name}  {fields}  {summarize(array)}".rstrip())
        runs = f"{args.iterations} iteration{'s' if args.iterations != 1 else ''}"
        print(f"latency: median {times.median_ms:.3f} ms over {runs}")
    return 0


# -- bench ---------------------------------------------------------------------------------
class _ProgressBar(TerminalProgress):
    """A transient ``rich`` progress bar per measured model on stderr, only when stderr is a
    terminal."""

    options: ClassVar[dict[str, Any]] = {"auto_refresh": False}

    def __init__(self, seconds: float | None, iterations: int | None) -> None:
        super().__init__()
        self._seconds = seconds
        self._iterations = iterations

    def columns(self) -> list[Any]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        count = MofNCompleteColumn() if self._iterations is not None else TaskProgressColumn()
        return [TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn()]

    def task(self, label: str) -> bench.ProgressFn | None:
        """A callback for :func:`bench.measure` that advances a new bar named ``label``."""
        progress = self.progress
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


class _Inputs:
    """What ``bench`` feeds: random inputs shaped from the first loaded model, or ``--inputs``;
    made once (:meth:`make`, given the model's inputs) and described for the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self.feeds: list[dict[str, Any]] = []
        self.line = "-"

    def make(self, infos: Sequence[TensorInfo]) -> list[dict[str, Any]]:
        args = self._args
        if args.inputs is not None:
            self.feeds, described = read_feeds(args.inputs, infos, args.shapes)
        else:
            infos = parse_shapes(args.shapes, infos)
            random = make_random_inputs(infos, seed=args.seed, dynamic_size=args.dynamic_size)
            self.feeds, described = [random], f"random, seed {args.seed}"
        self.line = f"{_signatures(self.feeds[0]) or '(none)'} ({described})"
        return self.feeds

    def shapes(self) -> dict[str, list[int]]:
        """Each input's shape in the first feed (for the JSON)."""
        return {name: list(np.shape(_array(value))) for name, value in self.feeds[0].items()}


def _array(value: Any) -> np.ndarray:
    return value.to_numpy() if isinstance(value, Tensor) else np.asarray(value)


def _signatures(feed: dict[str, Any]) -> str:
    arrays = {name: _array(value) for name, value in feed.items()}
    return ", ".join(
        f"{name} {format_signature(array_dtype(a), a.shape)}" for name, a in arrays.items()
    )


def _latency_line(result: bench.BenchResult) -> str:
    lat = result.latency_ms()
    text = "  ".join(f"{key} {lat[key]:.3f}" for key in ("median", "p90", "p99", "min", "max"))
    return text + ("  (per request, start -> wait)" if result.mode == "async" else "")


def _mode_text(result: bench.BenchResult) -> str:
    if result.mode == "async":
        return f"async, {result.requests} request{'s' if result.requests != 1 else ''}"
    return result.mode


def _cmd_bench(args: argparse.Namespace) -> int:
    precisions: list[str | None] = (
        [None] if args.precision is None else _split_list(args.precision, "--precision")
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
        backends = [choose_backend(None)]
    comparing = args.compare or len(backends) > 1 or len(precisions) > 1
    check_writable(args.json, "--json")
    check_writable(args.trace, "--trace")
    if args.trace is not None and (comparing or args.against is not None):
        raise InvalidInputError(
            "--trace records one configuration: drop --compare, --against and the comma lists"
        )
    if args.against is not None and comparing:
        raise InvalidInputError(
            "--against compares two files under one configuration: drop --compare and the "
            "comma lists of --backend/--precision"
        )
    if args.metric is not None and args.against is None:
        raise InvalidInputError(f"--metric {args.metric}: expected --against OTHER_MODEL too")
    seconds = args.seconds
    if seconds is None and args.iterations is None:
        seconds = bench.DEFAULT_SECONDS
    inputs = _Inputs(args)
    options: dict[str, Any] = {
        "seconds": seconds,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "requests": args.requests,
    }
    if args.against is not None:
        return _bench_against(args, backends[0], precisions[0], inputs, options)
    if comparing:
        configs = [bench.Config(b, p) for b in backends for p in precisions]
        return _bench_compare(args, configs, inputs, options)
    return _bench_one(args, backends[0], precisions[0], inputs, options)


def _bench_one(
    args: argparse.Namespace,
    backend: str,
    precision: str | None,
    inputs: _Inputs,
    options: dict[str, Any],
) -> int:
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        model = runtime.load_model(
            args.model,
            args.device,
            precision=precision,
            profiling=args.profile,
            dynamic=args.dynamic,
            **preparation(args),
        )
        feeds = inputs.make(model.inputs)
        print(f"model:       {model.path}")
        print(f"backend:     {model.backend}")
        print(f"device:      {model.device}")
        print(f"precision:   {model.precision}")
        print(f"quantization: {bench.quantization_text(model)}")
        print(f"inputs:      {inputs.line}")
        sys.stdout.flush()
        with _ProgressBar(options["seconds"], options["iterations"]) as bar:
            result = bench.measure(
                model, feeds, args.mode, progress=bar.task(f"{backend} {args.mode}"), **options
            )
        print(f"mode:        {_mode_text(result)}")
        print(f"warm-up:     {result.warmup} iterations (not counted)")
        print(f"iterations:  {result.iterations}")
        print(f"wall time:   {result.seconds:.3f} s")
        print(f"throughput:  {result.throughput_fps:.1f} fps")
        print(f"latency ms:  {_latency_line(result)}")
        profile = result.profile or model.get_profiling()
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
                "quantization": bench.quantization_text(model, none="") or None,
                **result.to_dict(),
                "inputs": inputs.shapes(),
                "inputs_source": inputs.line,
                "profile": profile.to_dict(),
            }
            write_json(args.json, data)
            print(f"json:        {args.json}")
    return 0


def _diff_text(pair: tuple[float, float] | None) -> str:
    if pair is None:
        return f"{'-':>12} {'-':>12}"
    return f"{pair[0]:>12.3g} {pair[1]:>12.3g}"


def _measured_cells(row: bench.CompareRow | bench.AgainstRow) -> str:
    """A measured row's cells: median and p90 ms, fps, speed, max abs and rel difference."""
    assert row.result is not None
    lat = row.result.latency_ms()
    ratio = f"{row.speed_ratio:.2f}x" if row.speed_ratio is not None else "-"
    diff = (
        f"{'reference':>12} {'reference':>12}"
        if row.reference
        else _diff_text(row.max_difference())
    )
    return (
        f"{lat['median']:>10.3f} {lat['p90']:>9.3f} {row.result.throughput_fps:>10.1f} "
        f"{ratio:>7} {diff}"
    )


def _print_differences(row: bench.CompareRow | bench.AgainstRow) -> None:
    """Under a row: each output's difference (when there are several), then the notes."""
    if len(row.differences) > 1 and not row.reference:
        for name, pair in row.differences.items():
            print(f"    output '{name}': max abs {pair[0]:.3g}  max rel {pair[1]:.3g}")
    for note in row.difference_notes:
        print(f"    {note}")


def _bench_compare(
    args: argparse.Namespace,
    configs: list[bench.Config],
    inputs: _Inputs,
    options: dict[str, Any],
) -> int:
    with _ProgressBar(options["seconds"], options["iterations"]) as bar:
        rows = bench.compare(
            args.model,
            configs,
            inputs.make,
            device=args.device,
            mode=args.mode,
            profiling=args.profile,
            dynamic=args.dynamic,
            cache_dir=args.cache_dir,
            progress=lambda config: bar.task(config.label),
            load_options=preparation(args),
            **options,
        )
    measured = [row for row in rows if row.result is not None]
    first = measured[0] if measured else None
    print(f"model:   {args.model}")
    print(f"inputs:  {inputs.line}")
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
        print(f"{lead}{row.precision:<9} {_measured_cells(row)}")
        if row.quantization is not None:
            print(f"    quantization: {row.quantization}")
        _print_differences(row)
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
                    "inputs": inputs.shapes(),
                    "inputs_source": inputs.line,
                    "profile": first.profile.to_dict(),
                }
            )
        data["compare"] = [row.to_dict() for row in rows]
        write_json(args.json, data)
        print(f"json:    {args.json}")
    if first is None:
        raise InferenceRuntimeError("no configuration could be measured (see the table)")
    return 0


def _bench_against(
    args: argparse.Namespace,
    backend: str,
    precision: str | None,
    inputs: _Inputs,
    options: dict[str, Any],
) -> int:
    paths = [args.model, args.against]
    with InferenceRuntime(backend, cache_dir=args.cache_dir) as runtime:
        models = [
            runtime.load_model(
                path,
                args.device,
                precision=precision,
                profiling=args.profile,
                dynamic=args.dynamic,
                **preparation(args),
            )
            for path in paths
        ]
        first, other = models
        feeds = inputs.make(first.inputs)
        wanted = [info.name for info in first.inputs]
        given = [info.name for info in other.inputs]
        if sorted(wanted) != sorted(given):
            raise InvalidInputError(
                f"--against {args.against}: expected a model with the inputs of MODEL "
                f"({', '.join(wanted)}), got one with {', '.join(given) or 'none'}"
            )
        for model in models:  # a feed one model refuses: say so before measuring
            model.run(feeds[0])
        print(f"backend: {first.backend}  device: {first.device}")
        print(f"inputs:  {inputs.line}")
        sys.stdout.flush()
        with _ProgressBar(options["seconds"], options["iterations"]) as bar:
            rows = bench.against(
                models,
                feeds,
                args.mode,
                metric=args.metric,
                progress=lambda index: bar.task(
                    f"{'MODEL' if index == 0 else 'OTHER'} {args.mode}"
                ),
                **options,
            )
        result = rows[0].result
        print(
            f"mode:    {_mode_text(result)}, warm-up {result.warmup} iterations, "
            f"{len(rows[0].round_fps)} interleaved rounds"
        )
        _print_against(rows, args.metric)
        if args.profile:
            for index, row in enumerate(rows):
                print()
                print(
                    f"{'MODEL' if index == 0 else 'OTHER'} profile: the {row.result.iterations} "
                    f"measured runs of its {len(row.round_fps)} rounds (not warm-up, not the "
                    "output comparison)"
                )
                print(row.result.profile)
        if args.json is not None:
            data: dict[str, Any] = {
                "model": args.model,
                "against": args.against,
                "backend": first.backend,
                "device": first.device,
                "inputs": inputs.shapes(),
                "inputs_source": inputs.line,
                "metric": args.metric,
                "models": [row.to_dict() for row in rows],
            }
            write_json(args.json, data)
            print(f"json:    {args.json}")
    return 0


def _print_against(rows: list[bench.AgainstRow], metric: str | None) -> None:
    for index, row in enumerate(rows):
        label = "MODEL" if index == 0 else "OTHER"
        print(f"{label}:   {row.path}")
        print(f"         precision {row.precision}, quantization: {row.quantization or '-'}")
    header = (
        f"{'model':<6} {'precision':<9} {'median ms':>10} {'p90 ms':>9} {'fps':>10} {'speed':>7} "
        f"{'max abs diff':>12} {'max rel diff':>12}" + (f" {metric:>8}" if metric else "")
    )
    print(header)
    print("-" * len(header))
    for index, row in enumerate(rows):
        value = row.metric.get("value")
        summary = (
            ""
            if not metric
            else f" {'-':>8}"
            if row.reference or value is None
            else f" {value:>8.4f}"
        )
        label = "MODEL" if index == 0 else "OTHER"
        print(f"{label:<6} {row.precision:<9} {_measured_cells(row)}{summary}")
        _print_differences(row)
        if "error" in row.metric:
            print(f"    {metric}: {row.metric['error']}")
        elif metric == "top1" and not row.reference:
            print(
                f"    top1: {row.metric['agree']} of {row.metric['samples']} samples agree on "
                f"output '{row.metric['output']}'"
            )
        elif metric == "cosine" and not row.reference:
            worst = ", ".join(f"'{k}' {v:.4f}" for k, v in row.metric["per_output"].items())
            print(f"    cosine (lowest over the inputs): {worst}")
    print(
        "speed = fps / MODEL's fps (median of per-round ratios); diffs: OTHER vs MODEL on the "
        "same inputs, the largest over them"
    )


# -- entry point ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run ``atriva-infer`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command = {
        "info": _cmd_info,
        "run": _cmd_run,
        "bench": _cmd_bench,
        "pipeline": pipeline_command.run,
        "serve": serve_command.run,
        "quantize": quantize_command.run,
    }[args.command]
    try:
        return command(args)
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        with contextlib.suppress(OSError, ValueError):  # keep the final flush from failing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (InferenceRuntimeError, OSError, ValueError) as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, but say what it was
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return EXIT_BUG
