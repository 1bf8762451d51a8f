"""The Open Inference Protocol (KServe v2) server: REST on FastAPI/uvicorn and gRPC on
grpc.aio (extra ``[serve]``), and the same as a Ray Serve application (extra ``[ray]``).

>>> from atriva_inference.serve import ServeConfig, Server
>>> config = ServeConfig(models={"resnet": "resnet.xml"}, http_port=0)
>>> with Server(config) as server:  # doctest: +SKIP
...     print(server.describe())

Importing this package imports neither FastAPI nor gRPC: the names that need them
(:func:`create_app`, :class:`Server`, ...) import them when first used, so the command line
and :class:`ServeConfig` work without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_MAX_QUEUE,
    ServeConfig,
    parse_model_specs,
)
from .errors import ModelNotFoundError, ServerBusyError

if TYPE_CHECKING:
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

#: Names whose modules need the [serve] extra, and where they live.
_LAZY = {
    "InferOutput": "repository",
    "ModelRepository": "repository",
    "create_app": "rest",
    "InferenceServicer": "grpc_service",
    "add_GRPCInferenceServiceServicer_to_server": "grpc_service",
    "Server": "server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
