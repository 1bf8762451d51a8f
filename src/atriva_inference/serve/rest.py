"""The Open Inference Protocol over HTTP/REST, as a FastAPI application.

Requests are JSON, or JSON followed by raw tensor bytes (Triton's ``binary_tensor_data``
extension: an ``Inference-Header-Content-Length`` header gives the JSON's length, and each
binary input says its ``parameters.binary_data_size``); the Content-Type is not looked at,
since ``tritonclient`` sends none in JSON mode. Outputs are binary when the request asks
(``parameters.binary_data`` per output, ``parameters.binary_data_output`` for all), else
JSON. Every error answers ``{"error": "..."}`` with the status of
:func:`~atriva_inference.serve.errors.http_status`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InferenceRuntimeError, InvalidInputError
from ..model import Model
from .errors import http_status
from .metrics import CONTENT_TYPE
from .protocol import array_from_bytes, array_from_list, check_shape, dtype_of, json_data, raw_bytes
from .repository import VERSION, InferOutput, ModelRepository

__all__ = ["HEADER_LENGTH", "create_app"]

#: The header that says how long the JSON part of a binary request or response is.
HEADER_LENGTH = "Inference-Header-Content-Length"


def create_app(repository: ModelRepository | Mapping[str, Model]) -> FastAPI:
    """The REST application serving ``repository`` (or ``{name: Model}``, which stay the
    caller's). Creating it starts nothing; run it with any ASGI server."""
    if not isinstance(repository, ModelRepository):
        repository = ModelRepository(repository)
    repo = repository
    app = FastAPI(title="atriva-inference", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.repository = repo

    @app.exception_handler(InferenceRuntimeError)
    async def _typed_error(request: Request, exc: InferenceRuntimeError) -> JSONResponse:
        return _error(http_status(exc), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.get("/v2/health/live")
    async def live() -> Response:
        return _status(repo.live, "live")

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return _status(repo.ready, "ready")

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return repo.server_metadata()

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str = "") -> dict[str, Any]:
        return repo.model_metadata(name, version)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str = "") -> Response:
        return _status(repo.model_ready(name, version), "ready")

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str = "") -> Response:
        repo.model_metadata(name, version)  # an unknown model is a 404 whatever the body
        body = _decoded(await request.body(), request.headers.get("content-encoding"))
        parsed = _parse(body, request.headers.get(HEADER_LENGTH))
        outputs = await repo.infer(name, version, parsed.inputs, list(parsed.binary) or None)
        return _response(name, version, parsed, outputs)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(repo.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def _status(ok: bool, what: str) -> Response:
    return JSONResponse({what: ok}, status_code=200 if ok else 503)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body without its Content-Encoding (tritonclient may gzip or deflate requests)."""
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(
            f"body: expected {encoding} data, could not decode it: {exc}"
        ) from exc
    raise InvalidInputError(
        f"Content-Encoding: expected gzip, deflate or identity, got {encoding!r}"
    )


@dataclass
class _Parsed:
    """A request: its id (when given), inputs as arrays, the outputs it names with whether
    each goes back binary, and whether the others do."""

    id: Any
    inputs: list[tuple[str, np.ndarray]]
    binary: dict[str, bool]
    binary_default: bool


def _parse(body: bytes, header_length: str | None) -> _Parsed:
    if header_length is None:
        json_end = len(body)
    else:
        try:
            json_end = int(header_length)
        except ValueError:
            json_end = -1
        if not 0 <= json_end <= len(body):
            raise InvalidInputError(
                f"{HEADER_LENGTH}: expected the JSON length, 0..{len(body)} (the body's size), "
                f"got {header_length!r}"
            )
    try:
        header = json.loads(body[:json_end])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"body: expected a JSON inference request: {exc}") from exc
    if not isinstance(header, dict):
        raise InvalidInputError(
            f"body: expected a JSON object (an inference request), got {type(header).__name__}"
        )
    tensors = header.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise InvalidInputError(
            f"inputs: expected a non-empty list of input tensors, got {tensors!r}"[:300]
        )
    view = memoryview(body)
    offset = json_end
    inputs = []
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInputError(
                f"inputs[{index}]: expected an object with a 'name', got {str(tensor)[:200]}"
            )
        name = tensor["name"]
        what = f"input '{name}'"
        dtype = dtype_of(tensor.get("datatype"), what)
        shape = check_shape(tensor.get("shape"), what)
        size = _parameters(tensor, what).get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0:
                raise InvalidInputError(
                    f"{what}: expected binary_data_size as a non-negative integer, got {size!r}"
                )
            if offset + size > len(body):
                raise InvalidInputError(
                    f"{what}: expected {size} bytes of binary data, the body has "
                    f"{len(body) - offset} left (truncated?)"
                )
            array = array_from_bytes(view[offset : offset + size], dtype, shape, what)
            offset += size
        elif "data" in tensor:
            array = array_from_list(tensor["data"], dtype, shape, what)
        else:
            raise InvalidInputError(
                f"{what}: expected 'data' or parameters.binary_data_size, got neither"
            )
        inputs.append((name, array))
    if offset != len(body):
        raise InvalidInputError(
            f"body: {len(body) - offset} bytes after the inputs' binary data "
            f"(binary_data_size adds up to {offset - json_end})"
        )
    default = _parameters(header, "request").get("binary_data_output", False)
    requested = header.get("outputs") or []
    if not isinstance(requested, list):
        raise InvalidInputError(f"outputs: expected a list, got {str(requested)[:200]}")
    binary = {}
    for index, output in enumerate(requested):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidInputError(
                f"outputs[{index}]: expected an object with a 'name', got {str(output)[:200]}"
            )
        what = f"output '{output['name']}'"
        binary[output["name"]] = bool(_parameters(output, what).get("binary_data", default))
    return _Parsed(header.get("id"), inputs, binary, bool(default))


def _parameters(tensor: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError(f"{what}: expected 'parameters' as an object, got {parameters!r}")
    return parameters


def _response(name: str, version: str, parsed: _Parsed, outputs: list[InferOutput]) -> Response:
    binary, default = parsed.binary, parsed.binary_default
    answer: dict[str, Any] = {"model_name": name, "model_version": version or VERSION}
    if parsed.id is not None:
        answer["id"] = parsed.id
    tensors = []
    chunks = []
    for output in outputs:
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.array.shape),
        }
        if binary.get(output.name, default):
            data = raw_bytes(output.array)
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            tensor["data"] = json_data(output.array)
        tensors.append(tensor)
    answer["outputs"] = tensors
    text = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return Response(text, media_type="application/json")
    return Response(
        b"".join([text, *chunks]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(text))},
    )
