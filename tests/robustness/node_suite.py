"""ONNX's backend node tests, run raw and through this runtime's public API (a worker script).

``python node_suite.py RESULTS WORKDIR BACKEND [BACKEND ...]`` builds onnx's node test cases
in memory (``load_model_tests(kind="node")``: onnx 1.23 ships no data files), writes each
model to ``WORKDIR`` and, per backend, runs it twice:

* raw: ``openvino.Core().compile_model`` / ``onnxruntime.InferenceSession`` on the file, fed
  and read by the model's own input and output names;
* ours: ``InferenceRuntime(backend).load_model(file)`` then ``model.run({name: array})``.

Outputs are compared with the expected ones by onnx's own check
(``Runner.assert_similar_outputs``, the case's rtol/atol). Each step appends a ``begin`` line
and then a result line (``error`` null on a pass) to ``RESULTS`` as JSON, flushed at once: a
crash or hang is found by the parent (a ``begin`` without its result), which restarts the
script; steps already in ``RESULTS`` are not run again.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: Raw OpenVINO is compiled as the runtime compiles by default (the model's own f32
#: precision, latency hint): like is compared with like.
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def load_cases() -> list[Any]:
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():  # building the expected outputs overflows on purpose
        warnings.simplefilter("ignore")
        return sorted(load_model_tests(kind="node"), key=lambda case: case.name)


def describe(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines)[:400]
    return f"{type(exc).__name__}: {text}"


def model_io(case: Any) -> tuple[list[str], list[str]]:
    graph = case.model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value.name for value in graph.input if value.name not in initializers]
    return inputs, [value.name for value in graph.output]


def as_array(value: Any) -> Any:
    from onnx import TensorProto, numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value


class Steps:
    """The four ways one case runs: raw and ours, per backend."""

    def __init__(self, backends: list[str]) -> None:
        from atriva_inference import InferenceRuntime

        self.runtimes = {name: InferenceRuntime(name) for name in backends}
        self.core = None
        if "openvino" in backends:
            import openvino as ov

            self.core = ov.Core()

    def raw_openvino(self, path: Path, names: list[str], outs: list[str], feed: list[Any]):
        compiled = self.core.compile_model(str(path), "CPU", OPENVINO_CONFIG)
        request = compiled.create_infer_request()
        request.infer(dict(zip(names, feed)))
        return [request.get_tensor(name).data.copy() for name in outs]

    def raw_onnxruntime(self, path: Path, names: list[str], outs: list[str], feed: list[Any]):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(outs, dict(zip(names, feed)))

    def ours(self, backend: str, path: Path, names: list[str], outs: list[str], feed: list[Any]):
        model = self.runtimes[backend].load_model(path, device="CPU")
        try:
            result = model.run(dict(zip(names, feed)))
            return [as_numpy(result[name]) for name in outs]
        finally:
            model.close()


def as_numpy(value: Any) -> Any:
    """An output as the raw backend gives it: a sequence's Tensors as a list of arrays, an
    absent optional as None."""
    if value is None:
        return None
    if isinstance(value, list):
        return [item.to_numpy() for item in value]
    return value.to_numpy()


def compare(runner: Any, expected: list[Any], outputs: list[Any], case: Any) -> None:
    """onnx's own check; where it cannot compare the values at all (a TypeError on some
    sequence cases, raw and ours alike), that is a mismatch too, not a runtime's error."""
    try:
        runner.assert_similar_outputs(expected, outputs, case.rtol, case.atol)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"onnx's check cannot compare the outputs: {describe(exc)}") from exc


def main(results: Path, workdir: Path, backends: list[str]) -> None:
    import onnx
    from onnx.backend.test.runner import Runner

    from atriva_inference import InferenceRuntimeError

    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            record = json.loads(line)
            done.add((record["case"], record["backend"], record["side"]))
    steps = Steps(backends)
    workdir.mkdir(parents=True, exist_ok=True)
    with results.open("a") as log:

        def write(record: dict[str, Any]) -> None:
            log.write(json.dumps(record) + "\n")
            log.flush()

        for case in load_cases():
            todo = [
                (backend, side)
                for backend in backends
                for side in ("raw", "ours")
                if (case.name, backend, side) not in done
            ]
            if not todo:
                continue
            path = workdir / f"{case.name}.onnx"
            onnx.save(case.model, str(path))
            names, outs = model_io(case)
            for backend, side in todo:
                key = {"case": case.name, "backend": backend, "side": side}
                write({**key, "event": "begin"})
                started = time.perf_counter()
                try:
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        for inputs, expected in case.data_sets:
                            feed = [as_array(value) for value in inputs]
                            if side == "raw":
                                run = getattr(steps, f"raw_{backend}")
                                outputs = run(path, names, outs, feed)
                            else:
                                outputs = steps.ours(backend, path, names, outs, feed)
                            expected = [as_array(value) for value in expected]
                            compare(Runner, expected, outputs, case)
                except Exception as exc:
                    error, ours_own = describe(exc), isinstance(exc, InferenceRuntimeError)
                else:
                    error, ours_own = None, False
                write(
                    {
                        **key,
                        "error": error,
                        "runtime_error": ours_own,
                        "ms": round((time.perf_counter() - started) * 1e3, 1),
                    }
                )
            path.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
