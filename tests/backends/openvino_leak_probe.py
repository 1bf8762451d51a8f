"""Load/close cycles on OpenVINO in a process of their own; prints what they left behind.

``python -m tests.backends.openvino_leak_probe ZOO_DIR CYCLES`` prints one JSON object:
resident memory (MB, from /proc/self/status) and thread counts (Python threads and the
native threads of /proc/self/task) after a warm-up and after ``CYCLES`` more cycles. Each
cycle uses every way a model makes requests: run, a stream, an async request, a queue (its
own THROUGHPUT compile) and static-shape executables evicted from a small shape cache.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from atriva_inference import InferenceRuntime
from tests import zoo


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def thread_counts() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/task"))


def settled(baseline: tuple[int, int]) -> dict[str, float]:
    """Counts once threads that are on their way out have gone (bounded wait)."""
    gc.collect()
    deadline = time.monotonic() + 10
    counts = thread_counts()
    while time.monotonic() < deadline and (counts[0] > baseline[0] or counts[1] > baseline[1]):
        time.sleep(0.05)
        gc.collect()
        counts = thread_counts()
    return {"rss_mb": resident_mb(), "python_threads": counts[0], "native_threads": counts[1]}


def cycle(runtime: InferenceRuntime, conv: zoo.ZooModel, dynamic: zoo.ZooModel) -> None:
    rng = np.random.default_rng(0)
    frame = conv.make_inputs(rng)["input"]
    model = runtime.load_model(conv.ir_path, device="CPU")
    model.run(frame)
    model.create_stream().run(frame)
    request = model.create_async_request()
    request.start(frame)
    request.wait()
    queue = model.create_async_queue(depth=2)
    for _ in queue.map([frame] * 4):
        pass
    model.close()
    # Static shapes: every new shape compiles an executable; a cache of 2 evicts the rest.
    static = runtime.load_model(
        dynamic.ir_path, device="CPU", static_shapes=True, shape_cache_size=2
    )
    for height in (5, 6, 7, 8):
        static.run(np.zeros((1, 3, height, 4), np.float32))
    static.close()


def main(directory: Path, cycles: int) -> None:
    conv, dynamic = zoo.build_conv_net(directory), zoo.build_dynamic(directory)
    with InferenceRuntime("openvino") as runtime:
        for _ in range(3):  # the plugin's one-time allocations and thread pools
            cycle(runtime, conv, dynamic)
        gc.collect()
        before_threads = thread_counts()
        before = {
            "rss_mb": resident_mb(),
            "python_threads": before_threads[0],
            "native_threads": before_threads[1],
        }
        for _ in range(cycles):
            cycle(runtime, conv, dynamic)
        after = settled(before_threads)
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
