"""``atriva-infer serve`` as a process: its startup line says what listens where, and SIGTERM
drains the requests in flight (each answered) before it exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families

from tests.serve.conftest import BACKEND

STARTUP = re.compile(r"HTTP on http://127\.0\.0\.1:(\d+) .*gRPC on 127\.0\.0\.1:(\d+)")


REQUESTS = 6


def _progress(http_port: int) -> tuple[float, float]:
    """``(answered, admitted and not yet answered)`` from the server's metrics."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return values["nv_inference_request_success_total"], (
        values["atriva_inference_in_flight"] + values["nv_inference_pending_request_count"]
    )


def test_sigterm_drains_then_exits_zero(slow, tmp_path):
    command = [
        sys.executable, "-m", "atriva_inference.cli", "serve", f"slow={slow.onnx_path}",
        "--backend", BACKEND, "--device", "CPU", "--http-port", "0", "--grpc-port", "0",
    ]  # fmt: skip
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:  # a file: a pipe nobody reads could fill and block it
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        line = process.stdout.readline()
        match = STARTUP.search(line)
        assert match, (line, errors.read_text())
        assert "slow (" in line
        http_port, grpc_port = map(int, match.groups())
        x = np.full((512, 512), 0.003, np.float32)
        answers: list = []

        def ask() -> None:
            with grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
                tensor = grpcclient.InferInput("x", [512, 512], "FP32")
                tensor.set_data_from_numpy(x)
                try:
                    answers.append(client.infer("slow", [tensor]).as_numpy("y"))
                except Exception as exc:  # reported below, with the others
                    answers.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(REQUESTS)]
        for thread in threads:
            thread.start()
        answered = admitted = 0.0
        while answered + admitted < REQUESTS:  # every request reached the server
            answered, admitted = _progress(http_port)
            if not any(thread.is_alive() for thread in threads):
                break  # some request failed: the checks below say which
        assert admitted, "every request was answered before SIGTERM: nothing left to drain"
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join()
        assert process.wait(timeout=120) == 0, errors.read_text()
        expected = slow.reference({"x": x})["y"]
        assert len(answers) == REQUESTS
        for answer in answers:
            assert isinstance(answer, np.ndarray), answer
            np.testing.assert_allclose(answer, expected, rtol=1e-3, atol=1e-6)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
