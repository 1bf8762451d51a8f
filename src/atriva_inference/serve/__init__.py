"""The Open Inference Protocol (KServe v2) server: REST on FastAPI/uvicorn and gRPC on
grpc.aio (extra ``[serve]``), and the same as a Ray Serve application (extra ``[ray]``)."""

from __future__ import annotations

from .config import DEFAULT_MAX_QUEUE, ServeConfig, parse_model_specs

__all__ = ["DEFAULT_MAX_QUEUE", "ServeConfig", "parse_model_specs"]
