"""Every bad request gets a clean typed answer -- HTTP status and {"error": ...}, or the gRPC
status and details -- that says what was expected and what came; the server stays live and
answers a good request right after each."""

from __future__ import annotations

import http.client
import json
import struct

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from tests.serve.conftest import direct

GOOD = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
GOOD_BYTES = GOOD.tobytes()


@pytest.fixture(scope="module")
def expected(served):
    return direct(served["orientation"], {"x": GOOD})


@pytest.fixture
def still_serving(http, grpc_client, expected):
    """After the test's bad request: the server is live and answers a good one correctly."""
    yield
    assert http.is_server_live() and grpc_client.is_server_live()
    tensor = httpclient.InferInput("x", [1, 3, 224, 224], "FP32")
    tensor.set_data_from_numpy(GOOD)
    result = http.infer("orientation", [tensor])
    tensor = grpcclient.InferInput("x", [1, 3, 224, 224], "FP32")
    tensor.set_data_from_numpy(GOOD)
    grpc_result = grpc_client.infer("orientation", [tensor])
    for name, array in expected.items():
        np.testing.assert_allclose(result.as_numpy(name), array, atol=1e-5)
        np.testing.assert_allclose(grpc_result.as_numpy(name), array, atol=1e-5)


def post(http_url, path, body: bytes, headers=None):
    """A raw POST (no client-side checks): ``(status, decoded JSON answer)``."""
    host, port = http_url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def binary_request(tensors, raw: bytes, outputs=None) -> tuple[bytes, dict[str, str]]:
    header = {"inputs": tensors}
    if outputs is not None:
        header["outputs"] = outputs
    text = json.dumps(header).encode()
    return text + raw, {"Inference-Header-Content-Length": str(len(text))}


def x_tensor(datatype="FP32", shape=(1, 3, 224, 224), size=GOOD.nbytes):
    return {
        "name": "x",
        "datatype": datatype,
        "shape": list(shape),
        "parameters": {"binary_data_size": size},
    }


INFER = "/v2/models/orientation/infer"

# (case, path, body, headers, status, words the error must contain)
HTTP_CASES = [
    (
        "unknown model",
        "/v2/models/nope/infer",
        *binary_request([x_tensor()], GOOD_BYTES),
        404,
        ["'nope'", "'orientation'"],
    ),
    (
        "unknown version",
        "/v2/models/orientation/versions/7/infer",
        *binary_request([x_tensor()], GOOD_BYTES),
        404,
        ["'7'", "version '1'"],
    ),
    (
        "wrong datatype",
        INFER,
        *binary_request([x_tensor("FP64", size=len(GOOD_BYTES) * 2)], GOOD_BYTES * 2),
        400,
        ["expected datatype FP32", "got FP64"],
    ),
    (
        "unknown datatype",
        INFER,
        *binary_request([x_tensor("FP8")], GOOD_BYTES),
        400,
        ["expected a datatype", "'FP8'"],
    ),
    (
        "shape does not match the data",
        INFER,
        *binary_request([x_tensor(shape=(2, 3, 224, 224))], GOOD_BYTES),
        400,
        [f"expected {len(GOOD_BYTES) * 2} bytes", f"got {len(GOOD_BYTES)}"],
    ),
    (
        "shape the model does not take",
        INFER,
        *binary_request([x_tensor(shape=(1, 3, 112, 448))], GOOD_BYTES),
        400,
        ["expected float32[?,3,224,224]", "got float32[1,3,112,448]"],
    ),
    (
        "truncated binary body",
        INFER,
        *binary_request([x_tensor()], GOOD_BYTES[: len(GOOD_BYTES) // 2]),
        400,
        [f"expected {len(GOOD_BYTES)} bytes of binary data", "truncated"],
    ),
    (
        "bytes after the inputs",
        INFER,
        *binary_request([x_tensor()], GOOD_BYTES + b"xx"),
        400,
        ["2 bytes after"],
    ),
    ("malformed JSON", INFER, b'{"inputs": [', {}, 400, ["expected a JSON inference request"]),
    (
        "malformed JSON header of a binary body",
        INFER,
        b"{nope" + GOOD_BYTES,
        {"Inference-Header-Content-Length": "5"},
        400,
        ["expected a JSON inference request"],
    ),
    (
        "header length past the body",
        INFER,
        b"{}",
        {"Inference-Header-Content-Length": "99"},
        400,
        ["Inference-Header-Content-Length", "'99'"],
    ),
    ("no inputs", INFER, b'{"inputs": []}', {}, 400, ["expected a non-empty list"]),
    (
        "JSON data of the wrong length",
        INFER,
        json.dumps(
            {
                "inputs": [
                    {"name": "x", "datatype": "FP32", "shape": [1, 3, 224, 224], "data": [1.0, 2.0]}
                ]
            }
        ).encode(),
        {},
        400,
        ["expected 150528 values", "got 2"],
    ),
    (
        "JSON floats for an integer datatype",
        "/v2/models/mismatch/infer",
        json.dumps(
            {
                "inputs": [
                    {"name": "a", "datatype": "INT32", "shape": [1], "data": [0.5]},
                    {"name": "b", "datatype": "FP32", "shape": [1], "data": [1]},
                ]
            }
        ).encode(),
        {},
        400,
        ["expected int32 values", "got float64"],
    ),
    (
        "negative dimension",
        INFER,
        *binary_request([x_tensor(shape=(-1, 3, 224, 224))], GOOD_BYTES),
        400,
        ["non-negative integers", "-1"],
    ),
    (
        "missing input",
        "/v2/models/multi_io/infer",
        json.dumps(
            {"inputs": [{"name": "a", "datatype": "FP32", "shape": [2, 4], "data": [0.0] * 8}]}
        ).encode(),
        {},
        400,
        ["missing input(s) 'b'", "'a', 'b'"],
    ),
    (
        "unknown input",
        INFER,
        *binary_request([x_tensor(), {**x_tensor(), "name": "y"}], GOOD_BYTES * 2),
        400,
        ["unknown input 'y'", "'x'"],
    ),
    (
        "input given twice",
        INFER,
        *binary_request([x_tensor(), x_tensor()], GOOD_BYTES * 2),
        400,
        ["'x' given twice"],
    ),
    (
        "unknown output",
        INFER,
        *binary_request([x_tensor()], GOOD_BYTES, [{"name": "probs"}]),
        400,
        ["unknown output(s) 'probs'"],
    ),
    (
        "a string longer than the data",
        "/v2/models/strings/infer",
        *binary_request(
            [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": 8},
                }
            ],
            struct.pack("<I", 10) + b"abcd",
        ),
        400,
        ["string 0 says 10 bytes", "4 are left"],
    ),
    (
        "numbers for a string input",
        "/v2/models/strings/infer",
        json.dumps(
            {"inputs": [{"name": "text", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}]}
        ).encode(),
        {},
        400,
        ["expected datatype BYTES", "got FP32"],
    ),
    (
        "inference fails inside the backend",
        "/v2/models/mismatch/infer",
        json.dumps(
            {
                "inputs": [
                    {"name": "a", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
                    {"name": "b", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
                ]
            }
        ).encode(),
        {},
        500,
        [],
    ),
]


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [case[1:] for case in HTTP_CASES],
    ids=[case[0] for case in HTTP_CASES],
)
def test_http_bad_request(http_url, path, body, headers, status, words):
    answer_status, answer = post(http_url, path, body, headers)
    assert answer_status == status, answer
    assert set(answer) == {"error"}
    for word in words:
        assert word in answer["error"]


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [(None, False), ("application/json", False), (None, True), ("application/octet-stream", True)],
)
def test_http_content_type_is_not_required(http_url, expected, content_type, binary):
    if binary:
        body, headers = binary_request([x_tensor()], GOOD_BYTES)
    else:
        tensor = {"name": "x", "datatype": "FP32", "shape": [1, 3, 224, 224]}
        body, headers = json.dumps({"inputs": [{**tensor, "data": GOOD.tolist()}]}).encode(), {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    status, answer = post(http_url, INFER, body, headers)
    assert status == 200, answer
    (output,) = answer["outputs"]
    np.testing.assert_allclose(
        np.reshape(output["data"], output["shape"]), expected[output["name"]], atol=1e-5
    )


@pytest.mark.usefixtures("still_serving")
def test_http_unknown_model_metadata_and_route(http, http_url):
    with pytest.raises(InferenceServerException) as error:
        http.get_model_metadata("nope")
    assert error.value.status() == "404"
    assert not http.is_model_ready("nope")
    assert not http.is_model_ready("orientation", "2")
    status, answer = post(http_url, "/v2/nowhere", b"")
    assert status == 404 and set(answer) == {"error"}


def raw_infer(grpc_url, request: service_pb2.ModelInferRequest):
    """ModelInfer with Triton's own messages over a plain channel (no client-side checks)."""
    with grpc.insecure_channel(grpc_url) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )
        return call(request, timeout=30)


def grpc_request(
    model="orientation",
    datatype="FP32",
    shape=(1, 3, 224, 224),
    raw=(GOOD_BYTES,),
    name="x",
    version="",
):
    request = service_pb2.ModelInferRequest(model_name=model, model_version=version)
    request.inputs.add(name=name, datatype=datatype, shape=list(shape))
    request.raw_input_contents.extend(raw)
    return request


def _two_inputs():
    request = service_pb2.ModelInferRequest(model_name="mismatch")
    request.inputs.add(name="a", datatype="FP32", shape=[3])
    request.inputs.add(name="b", datatype="FP32", shape=[4])
    request.raw_input_contents.extend(
        [np.ones(3, np.float32).tobytes(), np.ones(4, np.float32).tobytes()]
    )
    return request


def _typed_contents():
    request = service_pb2.ModelInferRequest(model_name="multi_io")
    for name in ("a", "b"):
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[2, 4])
        tensor.contents.fp32_contents.extend([1.0] * 7)  # one short
    return request


GRPC_CASES = [
    ("unknown model", grpc_request(model="nope"), grpc.StatusCode.NOT_FOUND, ["'nope'"]),
    ("unknown version", grpc_request(version="3"), grpc.StatusCode.NOT_FOUND, ["'3'"]),
    (
        "wrong datatype",
        grpc_request(datatype="FP16", raw=(GOOD.astype(np.float16).tobytes(),)),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["expected datatype FP32", "got FP16"],
    ),
    (
        "shape does not match the data",
        grpc_request(shape=(1, 3, 224, 223)),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["bytes for FP32[1, 3, 224, 223]"],
    ),
    (
        "truncated raw contents",
        grpc_request(raw=(GOOD_BYTES[:100],)),
        grpc.StatusCode.INVALID_ARGUMENT,
        [f"expected {len(GOOD_BYTES)} bytes", "got 100"],
    ),
    (
        "raw contents not one per input",
        grpc_request(raw=(GOOD_BYTES, GOOD_BYTES)),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["one entry per input (1)", "got 2"],
    ),
    (
        "no data",
        grpc_request(raw=()),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["expected raw_input_contents or contents"],
    ),
    (
        "unknown input",
        grpc_request(name="y"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["unknown input 'y'"],
    ),
    (
        "typed contents of the wrong length",
        _typed_contents(),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["expected 8 values", "got 7"],
    ),
    ("inference fails inside the backend", _two_inputs(), grpc.StatusCode.INTERNAL, []),
]


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [case[1:] for case in GRPC_CASES],
    ids=[case[0] for case in GRPC_CASES],
)
def test_grpc_bad_request(grpc_url, request_, code, words):
    with pytest.raises(grpc.RpcError) as error:
        raw_infer(grpc_url, request_)
    assert error.value.code() == code, error.value.details()
    for word in words:
        assert word in error.value.details()


@pytest.mark.usefixtures("still_serving")
def test_grpc_unknown_model_metadata(grpc_client):
    with pytest.raises(InferenceServerException) as error:
        grpc_client.get_model_metadata("nope")
    assert error.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException):
        grpc_client.is_model_ready("nope")


def test_grpc_typed_contents_are_read(grpc_url, served):
    """``contents`` instead of raw bytes (what other OIP clients send) is understood too."""
    request = service_pb2.ModelInferRequest(model_name="multi_io", id="typed")
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    for name in ("a", "b"):
        request.inputs.add(name=name, datatype="FP32", shape=[2, 4]).contents.fp32_contents.extend(
            a.ravel().tolist()
        )
    response = raw_infer(grpc_url, request)
    assert response.id == "typed"
    expected = direct(served["multi_io"], {"a": a, "b": a})
    for output, raw in zip(response.outputs, response.raw_output_contents):
        np.testing.assert_allclose(
            np.frombuffer(raw, np.float32).reshape(output.shape), expected[output.name]
        )
