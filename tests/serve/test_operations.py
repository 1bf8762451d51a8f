"""Operations: many clients at once, the --max-queue bound, metrics, the bind address, and
draining on stop() while requests run."""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from atriva_inference.serve import ServeConfig, Server
from tests.serve.conftest import BACKEND, http_client

THREADS = 8
REQUESTS = 50


def _pair(thread: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs no other request has: the answer tells whose it is."""
    rng = np.random.default_rng(thread * 1000 + index)
    return rng.random((2, 4), dtype=np.float32), np.full((2, 4), thread * 1000 + index, np.float32)


def _client_thread(url: str, thread: int, use_grpc: bool, failures: list[str]) -> None:
    module = grpcclient if use_grpc else httpclient
    # An HTTP client is closed and collected on its own thread (see http_client).
    with grpcclient.InferenceServerClient(url) if use_grpc else http_client(url) as client:
        for index in range(REQUESTS):
            a, b = _pair(thread, index)
            tensors = []
            for name, array in (("a", a), ("b", b)):
                tensor = module.InferInput(name, [2, 4], "FP32")
                tensor.set_data_from_numpy(array)
                tensors.append(tensor)
            result = client.infer("multi_io", tensors, request_id=f"{thread}-{index}")
            answer_id = result.get_response()
            answer_id = answer_id.id if use_grpc else answer_id["id"]
            if answer_id != f"{thread}-{index}" or not (
                np.array_equal(result.as_numpy("z_sum"), a + b)
                and np.array_equal(result.as_numpy("a_prod"), a * b)
            ):
                failures.append(f"thread {thread} request {index}: another request's answer")


def test_eight_clients_each_get_their_own_answers(http_url, grpc_url):
    """8 threads (HTTP and gRPC) x 50 requests with distinct inputs at once: every answer is
    the one for its own input."""
    failures: list[str] = []
    threads = [
        threading.Thread(
            target=_client_thread,
            args=(grpc_url if thread % 2 else http_url, thread, bool(thread % 2), failures),
        )
        for thread in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]


def _metrics(http_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{http_url}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_failures_and_durations(http_url, http):
    before = _metrics(http_url)
    tensor = httpclient.InferInput("x", [2, 3, 224, 224], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 3, 224, 224), np.float32))
    http.infer("orientation", [tensor])
    bad = httpclient.InferInput("x", [2, 3, 224, 224], "FP64")
    bad.set_data_from_numpy(np.zeros((2, 3, 224, 224)))
    with pytest.raises(InferenceServerException):
        http.infer("orientation", [bad])
    after = _metrics(http_url)
    labels = (("model", "orientation"), ("version", "1"))

    def grew(name: str, extra: tuple[tuple[str, str], ...] = ()) -> float:
        key = (name, tuple(sorted(labels + extra)))
        return after[key] - before.get(key, 0.0)

    assert grew("nv_inference_request_success_total") == 1
    assert grew("nv_inference_count_total") == 2  # a batch of two
    assert grew("nv_inference_exec_count_total") == 1
    assert grew("nv_inference_request_failure_total", (("reason", "REJECTED"),)) == 1
    assert grew("nv_inference_compute_infer_duration_us_total") > 0
    assert grew("atriva_inference_compute_duration_seconds_count") == 1
    assert grew("atriva_inference_queue_duration_seconds_count") == 1
    assert grew("atriva_inference_request_duration_seconds_count") == 1
    assert after[("nv_inference_pending_request_count", labels)] == 0
    assert after[("atriva_inference_in_flight", labels)] == 0


def _listens_only_on_loopback(port: int) -> None:
    # 127.0.0.2 is this machine too: a socket bound to 0.0.0.0 would take it.
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=10).close()


def test_binds_only_the_configured_host(server):
    assert server.host == "127.0.0.1"
    _listens_only_on_loopback(server.http_port)
    _listens_only_on_loopback(server.grpc_port)
    assert f"http://127.0.0.1:{server.http_port}" in server.describe()
    assert f"gRPC on 127.0.0.1:{server.grpc_port}" in server.describe()


# -- a slow model behind a queue of one ------------------------------------------------------


@pytest.fixture(scope="module")
def slow_server(slow) -> Iterator[Server]:
    """The slow zoo model (tens of ms a run) loaded from a ServeConfig, max_queue=1."""
    config = ServeConfig(
        models={"slow": str(slow.onnx_path)},
        backend=BACKEND,
        device="CPU",
        http_port=0,
        grpc_port=0,
        max_queue=1,
    )
    server = Server(config).start()
    try:
        yield server
    finally:
        server.stop()


def _slow_request(url: str, value: float, outcomes: list, stop: threading.Event) -> None:
    x = np.full((512, 512), value, np.float32)
    with grpcclient.InferenceServerClient(url) as client:
        for _ in range(30):
            tensor = grpcclient.InferInput("x", [512, 512], "FP32")
            tensor.set_data_from_numpy(x)
            try:
                result = client.infer("slow", [tensor])
            except InferenceServerException as exc:
                outcomes.append((exc.status(), exc.message()))
                stop.set()
            else:
                outcomes.append(("ok", result.as_numpy("y")))
            if stop.is_set():
                return


def test_max_queue_refuses_beyond_the_bound(slow_server, slow):
    """More requests than the model runs at once plus max_queue: the rest get UNAVAILABLE
    (HTTP 503), and those answered are right."""
    repository = slow_server.repository
    depth = repository.concurrency("slow")
    url = f"127.0.0.1:{slow_server.grpc_port}"
    outcomes: list = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_slow_request, args=(url, 0.001 * (index + 1), outcomes, stop))
        for index in range(depth + 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [message for status, message in outcomes if status != "ok"]
    assert refused, "no request was refused"
    assert all("max_queue=1" in message for message in refused), refused[:3]
    assert {status for status, _ in outcomes} <= {"ok", "StatusCode.UNAVAILABLE"}
    expected = {
        value: slow.reference({"x": np.full((512, 512), value, np.float32)})["y"]
        for value in (0.001 * (index + 1) for index in range(depth + 4))
    }
    for status, answer in outcomes:
        if status == "ok":
            assert any(np.allclose(answer, ref, rtol=1e-3, atol=1e-6) for ref in expected.values())
    with http_client(f"127.0.0.1:{slow_server.http_port}") as client:
        tensor = httpclient.InferInput("x", [512, 512], "FP32")
        tensor.set_data_from_numpy(np.full((512, 512), 0.001, np.float32))
        answer = client.infer("slow", [tensor]).as_numpy("y")
    np.testing.assert_allclose(answer, expected[0.001], rtol=1e-3, atol=1e-6)


def test_stop_drains_requests_in_flight(slow_server, slow):
    """stop() while requests run: each is answered, then the ports close."""
    url = f"127.0.0.1:{slow_server.grpc_port}"
    x = np.full((512, 512), 0.002, np.float32)
    answers: list = []
    running = threading.Event()

    def ask() -> None:
        with grpcclient.InferenceServerClient(url) as client:
            tensor = grpcclient.InferInput("x", [512, 512], "FP32")
            tensor.set_data_from_numpy(x)
            running.set()
            try:
                answers.append(client.infer("slow", [tensor]).as_numpy("y"))
            except InferenceServerException as exc:
                answers.append(exc)

    labels = (("model", "slow"), ("version", "1"))
    thread = threading.Thread(target=ask)
    thread.start()
    running.wait()
    metrics_url = f"127.0.0.1:{slow_server.http_port}"
    while not _metrics(metrics_url)[("atriva_inference_in_flight", labels)]:
        if not thread.is_alive():
            pytest.fail(f"the request ended before it could be seen running: {answers}")
    assert slow_server.stop() is True
    thread.join()
    (answer,) = answers
    np.testing.assert_allclose(answer, slow.reference({"x": x})["y"], rtol=1e-3, atol=1e-6)
    for port in (int(metrics_url.split(":")[1]), int(url.split(":")[1])):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_frame_without_batch_counts_one_inference(http_url, http, frame):
    labels = (("model", "faces"), ("version", "1"))
    before = _metrics(http_url).get(("nv_inference_count_total", labels), 0.0)
    tensor = httpclient.InferInput("input.1", list(frame.shape), "UINT8")
    tensor.set_data_from_numpy(frame)
    http.infer("faces", [tensor])
    assert _metrics(http_url)[("nv_inference_count_total", labels)] - before == 1
