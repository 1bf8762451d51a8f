"""The server as a Ray Serve application: ``atriva-infer serve --ray --replicas 2`` starts a
local Ray cluster on this machine, answers unmodified ``tritonclient`` (binary and JSON
HTTP, gRPC) through Ray Serve's proxies on loopback, and on SIGTERM shuts the cluster down
with no process left behind.

One cluster serves the whole module (Ray takes a while to start on 2 cores); the last test
stops it.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.errors import InvalidInputError
from tests import zoo
from tests.serve.conftest import BACKEND, http_client

pytest.importorskip("ray.serve", reason="the Ray Serve tests need the [ray] extra (ray[serve])")

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from atriva_inference.serve.ray import app_builder, build_app

REPLICAS = 2
READY_S = 240.0  # a cold Ray start on 2 busy cores
#: A request log line of a replica: "(ServeReplica:<app>:<deployment> pid=N) ... 200".
REPLICA_LOG = re.compile(r"ServeReplica:atriva-inference:OpenInferenceDeployment pid=(\d+)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _session(sid: int) -> set[int]:
    """Live processes of session ``sid`` (the server's: Ray's daemons and workers stay in it)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp session
        if int(fields[3]) == sid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


class RayServer:
    def __init__(self, process: subprocess.Popen, log: Path, http_port: int, grpc_port: int):
        self.process, self.log = process, log
        self.http_url = f"127.0.0.1:{http_port}"
        self.grpc_url = f"127.0.0.1:{grpc_port}"


@pytest.fixture(scope="module")
def conv(tmp_path_factory) -> zoo.ZooModel:
    return zoo.build_conv_net(tmp_path_factory.mktemp("ray"))


@pytest.fixture(scope="module")
def direct_model(conv):
    with InferenceRuntime(BACKEND) as runtime:
        yield runtime.load_model(conv.path_for(BACKEND), "CPU")


@pytest.fixture(scope="module")
def ray_server(conv, tmp_path_factory) -> Iterator[RayServer]:
    http_port, grpc_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("ray-log") / "server.log"
    command = [
        sys.executable, "-m", "atriva_inference.cli", "serve", f"conv={conv.path_for(BACKEND)}",
        "--backend", BACKEND, "--device", "CPU", "--host", "127.0.0.1",
        "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--ray", "--replicas", str(REPLICAS),
    ]  # fmt: skip
    with log.open("w") as out:  # a file: a pipe nobody reads could fill and block it
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: every Ray process it starts is in it
            # A cluster named by RAY_ADDRESS (or left by `ray start`) is not joined: without
            # --ray-address the server starts its own; this one does not even exist.
            # RAY_DEDUP_LOGS=0: Ray folds log lines that differ only in numbers across
            # processes into the first one's "[repeated Nx across cluster]", which can hide
            # the second replica's pid from the check that both replicas served.
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "RAY_ADDRESS": "127.0.0.1:9",
                "RAY_DEDUP_LOGS": "0",
            },
        )
    server = RayServer(process, log, http_port, grpc_port)
    try:
        deadline = time.monotonic() + READY_S
        while True:
            assert process.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "not ready in time:\n" + log.read_text()[-4000:]
            try:
                # serving once the startup line is out (it follows serve.run) and conv is ready
                with http_client(server.http_url) as client:
                    if "on Ray Serve" in log.read_text() and client.is_model_ready("conv"):
                        break
            except (InferenceServerException, OSError):
                pass
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:  # the last test did not stop it: stop it the same way
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # our own session, by its id
                process.wait()


def _direct(model, feed):
    return {name: tensor.to_numpy() for name, tensor in model.run(feed).items()}


def test_startup_line_says_where(ray_server):
    text = ray_server.log.read_text()
    assert f"REST http://{ray_server.http_url}" in text
    assert f"gRPC [::]:{ray_server.grpc_url.rpartition(':')[2]}" in text
    assert f"{REPLICAS} replica(s), local cluster" in text


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_answers_as_model_run(ray_server, conv, direct_model, binary):
    feed = conv.make_inputs(np.random.default_rng(1))
    expected = _direct(direct_model, feed)["output"]
    with http_client(ray_server.http_url) as client:
        tensor = httpclient.InferInput("input", list(feed["input"].shape), "FP32")
        tensor.set_data_from_numpy(feed["input"], binary_data=binary)
        requested = [httpclient.InferRequestedOutput("output", binary_data=binary)]
        result = client.infer("conv", [tensor], outputs=requested, request_id="r-7")
        assert result.get_response()["id"] == "r-7"
        assert np.allclose(result.as_numpy("output"), expected, rtol=1e-4, atol=1e-5)
        assert client.get_model_metadata("conv")["inputs"][0]["shape"] == [1, 3, 16, 16]


def test_grpc_answers_as_model_run(ray_server, conv, direct_model):
    feed = conv.make_inputs(np.random.default_rng(2))
    expected = _direct(direct_model, feed)["output"]
    with grpcclient.InferenceServerClient(ray_server.grpc_url) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("conv")
        assert list(client.get_model_metadata("conv").inputs[0].shape) == [1, 3, 16, 16]
        tensor = grpcclient.InferInput("input", list(feed["input"].shape), "FP32")
        tensor.set_data_from_numpy(feed["input"])
        result = client.infer("conv", [tensor], request_id="g-9")
        assert result.get_response().id == "g-9"
        assert np.allclose(result.as_numpy("output"), expected, rtol=1e-4, atol=1e-5)


def test_bad_requests_get_typed_answers_and_the_server_stays_up(ray_server, conv, direct_model):
    wrong = np.zeros((1, 3, 16, 16), np.float64)
    with http_client(ray_server.http_url) as client:
        tensor = httpclient.InferInput("input", list(wrong.shape), "FP64")
        tensor.set_data_from_numpy(wrong)
        with pytest.raises(InferenceServerException, match="expected datatype FP32") as bad:
            client.infer("conv", [tensor])
        assert bad.value.status() == "400"
        with pytest.raises(InferenceServerException) as missing:
            client.get_model_metadata("nope")
        assert missing.value.status() == "404"
    with grpcclient.InferenceServerClient(ray_server.grpc_url) as client:
        tensor = grpcclient.InferInput("input", list(wrong.shape), "FP64")
        tensor.set_data_from_numpy(wrong)
        with pytest.raises(InferenceServerException, match="expected datatype FP32") as bad:
            client.infer("conv", [tensor])
        assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as missing:
            client.infer("nope", [tensor])
        assert missing.value.status() == "StatusCode.NOT_FOUND"
        feed = conv.make_inputs(np.random.default_rng(3))
        good = grpcclient.InferInput("input", list(feed["input"].shape), "FP32")
        good.set_data_from_numpy(feed["input"])
        expected = _direct(direct_model, feed)["output"]
        assert np.allclose(client.infer("conv", [good]).as_numpy("output"), expected, atol=1e-5)


def test_concurrent_clients_each_get_their_own_answer_from_both_replicas(
    ray_server, conv, direct_model
):
    feeds = [conv.make_inputs(np.random.default_rng(100 + i)) for i in range(8)]
    expected = [_direct(direct_model, feed)["output"] for feed in feeds]

    def client_thread(index: int) -> bool:
        with grpcclient.InferenceServerClient(ray_server.grpc_url) as client:
            tensor = grpcclient.InferInput("input", [1, 3, 16, 16], "FP32")
            tensor.set_data_from_numpy(feeds[index]["input"])
            return all(
                np.allclose(
                    client.infer("conv", [tensor]).as_numpy("output"), expected[index], atol=1e-5
                )
                for _ in range(10)
            )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(client_thread, range(8)))
    # Ray streams each replica's request log to the server's output, tagged with its pid.
    deadline = time.monotonic() + 10
    while len(set(REPLICA_LOG.findall(ray_server.log.read_text()))) < REPLICAS:
        assert time.monotonic() < deadline, "requests did not reach both replicas"
        time.sleep(0.5)


def test_sigterm_shuts_the_cluster_down_leaving_no_process(ray_server):
    process = ray_server.process
    started = _session(process.pid)
    assert len(started) > 3  # the server, Ray's daemons, the proxy, controller and replicas
    process.send_signal(signal.SIGTERM)
    assert process.wait(120) == 0, ray_server.log.read_text()[-4000:]
    deadline = time.monotonic() + 30
    while _session(process.pid):
        assert time.monotonic() < deadline, f"left behind: {sorted(_session(process.pid))}"
        time.sleep(0.5)
    assert "stopping (draining requests in flight)" in ray_server.log.read_text()


# -- building the application (no cluster) ------------------------------------------------------
def test_app_builder_reads_serve_run_arguments(conv):
    app = app_builder({"models": f"a={conv.onnx_path},b={conv.onnx_path}", "replicas": "3"})
    assert type(app).__name__ == "Application"
    app = app_builder({"models": str(conv.onnx_path), "min_replicas": 1, "max_replicas": 4})
    assert type(app).__name__ == "Application"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "expected models="),
        ({"models": "a.onnx", "replica": 2}, "got replica"),
        ({"models": "a.onnx", "replicas": "two"}, "replicas: expected an integer"),
        ({"models": "a.onnx", "replicas": 0}, "replicas: expected a positive integer"),
    ],
)
def test_app_builder_refuses_bad_arguments(args, message):
    with pytest.raises(InvalidInputError, match=message):
        app_builder(args)


def test_build_app_refuses_negative_cpus(conv):
    from atriva_inference.serve import ServeConfig

    with pytest.raises(InvalidInputError, match="replica_cpus"):
        build_app(ServeConfig(models={"a": conv.onnx_path}), replica_cpus=-1)
