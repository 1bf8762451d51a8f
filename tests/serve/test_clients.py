"""Unmodified tritonclient code against the server: HTTP binary (its default) and JSON, gRPC
sync and asyncio, on real pretrained models; every answer np.allclose to ``model.run``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient

from atriva_inference import __version__
from tests.serve.conftest import direct, hwc

ATOL = 1e-5


def _images(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)


def _http_input(name, array, datatype, binary=True):
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def _grpc_input(module, name, array, datatype):
    tensor = module.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


# -- health and metadata -----------------------------------------------------------------


def test_health_and_server_metadata(http, grpc_client):
    assert http.is_server_live() and http.is_server_ready()
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    for metadata in (http.get_server_metadata(), grpc_client.get_server_metadata(as_json=True)):
        assert metadata["name"] == "atriva-inference"
        assert metadata["version"] == __version__
        assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_marks_dynamic_dims(http, grpc_client, served):
    for metadata in (
        http.get_model_metadata("orientation"),
        http.get_model_metadata("orientation", "1"),
        grpc_client.get_model_metadata("orientation", as_json=True),
    ):
        assert metadata["name"] == "orientation"
        assert metadata["versions"] == ["1"]
        (tensor,) = metadata["inputs"]
        assert tensor["name"] == "x" and tensor["datatype"] == "FP32"
        assert [int(dim) for dim in tensor["shape"]] == [-1, 3, 224, 224]
        assert [o["name"] for o in metadata["outputs"]] == [
            info.name for info in served["orientation"].outputs
        ]
    faces = http.get_model_metadata("faces")
    assert faces["inputs"][0]["shape"] == [-1, 3, -1, -1]
    assert http.is_model_ready("faces") and http.is_model_ready("faces", "1")
    assert grpc_client.is_model_ready("faces") and grpc_client.is_model_ready("faces", "1")


# -- inference ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_classifier_matches_model_run(http, served, batch, binary):
    model = served["orientation"]
    images = _images(batch, seed=batch)
    expected = direct(model, {"x": images})
    (output,) = expected
    requested = None if binary else [httpclient.InferRequestedOutput(output, binary_data=False)]
    result = http.infer(
        "orientation",
        [_http_input("x", images, "FP32", binary)],
        outputs=requested,
        request_id=f"req-{batch}",
    )
    response = result.get_response()
    assert response["id"] == f"req-{batch}"
    assert response["model_name"] == "orientation"
    assert ("parameters" in response["outputs"][0]) is binary  # binary_data_size when binary
    answer = result.as_numpy(output)
    assert answer.shape == (batch, 4)
    np.testing.assert_allclose(answer, expected[output], atol=ATOL)


@pytest.mark.parametrize("batch", [1, 3])
def test_grpc_classifier_matches_model_run(grpc_client, served, batch):
    model = served["orientation"]
    images = _images(batch, seed=10 + batch)
    expected = direct(model, {"x": images})
    result = grpc_client.infer(
        "orientation", [_grpc_input(grpcclient, "x", images, "FP32")], request_id=f"g{batch}"
    )
    assert result.get_response().id == f"g{batch}"
    for name, array in expected.items():
        np.testing.assert_allclose(result.as_numpy(name), array, atol=ATOL)


def test_grpc_aio_client(grpc_url, served):
    model = served["orientation"]
    batches = [_images(2, seed=20 + index) for index in range(3)]

    async def ask():
        async with grpcaio.InferenceServerClient(grpc_url) as client:
            assert await client.is_server_live()
            return await asyncio.gather(
                *(
                    client.infer(
                        "orientation",
                        [_grpc_input(grpcaio, "x", images, "FP32")],
                        request_id=str(index),
                    )
                    for index, images in enumerate(batches)
                )
            )

    results = asyncio.run(ask())
    for index, (images, result) in enumerate(zip(batches, results)):
        assert result.get_response().id == str(index)
        for name, array in direct(model, {"x": images}).items():
            np.testing.assert_allclose(result.as_numpy(name), array, atol=ATOL)


@pytest.mark.parametrize("layout", ["HWC", "NHWC"])
def test_centerface_takes_a_uint8_frame(http, grpc_client, served, frame, layout):
    """The face detector's float32 NCHW input takes the photo as decoded: uint8, HWC (or with
    its batch dimension); the runtime converts it, as for model.run on Tensor(frame, 'HWC')."""
    expected = direct(served["faces"], {"input.1": hwc(frame)})
    sent = frame if layout == "HWC" else frame[np.newaxis]
    http_result = http.infer("faces", [_http_input("input.1", sent, "UINT8")])
    grpc_result = grpc_client.infer("faces", [_grpc_input(grpcclient, "input.1", sent, "UINT8")])
    assert set(expected) == {"537", "538", "539", "540"}
    for name, array in expected.items():
        assert array.shape[0] == 1 and array.shape[2:] == (128, 128)
        np.testing.assert_allclose(http_result.as_numpy(name), array, atol=ATOL)
        np.testing.assert_allclose(grpc_result.as_numpy(name), array, atol=ATOL)
    assert expected["537"].max() > 0.5  # the astronaut's face is found


def test_outputs_by_name_and_mixed_binary(http, grpc_client, served):
    """Named outputs only, each binary or JSON as asked; two inputs in their own order."""
    rng = np.random.default_rng(5)
    a, b = (rng.random((2, 4), dtype=np.float32) for _ in range(2))
    expected = direct(served["multi_io"], {"a": a, "b": b})
    result = http.infer(
        "multi_io",
        [_http_input("b", b, "FP32", binary=False), _http_input("a", a, "FP32")],
        outputs=[
            httpclient.InferRequestedOutput("a_prod", binary_data=True),
            httpclient.InferRequestedOutput("z_sum", binary_data=False),
        ],
    )
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["a_prod", "z_sum"]
    assert "data" in outputs[1] and "data" not in outputs[0]
    for name in ("a_prod", "z_sum"):
        np.testing.assert_allclose(result.as_numpy(name), expected[name], atol=ATOL)
    only = grpc_client.infer(
        "multi_io",
        [_grpc_input(grpcclient, "a", a, "FP32"), _grpc_input(grpcclient, "b", b, "FP32")],
        outputs=[grpcclient.InferRequestedOutput("z_sum")],
    )
    assert [o.name for o in only.get_response().outputs] == ["z_sum"]
    np.testing.assert_allclose(only.as_numpy("z_sum"), expected["z_sum"], atol=ATOL)


def test_strings_travel_as_bytes(http, grpc_client):
    """BYTES tensors: UTF-8 strings, length-prefixed in binary, JSON strings otherwise."""
    text = np.array(["camera", "héllo", ""], dtype=np.object_)
    for binary in (True, False):
        tensor = httpclient.InferInput("text", [3], "BYTES")
        tensor.set_data_from_numpy(text, binary_data=binary)
        result = http.infer(
            "strings",
            [tensor],
            outputs=[httpclient.InferRequestedOutput("same", binary_data=binary)],
        )
        assert result.get_response()["outputs"][0]["datatype"] == "BYTES"
        answer = [
            item.decode() if isinstance(item, bytes) else item for item in result.as_numpy("same")
        ]
        assert answer == list(text)
    tensor = grpcclient.InferInput("text", [3], "BYTES")
    tensor.set_data_from_numpy(text)
    result = grpc_client.infer("strings", [tensor])
    assert [item.decode() for item in result.as_numpy("same")] == list(text)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(http, served, algorithm):
    images = _images(1, seed=31)
    expected = direct(served["orientation"], {"x": images})
    result = http.infer(
        "orientation",
        [_http_input("x", images, "FP32")],
        request_compression_algorithm=algorithm,
    )
    for name, array in expected.items():
        np.testing.assert_allclose(result.as_numpy(name), array, atol=ATOL)
