"""What a server serves and where: the one description the CLI, :class:`Server` and the Ray
Serve application (``atriva_inference.serve.ray``) share."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HOST",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_MAX_QUEUE",
    "ServeConfig",
    "parse_model_specs",
]

#: Loopback only, unless asked: a server reachable from other machines is a choice.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
#: Requests per model allowed to wait for the model before new ones get 503 / UNAVAILABLE.
DEFAULT_MAX_QUEUE = 64


@dataclass
class ServeConfig:
    """The models to serve (``{name: path}``), how to load them and where to listen.

    ``backend=None`` takes the first usable of openvino, onnxruntime. A port of 0 picks a
    free one (:class:`~atriva_inference.serve.Server` exposes the bound ports); ``None``
    turns that front end off. ``max_queue`` bounds the requests per model waiting for the
    model (beyond those it runs at once); more are refused with HTTP 503 / gRPC
    UNAVAILABLE. ``dynamic`` and ``cache_dir`` are ``load_model``'s.
    """

    models: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    backend: str | None = None
    device: str = "AUTO"
    precision: str | None = None
    host: str = DEFAULT_HOST
    http_port: int | None = DEFAULT_HTTP_PORT
    grpc_port: int | None = DEFAULT_GRPC_PORT
    max_queue: int = DEFAULT_MAX_QUEUE
    dynamic: bool = False
    cache_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise InvalidInputError("models: expected at least one model to serve, got none")
        for name in self.models:
            _check_name(name)
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int):
            raise InvalidInputError(
                f"max_queue: expected a positive integer, got {self.max_queue!r}"
            )
        if self.max_queue < 1:
            raise InvalidInputError(
                f"max_queue: expected a positive integer, got {self.max_queue!r}"
            )
        for what in ("http_port", "grpc_port"):
            port = getattr(self, what)
            if port is not None and (
                isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
            ):
                raise InvalidInputError(
                    f"{what}: expected a port in 0..65535 (0 picks a free one) or None, "
                    f"got {port!r}"
                )
        if self.http_port is None and self.grpc_port is None:
            raise InvalidInputError("http_port, grpc_port: expected at least one front end")


def parse_model_specs(specs: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """``["a.onnx", "det=models/b.xml"]`` -> ``{"a": "a.onnx", "det": "models/b.xml"}``.

    A model's name is its file stem unless given as ``NAME=PATH``; two models of one name are
    an error.
    """
    models: dict[str, str] = {}
    for spec in specs:
        text = os.fspath(spec)
        name, sep, path = text.partition("=")
        if not sep or not name or os.sep in name or (os.altsep and os.altsep in name):
            # A path that itself holds '=' is a plain path (no name before it).
            name, path = Path(text).stem, text
        if not path:
            raise InvalidInputError(f"model {text!r}: expected PATH or NAME=PATH, got no path")
        _check_name(name)
        if name in models:
            raise InvalidInputError(
                f"model name {name!r} given twice ({models[name]} and {path}); "
                "name one of them with NAME=PATH"
            )
        models[name] = path
    return models


def _check_name(name: object) -> None:
    # Names are URL path segments (/v2/models/{name}) and gRPC strings.
    if not isinstance(name, str) or not name or "/" in name or name.strip() != name:
        raise InvalidInputError(
            f"model name: expected a non-empty name without '/' or surrounding spaces, got {name!r}"
        )
