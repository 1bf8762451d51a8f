"""What the robustness test bodies share inside a sandbox worker: models, paths, checks."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from atriva_inference import InferenceRuntime, Model
from tests import zoo
from tests.robustness import sandbox

#: Float outputs of the zoo models against their float64 references.
ATOL = 1e-4
RTOL = 1e-5

#: Every way a frame reaches a model.
PATHS = ("run", "stream", "async", "queue", "map")

#: How long any single wait may take before it counts as a hang.
WAIT_S = 30.0


def workdir(name: str) -> Path:
    """A fresh directory under the worker's scratch directory."""
    assert sandbox.WORKDIR is not None, "runs inside a sandbox worker only"
    base = sandbox.WORKDIR / "scratch"
    base.mkdir(parents=True, exist_ok=True)
    index = len(os.listdir(base))
    path = base / f"{index}-{name}"
    path.mkdir()
    return path


@functools.cache
def zoo_model(name: str) -> zoo.ZooModel:
    """A zoo model, built once per worker."""
    return getattr(zoo, f"build_{name}")(workdir(f"zoo-{name}"))


@functools.cache
def runtime(backend: str) -> InferenceRuntime:
    """The worker's shared runtime of ``backend`` (tests that close runtimes make their own)."""
    return InferenceRuntime(backend)


@functools.cache
def loaded(backend: str, name: str) -> Model:
    """A zoo model loaded once per worker and kept open (tests that close models load their
    own)."""
    return runtime(backend).load_model(zoo_model(name).path_for(backend), device="CPU")


def run_via(model: Model, how: str, inputs: Any) -> dict[str, np.ndarray]:
    """Run ``inputs`` through one of :data:`PATHS`; the outputs as arrays of their own."""
    if how == "run":
        outputs = model.run(inputs)
    elif how == "stream":
        with model.create_stream() as stream:
            outputs = stream.run(inputs)
            return {name: tensor.to_numpy(copy=True) for name, tensor in outputs.items()}
    elif how == "async":
        request = model.create_async_request()
        request.start(inputs)
        outputs = request.wait(timeout=WAIT_S)
    elif how == "queue":
        with model.create_async_queue(depth=2) as queue:
            outputs = queue.submit(inputs).wait(timeout=WAIT_S)
    elif how == "map":
        with model.create_async_queue(depth=2) as queue:
            (outputs,) = list(queue.map([inputs]))
    else:
        raise AssertionError(f"unknown path {how!r}")
    return {name: tensor.to_numpy() for name, tensor in outputs.items()}


def assert_answers(outputs: Mapping[str, Any], expected: Mapping[str, np.ndarray]) -> None:
    assert list(outputs) == list(expected)
    for name, want in expected.items():
        got = np.asarray(outputs[name])
        assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)


def assert_still_works(model: Model, name: str, how: str = "run") -> None:
    """The model answers a valid request correctly (after an error, a race, ...)."""
    zoo_entry = zoo_model(name)
    feed = zoo_entry.make_inputs(np.random.default_rng(5))
    assert_answers(run_via(model, how, feed), zoo_entry.reference(feed))


def process_stats() -> dict[str, int]:
    """Resident memory (KiB), threads and open file descriptors of this process."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                fields[key] = int(value.split()[0])
    return {
        "rss_kib": fields["VmRSS"],
        "threads": fields["Threads"],
        "fds": len(os.listdir("/proc/self/fd")),
    }


def run_threads(
    targets: list[Callable[[], Any]], *, timeout: float = WAIT_S
) -> list[tuple[str, BaseException | None]]:
    """Run each target in a thread; ``(name, exception or None)`` per target. A thread still
    running after ``timeout`` is a hang: raised as an AssertionError naming it."""
    outcomes: list[BaseException | None] = [None] * len(targets)

    def wrap(index: int, target: Callable[[], Any]) -> None:
        try:
            target()
        except BaseException as exc:
            outcomes[index] = exc

    threads = [
        threading.Thread(target=wrap, args=(i, t), name=f"robustness-{i}", daemon=True)
        for i, t in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert not hung, f"threads still running after {timeout:g} s (a hang): {hung}"
    return [(thread.name, outcome) for thread, outcome in zip(threads, outcomes)]


@functools.cache
def negated(name: str) -> zoo.ZooModel:
    """The zoo model with its (float) outputs negated: the same inputs and outputs, other
    answers. Stands for "a new version of the model" written over the old one."""
    import onnx
    from onnx import helper

    original = zoo_model(name)
    proto = onnx.load(str(original.onnx_path))
    graph = proto.graph
    for output in graph.output:
        for node in graph.node:
            node.output[:] = [
                f"{out}_before_neg" if out == output.name else out for out in node.output
            ]
        graph.node.append(helper.make_node("Neg", [f"{output.name}_before_neg"], [output.name]))
    onnx_path, ir_path = zoo.save(proto, workdir(f"negated-{name}"), name)

    def reference(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: -value for key, value in original.reference(feed).items()}

    return zoo.ZooModel(name, onnx_path, ir_path, original.make_inputs, reference)


def install(source: zoo.ZooModel, directory: Path, fmt: str) -> Path:
    """Copy ``source``'s ``fmt`` ("onnx" or "ir") file(s) to ``directory/model.*``."""
    if fmt == "onnx":
        target = directory / "model.onnx"
        shutil.copyfile(source.onnx_path, target)
        return target
    assert source.ir_path is not None
    target = directory / "model.xml"
    shutil.copyfile(source.ir_path, target)
    shutil.copyfile(source.ir_path.with_suffix(".bin"), target.with_suffix(".bin"))
    return target


def overwrite(path: Path, source: zoo.ZooModel, mode: str) -> None:
    """Put ``source`` where ``path`` is: ``"in_place"`` rewrites the same files (``cp``),
    ``"rename"`` writes new files and renames them over the old ones (an atomic deploy)."""
    pairs = [(source.onnx_path, path)]
    if path.suffix == ".xml":
        assert source.ir_path is not None
        pairs = [
            (source.ir_path, path),
            (source.ir_path.with_suffix(".bin"), path.with_suffix(".bin")),
        ]
    for new, old in pairs:
        if mode == "in_place":
            with open(old, "r+b") as target:
                target.truncate(0)
                target.write(new.read_bytes())
        else:
            temporary = old.with_name(old.name + ".new")
            shutil.copyfile(new, temporary)
            os.replace(temporary, old)
