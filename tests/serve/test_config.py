"""ServeConfig and model names; the app and servicer are built without starting anything."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from atriva_inference import InvalidInputError
from atriva_inference.serve import (
    InferenceServicer,
    ModelRepository,
    ServeConfig,
    create_app,
    parse_model_specs,
)
from atriva_inference.serve.grpc_service import pb


def test_names_are_file_stems_unless_given():
    assert parse_model_specs(["models/det.xml", "faces=cf.onnx", "a=b/c=d.onnx"]) == {
        "det": "models/det.xml",
        "faces": "cf.onnx",
        "a": "b/c=d.onnx",
    }
    assert parse_model_specs(["dir/x=1.onnx"]) == {"x=1": "dir/x=1.onnx"}


@pytest.mark.parametrize(
    ("specs", "words"),
    [
        (["a.onnx", "b/a.xml"], ["'a' given twice", "NAME=PATH"]),
        (["a="], ["no path"]),
    ],
)
def test_bad_model_specs(specs, words):
    with pytest.raises(InvalidInputError) as error:
        parse_model_specs(specs)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"models": {}}, ["at least one model"]),
        ({"max_queue": 0}, ["max_queue", "positive integer", "0"]),
        ({"http_port": 70000}, ["http_port", "0..65535", "70000"]),
        ({"http_port": None, "grpc_port": None}, ["at least one front end"]),
        ({"models": {" x": "x.onnx"}}, ["model name", "' x'"]),
    ],
)
def test_bad_configs(changes, words):
    with pytest.raises(InvalidInputError) as error:
        ServeConfig(**{"models": {"m": "m.onnx"}, **changes})
    for word in words:
        assert word in str(error.value)


def test_defaults_listen_on_loopback():
    config = ServeConfig(models={"m": "m.onnx"})
    assert (config.host, config.http_port, config.grpc_port) == ("127.0.0.1", 8000, 8001)


def test_app_and_servicer_are_built_without_starting(served):
    """What a Ray Serve replica does: a repository of loaded models, then the FastAPI app
    and the gRPC servicer on it (nothing listens)."""
    repository = ModelRepository({"orientation": served["orientation"]}, max_queue=3)
    try:
        app = create_app(repository)
        assert isinstance(app, FastAPI)
        paths = {route.path for route in app.routes}
        assert {"/v2", "/v2/models/{name}/infer", "/metrics"} <= paths
        servicer = InferenceServicer(repository)

        async def ask():
            live = await servicer.ServerLive(pb.ServerLiveRequest(), None)
            metadata = await servicer.ModelMetadata(
                pb.ModelMetadataRequest(name="orientation"), None
            )
            return live, metadata

        live, metadata = asyncio.run(ask())
        assert live.live
        assert list(metadata.inputs[0].shape) == [-1, 3, 224, 224]
        assert isinstance(create_app({"o": served["orientation"]}), FastAPI)  # {name: Model}
    finally:
        repository.close()
    assert not served["orientation"].closed  # the caller's models stay open


def test_repository_refuses_what_is_not_a_model():
    with pytest.raises(InvalidInputError, match="expected a loaded Model, got str"):
        ModelRepository({"m": "m.onnx"})
