"""``atriva-infer serve``: serve models over the Open Inference Protocol (KServe v2).

::

    atriva-infer serve detector.xml classifier.onnx
    atriva-infer serve faces=centerface.onnx --dynamic --host 0.0.0.0 --max-queue 32
    atriva-infer serve model.xml --ray --replicas 2 [--ray-address ray://head:10001]

Each MODEL is served under its file stem, or as ``NAME=PATH`` (``--name NAME=PATH`` says the
same). REST listens on ``--http-port`` (default 8000) and gRPC on ``--grpc-port`` (8001),
on ``--host`` only (default 127.0.0.1: this machine). A line on stdout says what listens
where. SIGTERM or Ctrl-C drains (admitted requests finish, new ones get 503 / UNAVAILABLE)
and exits 0. ``--ray`` serves the same application on a Ray Serve cluster (extra ``[ray]``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..backends import install_hint
from ..errors import BackendUnavailableError, InvalidInputError
from .options import PROG, add_load_options, port, positive_int

__all__ = ["add_command", "run"]


def add_command(commands: Any) -> None:
    """Register the ``serve`` subcommand on the ``atriva-infer`` parser."""
    from ..serve.config import (
        DEFAULT_GRPC_PORT,
        DEFAULT_HOST,
        DEFAULT_HTTP_PORT,
        DEFAULT_MAX_QUEUE,
    )

    serve = commands.add_parser(
        "serve",
        help="serve models over the Open Inference Protocol (KServe v2: REST and gRPC)",
        description="Load each MODEL and serve it over the Open Inference Protocol (KServe "
        "v2), REST and gRPC, as Triton does: unmodified tritonclient code works against it. "
        "A model's name is its file stem unless given as NAME=PATH.",
        epilog="SIGTERM or Ctrl-C drains in-flight requests, then exits 0. Errors before "
        "serving (arguments, a model, a port in use) print one line and exit 2.",
    )
    serve.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="model file (.xml OpenVINO IR or .onnx), or NAME=PATH",
    )
    serve.add_argument(
        "--name",
        dest="names",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve the model at PATH as NAME; repeat for more models",
    )
    add_load_options(serve)
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"the address to listen on, and only it (default: {DEFAULT_HOST}; 0.0.0.0 for "
        "every IPv4 interface)",
    )
    serve.add_argument(
        "--http-port",
        type=port,
        default=DEFAULT_HTTP_PORT,
        metavar="PORT",
        help=f"REST port (default: {DEFAULT_HTTP_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--grpc-port",
        type=port,
        default=DEFAULT_GRPC_PORT,
        metavar="PORT",
        help=f"gRPC port (default: {DEFAULT_GRPC_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--max-queue",
        type=positive_int,
        default=DEFAULT_MAX_QUEUE,
        metavar="N",
        help="requests per model that may wait for it; more get HTTP 503 / gRPC UNAVAILABLE "
        f"(default: {DEFAULT_MAX_QUEUE})",
    )
    serve.add_argument(
        "--ray",
        action="store_true",
        help="serve on Ray Serve (extra [ray]): a local Ray cluster, or --ray-address's",
    )
    serve.add_argument(
        "--replicas", type=positive_int, metavar="N", help="Ray Serve replicas (with --ray)"
    )
    serve.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join the Ray cluster at ADDR instead of starting one (with --ray)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``atriva-infer serve``; return the exit status."""
    if not args.ray and (args.replicas is not None or args.ray_address is not None):
        raise InvalidInputError("--replicas and --ray-address go with --ray")
    try:
        from ..serve import ServeConfig, Server, parse_model_specs
    except ImportError as exc:
        raise BackendUnavailableError(
            f"serving needs the [serve] extra ({exc}): {install_hint('serve')}"
        ) from exc
    specs = [*args.models, *args.names]
    if not specs:
        raise InvalidInputError("serve: expected at least one MODEL (or --name NAME=PATH)")
    config = ServeConfig(
        models=parse_model_specs(specs),
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        max_queue=args.max_queue,
        dynamic=args.dynamic,
        cache_dir=args.cache_dir,
    )
    if args.ray:
        try:
            from ..serve import ray as ray_serve
        except ImportError as exc:
            raise BackendUnavailableError(
                f"--ray needs the [ray] extra ({exc}): {install_hint('ray')}"
            ) from exc
        replicas = 1 if args.replicas is None else args.replicas
        return ray_serve.run(config, replicas=replicas, address=args.ray_address)
    return Server(config).serve_forever(
        announce=lambda line: print(f"{PROG} serve: {line}", flush=True)
    )
