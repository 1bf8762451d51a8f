"""CUDA copy bandwidth: ``python -m benchmarks.cuda_memory``.

Host-to-device and device-to-host GB/s through :mod:`atriva_inference.cuda`, staging from
page-locked memory (:class:`~atriva_inference.cuda.PinnedBuffer`)
against ordinary pageable numpy arrays. Each figure is the median over ``--repeats`` copies of
the wall time of one ``copy_*`` call plus the stream synchronize after it (what a caller
waits), after one warm-up copy. A measurement, not a check: nothing here passes or fails.
Without an NVIDIA GPU (or cuda-python) it says so and exits with status 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from atriva_inference import cuda as cm
from atriva_inference.errors import InferenceRuntimeError

__all__ = ["main", "measure_bandwidth"]

MIB = 1 << 20


def _median_seconds(copy: Callable[[], None], stream: cm.Stream, repeats: int) -> float:
    copy()  # warm-up: first-touch costs (page faults, lazy mappings) are not bandwidth
    stream.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        copy()
        stream.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_bandwidth(nbytes: int, *, device: int = 0, repeats: int = 20) -> dict[str, float]:
    """GB/s (1e9 bytes a second) of ``nbytes`` copies to and from GPU ``device``, staged
    from pinned and from pageable host memory; also ``nbytes`` and ``repeats``."""
    stream = cm.Stream(device)
    target = cm.DeviceBuffer(nbytes, device)
    pinned = cm.PinnedBuffer(nbytes)
    try:
        pinned_host = pinned.array(np.uint8, (nbytes,))
        pinned_host[...] = 1  # touch every page before timing
        pageable_host = np.ones(nbytes, np.uint8)
        seconds = {
            "h2d_pinned": lambda: cm.copy_to_device(target.ptr, pinned_host, stream),
            "h2d_pageable": lambda: cm.copy_to_device(target.ptr, pageable_host, stream),
            "d2h_pinned": lambda: cm.copy_to_host(pinned_host, target.ptr, stream),
            "d2h_pageable": lambda: cm.copy_to_host(pageable_host, target.ptr, stream),
        }
        result: dict[str, float] = {"nbytes": float(nbytes), "repeats": float(repeats)}
        for name, copy in seconds.items():
            result[f"{name}_gbps"] = nbytes / _median_seconds(copy, stream, repeats) / 1e9
        return result
    finally:
        stream.synchronize()
        pinned.close()
        target.close()
        stream.close()


def _no_gpu_reason(device: int) -> str | None:
    """Why GPU ``device`` cannot be measured here (no cuda-python, driver or GPU), or None."""
    try:
        cm.use_device(device)
    except InferenceRuntimeError as exc:
        return f"nothing to measure on GPU.{device}: {exc}"
    return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cuda_memory",
        description="Host<->GPU copy bandwidth, pinned vs pageable staging.",
    )
    parser.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        default=[1, 16, 256],
        metavar="MIB",
        help="copy sizes in MiB (default: 1 16 256)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed copies per figure")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (GPU.N)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reason = _no_gpu_reason(args.device)
    if reason is not None:
        print(f"benchmarks.cuda_memory: {reason}", file=sys.stderr)
        return 1
    props = cm.device_properties(args.device)
    print(
        f"GPU.{args.device}: {props.name} (compute {props.compute_capability[0]}."
        f"{props.compute_capability[1]}), median of {args.repeats} copies, GB/s"
    )
    header = f"{'size':>10}  {'H2D pinned':>11}  {'H2D pageable':>12}  "
    header += f"{'D2H pinned':>11}  {'D2H pageable':>12}"
    print(header)
    for mib in args.sizes:
        nbytes = max(1, int(mib * MIB))
        figures = measure_bandwidth(nbytes, device=args.device, repeats=args.repeats)
        print(
            f"{mib:>7g} MiB  {figures['h2d_pinned_gbps']:>11.2f}  "
            f"{figures['h2d_pageable_gbps']:>12.2f}  {figures['d2h_pinned_gbps']:>11.2f}  "
            f"{figures['d2h_pageable_gbps']:>12.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
