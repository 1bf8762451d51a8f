"""The Open Inference Protocol (KServe v2) server: REST on FastAPI/uvicorn and gRPC on
grpc.aio (extra ``[serve]``), and the same as a Ray Serve application (extra ``[ray]``).

>>> from atriva_inference.serve import ServeConfig, Server
>>> config = ServeConfig(models={"resnet": "resnet.xml"}, http_port=0)
>>> with Server(config) as server:  # doctest: +SKIP
...     print(server.describe())
"""

from __future__ import annotations

from .config import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_MAX_QUEUE,
    ServeConfig,
    parse_model_specs,
)
from .errors import ModelNotFoundError, ServerBusyError
from .grpc_service import InferenceServicer, add_GRPCInferenceServiceServicer_to_server
from .repository import InferOutput, ModelRepository
from .rest import create_app
from .server import Server

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HOST",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_MAX_QUEUE",
    "InferOutput",
    "InferenceServicer",
    "ModelNotFoundError",
    "ModelRepository",
    "ServeConfig",
    "Server",
    "ServerBusyError",
    "add_GRPCInferenceServiceServicer_to_server",
    "create_app",
    "parse_model_specs",
]
