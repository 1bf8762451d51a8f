"""The Open Inference Protocol over gRPC (service ``inference.GRPCInferenceService``), for
grpc.aio servers and anything that mounts servicers the way generated code does.

Inputs come as ``raw_input_contents`` (one entry per input: its bytes, read with
``np.frombuffer``) or as typed ``contents``; outputs go back as ``raw_output_contents``.
Errors set the status a client expects: NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE or
INTERNAL, with the message in the details.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from ..errors import InferenceRuntimeError, InvalidInputError
from ._proto import open_inference_grpc_pb2 as pb
from .errors import http_status
from .protocol import (
    BYTES,
    array_from_bytes,
    check_shape,
    dtype_of,
    raw_bytes,
    strings_from_items,
)
from .repository import VERSION, ModelRepository

__all__ = [
    "SERVICE_NAME",
    "InferenceServicer",
    "add_GRPCInferenceServiceServicer_to_server",
    "pb",
]

SERVICE_NAME = "inference.GRPCInferenceService"

_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    400: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    500: grpc.StatusCode.INTERNAL,
}

#: The typed ``contents`` field of each datatype (FP16 and BF16 travel raw only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

Handler = Callable[[Any, Any], Awaitable[Any]]


def _answers(empty: Callable[[], Any]) -> Callable[[Handler], Handler]:
    """Turn the library's typed errors into the gRPC status (and details) they mean.

    The status is set on the context rather than raised with ``abort``, so the servicer
    also runs behind proxies whose context has no ``abort`` (Ray Serve's).
    """

    def wrap(method: Handler) -> Handler:
        async def handle(self: Any, request: Any, context: Any) -> Any:
            try:
                return await method(self, request, context)
            except InferenceRuntimeError as exc:
                context.set_code(_CODES[http_status(exc)])
                context.set_details(str(exc))
                return empty()
            except Exception as exc:  # a bug: still an answer, and the server stays up
                context.set_code(grpc.StatusCode.INTERNAL)
                context.set_details(f"internal error: {type(exc).__name__}: {exc}")
                return empty()

        handle.__name__ = method.__name__
        handle.__doc__ = method.__doc__
        return handle

    return wrap


class InferenceServicer:
    """The six OIP methods on a :class:`ModelRepository`. Creating it starts nothing;
    :func:`add_GRPCInferenceServiceServicer_to_server` mounts it on a server."""

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        return pb.ServerLiveResponse(live=self.repository.live)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=self.repository.ready)

    @_answers(pb.ModelReadyResponse)
    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ModelReadyResponse(
            ready=self.repository.model_ready(request.name, request.version)
        )

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerMetadataResponse(**self.repository.server_metadata())

    @_answers(pb.ModelMetadataResponse)
    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        metadata = self.repository.model_metadata(request.name, request.version)
        response = pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"]
        )
        for field in ("inputs", "outputs"):
            for tensor in metadata[field]:
                getattr(response, field).add(**tensor)
        return response

    @_answers(pb.ModelInferResponse)
    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        # An unknown model is NOT_FOUND whatever the tensors.
        self.repository.model_metadata(request.model_name, request.model_version)
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidInputError(
                f"raw_input_contents: expected one entry per input ({len(request.inputs)}), "
                f"got {len(raw)}"
            )
        inputs = []
        for index, tensor in enumerate(request.inputs):
            what = f"input '{tensor.name}'"
            dtype = dtype_of(tensor.datatype, what)
            shape = check_shape(list(tensor.shape), what)
            if raw:
                array = array_from_bytes(raw[index], dtype, shape, what)
            elif tensor.HasField("contents"):
                array = _from_contents(tensor.contents, tensor.datatype, dtype, shape, what)
            else:
                raise InvalidInputError(
                    f"{what}: expected raw_input_contents or contents, got neither"
                )
            inputs.append((tensor.name, array))
        outputs = await self.repository.infer(
            request.model_name,
            request.model_version,
            inputs,
            [output.name for output in request.outputs] or None,
        )
        response = pb.ModelInferResponse(
            model_name=request.model_name,
            model_version=request.model_version or VERSION,
            id=request.id,
        )
        for output in outputs:
            response.outputs.add(
                name=output.name, datatype=output.datatype, shape=output.array.shape
            )
        response.raw_output_contents.extend(raw_bytes(output.array) for output in outputs)
        return response


def _from_contents(
    contents: Any, datatype: str, dtype: np.dtype, shape: tuple[int, ...], what: str
) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidInputError(
            f"{what}: {datatype} data goes in raw_input_contents (contents has no field for it)"
        )
    values = getattr(contents, field)
    count = int(np.prod(shape))
    if len(values) != count:
        raise InvalidInputError(
            f"{what}: expected {count} values in contents.{field} for {datatype}{list(shape)}, "
            f"got {len(values)}"
        )
    if datatype == BYTES:
        return strings_from_items(values, shape, what)
    try:
        return np.fromiter(values, dtype, count).reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{what}: contents.{field} does not fit {datatype}: {exc}") from exc


_METHODS = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


def add_GRPCInferenceServiceServicer_to_server(servicer: Any, server: Any) -> None:  # noqa: N802
    """Mount ``servicer``'s methods on ``server`` (a ``grpc.aio`` server, or a proxy that
    takes generic handlers), under ``/inference.GRPCInferenceService/<Method>``. The name and
    signature are those of grpcio-tools' generated code, which proxies look for."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in _METHODS.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
