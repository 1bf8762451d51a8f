"""The server's own errors, and the HTTP status every error answers with.

Bad requests raise the library's :class:`~atriva_inference.errors.InvalidInputError`, as
``Model.run`` does; the server adds an unknown model and a full queue.
"""

from __future__ import annotations

from ..errors import InferenceRuntimeError, InvalidInputError, ModelClosedError

__all__ = ["ModelNotFoundError", "ServerBusyError", "http_status"]


class ModelNotFoundError(InferenceRuntimeError, LookupError):
    """The request names a model (or version) this server does not serve."""


class ServerBusyError(InferenceRuntimeError):
    """More requests wait for the model than the server's ``max_queue``, or it is draining."""


def http_status(error: BaseException) -> int:
    """404 unknown model, 400 bad request, 503 busy or closing, 500 anything else."""
    if isinstance(error, ModelNotFoundError):
        return 404
    if isinstance(error, InvalidInputError):
        return 400
    if isinstance(error, (ServerBusyError, ModelClosedError)):
        return 503
    return 500
