"""ONNX's backend node test suite through the public API, against the raw backend in the same run.

Each of onnx's ~1,900 node cases runs raw (``openvino.Core().compile_model`` /
``onnxruntime.InferenceSession``) and through ``InferenceRuntime(backend).load_model`` +
``model.run`` (see ``node_suite.py``, run as a worker process so that a crash or hang in a
backend fails these tests instead of killing the run). The runtime must lose none of the
raw backend's passes -- the cases with ONNX sequences and optionals included: on ONNX Runtime
they go in as lists of arrays and ``None`` and come out as lists of Tensors and ``None``
(``docs/onnx-types.md``); OpenVINO, which has no such types, refuses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.robustness.sandbox import describe_exit

pytestmark = pytest.mark.robustness

WORKER = Path(__file__).with_name("node_suite.py")

#: A worker that writes nothing for this long is hung on one case.
SILENCE_S = 120.0
#: Restarts after a crash or hang before giving up: a backend that crashes on more cases
#: than this is broken, not flaky.
MAX_RESTARTS = 10


@pytest.fixture(scope="module")
def node_results(tmp_path_factory):
    """``{backend: {case: {"raw": record, "ours": record}}}`` for every usable backend."""
    directory = tmp_path_factory.mktemp("node_suite")
    results = directory / "results.jsonl"
    for _ in range(MAX_RESTARTS + 1):
        if _run_worker(results, directory / "models"):
            break
    else:
        pytest.fail(f"the node suite worker crashed or hung {MAX_RESTARTS + 1} times")
    table: dict[str, dict[str, dict[str, dict]]] = {backend: {} for backend in BACKENDS}
    for line in results.read_text().splitlines():
        record = json.loads(line)
        if "event" not in record:
            table[record["backend"]].setdefault(record["case"], {})[record["side"]] = record
    return table


def _run_worker(results: Path, models: Path) -> bool:
    """Run the worker until it ends; True when it finished every case. A crash or a hang
    is written down against the step it was running, so the next run skips it."""
    command = [sys.executable, str(WORKER), str(results), str(models), *BACKENDS]
    log = results.with_name("worker-stderr.txt")
    with (
        log.open("ab") as stderr,
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr) as worker,
    ):
        last_size, last_change = -1, time.monotonic()
        while worker.poll() is None:
            size = results.stat().st_size if results.exists() else 0
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            elif time.monotonic() - last_change > SILENCE_S:
                worker.kill()
                worker.wait()
                _record_unfinished(results, f"hung: silent for {SILENCE_S:g} s")
                return False
            time.sleep(0.5)
    if worker.returncode == 0:
        return True
    if not _record_unfinished(results, f"crashed: {describe_exit(worker.returncode)}"):
        tail = log.read_bytes()[-3000:].decode(errors="replace")
        pytest.fail(f"the node suite worker failed before any case:\n{tail}")
    return False


def _record_unfinished(results: Path, why: str) -> bool:
    """Give the step that began and never finished a failing result; False if none."""
    if not results.exists():
        return False
    lines = results.read_text().splitlines()
    if not lines:
        return False
    last = json.loads(lines[-1])
    if "event" not in last:
        return False
    with results.open("a") as log:
        del last["event"]
        log.write(json.dumps({**last, "error": why, "runtime_error": False}) + "\n")
    return True


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_suite_loses_none_of_the_raw_backends_passes(node_results, backend):
    cases = node_results[backend]
    assert len(cases) > 1000, "onnx's node cases were not all built"
    lost = sorted(
        f"{name}: {sides['ours']['error'][:240]}"
        for name, sides in cases.items()
        if sides["raw"]["error"] is None and sides["ours"]["error"] is not None
    )
    raw_passes = sum(sides["raw"]["error"] is None for sides in cases.values())
    assert not lost, (
        f"{backend}: the runtime fails {len(lost)} of the {raw_passes} node cases the raw "
        f"backend passes:\n" + "\n".join(lost)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_suite_failures_are_the_runtimes_own_errors(node_results, backend):
    """Where the runtime cannot run a case, it says so with one of its own errors, never a
    TypeError, a crash or a hang. (A wrong answer is an AssertionError from the comparison:
    that is the backend's, checked against raw above.)"""
    foreign = sorted(
        f"{name}: {sides['ours']['error'][:240]}"
        for name, sides in node_results[backend].items()
        if sides["ours"]["error"] is not None
        and not sides["ours"]["runtime_error"]
        and not sides["ours"]["error"].startswith("AssertionError")
    )
    assert not foreign, f"{backend}: {len(foreign)} failures that are not the runtime's:\n" + (
        "\n".join(foreign)
    )
