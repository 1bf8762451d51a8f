"""Server: the REST and gRPC front ends on one event loop, for embedding, tests and the CLI.

``start()`` binds the ports (0 picks free ones; :attr:`Server.http_port` and
:attr:`Server.grpc_port` say which), then serves on a background thread; ``stop()`` drains
(new requests get 503 / UNAVAILABLE, admitted ones finish) and shuts both down.
:meth:`Server.serve_forever` does the same around SIGTERM/SIGINT, for the command line.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from typing import Any

import grpc
import uvicorn

from ..errors import InferenceRuntimeError, InvalidInputError
from .config import DEFAULT_GRPC_PORT, DEFAULT_HOST, DEFAULT_HTTP_PORT, ServeConfig
from .grpc_service import InferenceServicer, add_GRPCInferenceServiceServicer_to_server
from .repository import ModelRepository
from .rest import create_app

__all__ = ["DRAIN_TIMEOUT", "MAX_MESSAGE_BYTES", "Server"]

#: Seconds ``stop()`` waits for admitted requests by default.
DRAIN_TIMEOUT = 30.0
#: The largest gRPC message either way (gRPC's own default, 4 MiB, is one 1080p frame).
MAX_MESSAGE_BYTES = 1 << 30


class Server:
    """Serve a :class:`ServeConfig` (its models are loaded at ``start()`` and closed at
    ``stop()``) or a :class:`ModelRepository` (which stays the caller's).

    ``host``, ``http_port`` and ``grpc_port`` override the config's (with a repository they
    default to ``127.0.0.1``, 8000 and 8001); a port of 0 picks a free one. A config port of
    ``None`` leaves that front end off.
    """

    def __init__(
        self,
        source: ServeConfig | ModelRepository,
        *,
        host: str | None = None,
        http_port: int | None = None,
        grpc_port: int | None = None,
    ) -> None:
        if isinstance(source, ServeConfig):
            self._config, self._repository = source, None
            defaults = (source.host, source.http_port, source.grpc_port)
        elif isinstance(source, ModelRepository):
            self._config, self._repository = None, source
            defaults = (DEFAULT_HOST, DEFAULT_HTTP_PORT, DEFAULT_GRPC_PORT)
        else:
            raise InvalidInputError(
                f"Server: expected a ServeConfig or a ModelRepository, got {type(source).__name__}"
            )
        self.host = host if host is not None else defaults[0]
        self._ports = {
            "http": http_port if http_port is not None else defaults[1],
            "grpc": grpc_port if grpc_port is not None else defaults[2],
        }
        self._bound: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._owns_repository = False

    # -- what listens where ---------------------------------------------------------------
    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            raise InferenceRuntimeError("the server is not started: its models load at start()")
        return self._repository

    @property
    def http_port(self) -> int | None:
        """The bound HTTP port once started (``None``: no HTTP front end)."""
        return self._bound.get("http", self._ports["http"])

    @property
    def grpc_port(self) -> int | None:
        """The bound gRPC port once started (``None``: no gRPC front end)."""
        return self._bound.get("grpc", self._ports["grpc"])

    def describe(self) -> str:
        """The startup line: the models, and what listens where."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        where = []
        if self.http_port is not None:
            where.append(f"HTTP on http://{host}:{self.http_port} (metrics at /metrics)")
        if self.grpc_port is not None:
            where.append(f"gRPC on {host}:{self.grpc_port}")
        return f"serving {self.repository.describe()}; {', '.join(where)}"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Server:
        """Load the models (from a config), bind, and serve on a background thread; raises
        here when a model or a port fails. Returns the server."""
        if self._thread is not None:
            raise InferenceRuntimeError("the server is already started; stop() it first")
        if self._repository is None:
            assert self._config is not None
            self._repository = ModelRepository.from_config(self._config)
            self._owns_repository = True
        http_socket = None
        try:
            if self._ports["http"] is not None:
                http_socket = _bind(self.host, self._ports["http"])
                self._bound["http"] = http_socket.getsockname()[1]
            self._started.clear()
            self._failure = None
            self._thread = threading.Thread(
                target=self._run, args=(http_socket,), name="atriva-serve", daemon=True
            )
            self._thread.start()
            self._started.wait()
            if self._failure is not None:
                self._thread.join()
                self._thread = None
                raise self._failure
        except BaseException:
            if http_socket is not None:
                http_socket.close()
            self._bound.clear()
            if self._owns_repository:
                self._repository.close()
                self._repository = None
            raise
        return self

    def stop(self, timeout: float | None = DRAIN_TIMEOUT) -> bool:
        """Drain (new requests are refused, those admitted finish, for up to ``timeout``
        seconds), then shut both front ends down. Returns whether everything admitted
        finished. Idempotent."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return True
        drained = self.repository.drain(timeout)
        if loop is not None and stop_event is not None:
            loop.call_soon_threadsafe(stop_event.set)
        thread.join()
        self._thread = None
        self._bound.clear()
        if self._owns_repository:
            self.repository.close()
            self._repository = None
        return drained

    def serve_forever(self, *, announce: Any = print, timeout: float | None = DRAIN_TIMEOUT) -> int:
        """Start, announce the startup line, serve until SIGTERM or SIGINT, then drain and
        stop. Returns 0 when everything admitted finished, 1 otherwise. Main thread only."""
        stop = threading.Event()
        previous = {
            number: signal.signal(number, lambda *_: stop.set())
            for number in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            announce(self.describe())
            stop.wait()
            return 0 if self.stop(timeout) else 1
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the event loop's thread ------------------------------------------------------------
    def _run(self, http_socket: socket.socket | None) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(http_socket))
        except BaseException as exc:
            if not self._started.is_set():
                self._failure = exc
        finally:
            self._started.set()
            loop.close()
            self._loop = None

    async def _serve(self, http_socket: socket.socket | None) -> None:
        self._stop_event = asyncio.Event()
        repository = self.repository
        grpc_server = None
        http_server = http_task = None
        try:
            if self._ports["grpc"] is not None:
                grpc_server = grpc.aio.server(
                    options=[
                        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.so_reuseport", 0),  # a port in use is an error, not shared
                    ]
                )
                add_GRPCInferenceServiceServicer_to_server(
                    InferenceServicer(repository), grpc_server
                )
                host = f"[{self.host}]" if ":" in self.host else self.host
                try:
                    port = grpc_server.add_insecure_port(f"{host}:{self._ports['grpc']}")
                except RuntimeError as exc:
                    raise InferenceRuntimeError(
                        f"gRPC: cannot listen on {host}:{self._ports['grpc']}: {exc}"
                    ) from exc
                self._bound["grpc"] = port
                await grpc_server.start()
            if http_socket is not None:
                config = uvicorn.Config(
                    create_app(repository),
                    log_config=None,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=5,
                )
                http_server = uvicorn.Server(config)
                http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]))
                while not http_server.started and not http_task.done():
                    await asyncio.sleep(0.005)
                if http_task.done():
                    http_task.result()
                    raise InferenceRuntimeError("HTTP: the server stopped while starting")
            self._started.set()
            await self._stop_event.wait()
        finally:
            if http_server is not None and http_task is not None:
                http_server.should_exit = True
                await http_task
            if grpc_server is not None:
                await grpc_server.stop(grace=5)
            if http_socket is not None:
                http_socket.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on exactly ``host`` (never a wider address)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InferenceRuntimeError(f"HTTP: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InferenceRuntimeError(f"HTTP: cannot listen on {host}:{port}: {exc}") from exc
    return sock
