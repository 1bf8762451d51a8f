"""The server as a Ray Serve application (extra ``[ray]``): the same FastAPI app and gRPC
servicer as ``atriva-infer serve``, in replicas that each load their models once and hold
them for their life, behind Ray Serve's HTTP and gRPC proxies.

Three ways in:

* ``atriva-infer serve MODEL... --ray --replicas N [--ray-address ADDR]`` calls :func:`run`,
  which starts a local Ray cluster (or joins the one at ``ADDR``), serves until SIGINT or
  SIGTERM, then shuts down;
* ``serve run atriva_inference.serve.ray:app_builder models=resnet=/models/resnet.xml
  replicas=2`` (or a Serve config file that names :func:`app_builder`; the file is where
  Ray takes the gRPC port and :data:`GRPC_SERVICER_FUNCTION` from);
* :func:`build_app` for your own ``serve.run``.

Requests are not batched across clients (no ``@serve.batch``): each runs on its replica's
async queue as it arrives, as on the single-box server. docs/serving-scale-out.md has the
measurement behind that choice.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import BackendUnavailableError, InvalidInputError
from .config import DEFAULT_MAX_QUEUE, ServeConfig, parse_model_specs

try:
    import ray
    from ray import serve
    from ray.serve.config import HTTPOptions, gRPCOptions
except ImportError as exc:
    raise BackendUnavailableError(
        "the Ray Serve application needs Ray Serve, which is not installed: "
        "pip install 'atriva-inference[ray]'"
    ) from exc

from .grpc_service import InferenceServicer
from .repository import ModelRepository
from .rest import create_app

__all__ = [
    "APP_NAME",
    "GRPC_SERVICER_FUNCTION",
    "OpenInferenceDeployment",
    "app_builder",
    "build_app",
    "run",
]

#: The Serve application's name (``serve status``, ``serve.delete``).
APP_NAME = "atriva-inference"
#: What Ray's gRPC proxy mounts (``grpc_options.grpc_servicer_functions``).
GRPC_SERVICER_FUNCTION = (
    "atriva_inference.serve.grpc_service.add_GRPCInferenceServiceServicer_to_server"
)
#: Seconds a replica being stopped gets to finish the requests it holds (Ray's default: 20).
DRAIN_S = 30.0


@serve.deployment(graceful_shutdown_timeout_s=DRAIN_S)
@serve.ingress()
class OpenInferenceDeployment:
    """One replica: the models of a :class:`ServeConfig`, loaded once in ``__init__`` and
    closed when Ray stops the replica; REST through :func:`create_app`, gRPC through the
    :class:`InferenceServicer` methods Ray's proxy calls by name."""

    def __init__(self, config: ServeConfig) -> None:
        self._repository = ModelRepository.from_config(config)
        self._servicer = InferenceServicer(self._repository)

    def __serve_build_asgi_app__(self) -> Any:  # Ray calls it once, after __init__
        return create_app(self._repository)

    def __del__(self) -> None:
        # Ray has let the requests in flight finish (graceful_shutdown_timeout_s).
        repository = getattr(self, "_repository", None)
        if repository is not None:
            repository.close()

    # Ray's gRPC proxy calls the replica method named like the RPC, with its own context
    # (set_code/set_details, which the servicer uses, and no abort).
    async def ServerLive(self, request: Any, grpc_context: Any) -> Any:  # noqa: N802
        return await self._servicer.ServerLive(request, grpc_context)

    async def ServerReady(self, request: Any, grpc_context: Any) -> Any:  # noqa: N802
        return await self._servicer.ServerReady(request, grpc_context)

    async def ServerMetadata(self, request: Any, grpc_context: Any) -> Any:  # noqa: N802
        return await self._servicer.ServerMetadata(request, grpc_context)

    async def ModelReady(self, request: Any, grpc_context: Any) -> Any:  # noqa: N802
        return await self._servicer.ModelReady(request, grpc_context)

    async def ModelMetadata(self, request: Any, grpc_context: Any) -> Any:  # noqa: N802
        return await self._servicer.ModelMetadata(request, grpc_context)

    async def ModelInfer(self, request: Any, grpc_context: Any) -> Any:  # noqa: N802
        return await self._servicer.ModelInfer(request, grpc_context)


def build_app(
    config: ServeConfig,
    *,
    replicas: int = 1,
    autoscaling: Mapping[str, Any] | None = None,
    replica_cpus: float = 1.0,
) -> Any:
    """The Serve application (``serve.run(build_app(config))``).

    ``replicas`` fixed replicas, or ``autoscaling`` (Ray's ``autoscaling_config``:
    ``min_replicas``, ``max_replicas``, ``target_ongoing_requests``, ...) instead.
    Each replica reserves ``replica_cpus`` CPUs, which is how Ray spreads them over nodes.
    A replica takes up to ``config.max_queue`` requests at once (its models refuse more
    with 503 / UNAVAILABLE) and Ray's proxies hold as many more before they refuse.
    """
    if autoscaling is None and (
        isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1
    ):
        raise InvalidInputError(f"replicas: expected a positive integer, got {replicas!r}")
    if isinstance(replica_cpus, bool) or not isinstance(replica_cpus, (int, float)):
        raise InvalidInputError(f"replica_cpus: expected a number >= 0, got {replica_cpus!r}")
    if replica_cpus < 0:
        raise InvalidInputError(f"replica_cpus: expected a number >= 0, got {replica_cpus!r}")
    scale: dict[str, Any] = (
        {"num_replicas": replicas}
        if autoscaling is None
        else {"num_replicas": "auto", "autoscaling_config": dict(autoscaling)}
    )
    return OpenInferenceDeployment.options(
        **scale,
        max_ongoing_requests=config.max_queue,
        max_queued_requests=config.max_queue,
        ray_actor_options={"num_cpus": replica_cpus},
    ).bind(config)


def app_builder(args: Mapping[str, Any]) -> Any:
    """For ``serve run atriva_inference.serve.ray:app_builder KEY=VALUE...`` and the
    ``import_path`` of a Serve config file.

    ``models`` (required): comma-separated ``PATH`` or ``NAME=PATH``; ``backend``, ``device``,
    ``precision``, ``max_queue``; ``replicas`` (default 1) or ``min_replicas`` /
    ``max_replicas`` / ``target_ongoing_requests`` (autoscaling); ``replica_cpus`` (1).
    The ports are Ray's (``serve run``'s options or the config file's ``http_options`` /
    ``grpc_options``), not these.
    """
    known = {
        "models",
        "backend",
        "device",
        "precision",
        "max_queue",
        "replicas",
        "min_replicas",
        "max_replicas",
        "target_ongoing_requests",
        "replica_cpus",
    }
    unknown = sorted(set(args) - known)
    if unknown:
        raise InvalidInputError(
            f"app_builder: expected arguments among {', '.join(sorted(known))}, "
            f"got {', '.join(unknown)}"
        )
    specs = args.get("models")
    if not specs:
        raise InvalidInputError("app_builder: expected models=PATH[,NAME=PATH...], got none")
    if isinstance(specs, str):
        specs = [spec.strip() for spec in specs.split(",") if spec.strip()]
    config = ServeConfig(
        models=parse_model_specs(specs),
        backend=args.get("backend"),
        device=args.get("device", "AUTO"),
        precision=args.get("precision"),
        max_queue=_integer(args, "max_queue", DEFAULT_MAX_QUEUE),
    )
    scaling = {
        key: _number(args[key], key)
        for key in ("min_replicas", "max_replicas", "target_ongoing_requests")
        if key in args
    }
    return build_app(
        config,
        replicas=_integer(args, "replicas", 1),
        autoscaling=scaling or None,
        replica_cpus=_number(args.get("replica_cpus", 1.0), "replica_cpus"),
    )


def run(config: ServeConfig, *, replicas: int = 1, address: str | None = None) -> int:
    """Serve ``config`` on Ray Serve until SIGINT or SIGTERM; return the exit status (0).

    ``address=None`` starts a local Ray cluster for this process (and stops it at the end);
    an address (``"ray://head:10001"``, ``"head:6379"``, ``"auto"``) joins that cluster and
    leaves it running, removing only this application. REST listens on ``config.host`` and
    ``config.http_port``; gRPC on ``config.grpc_port`` of every interface (Ray's gRPC proxy
    binds them all). A port of 0 is resolved to a free one here, so it can be printed.
    """
    if config.http_port is None:
        raise InvalidInputError(
            "http_port: Ray Serve always serves HTTP; expected a port, got None"
        )
    config = replace(
        config,
        http_port=config.http_port or _free_port(config.host),
        grpc_port=None if config.grpc_port is None else config.grpc_port or _free_port("::"),
    )
    stop = threading.Event()
    started_cluster = address is None
    if started_cluster:
        # One replica per CPU at most would leave replicas unscheduled on a small machine.
        # "local": a new cluster even where `ray start` left one (or its stale address file)
        # or RAY_ADDRESS names one; ray.init() would join that instead.
        ray.init(address="local", include_dashboard=False, configure_logging=False)
        replica_cpus = min(1.0, (os.cpu_count() or 1) / replicas)
    else:
        ray.init(address=address, configure_logging=False)
        replica_cpus = 1.0
    # ray.init installs its own SIGTERM handler (sys.exit); ours lets the shutdown below run.
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        serve.start(
            http_options=HTTPOptions(host=config.host, port=config.http_port),
            grpc_options=gRPCOptions(
                port=config.grpc_port or 0,
                grpc_servicer_functions=[]
                if config.grpc_port is None
                else [GRPC_SERVICER_FUNCTION],
            ),
        )
        serve.run(
            build_app(config, replicas=replicas, replica_cpus=replica_cpus),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
        )
        grpc = "off" if config.grpc_port is None else f"[::]:{config.grpc_port}"
        print(
            f"atriva-infer serve on Ray Serve ({replicas} replica(s), "
            f"{'local cluster' if started_cluster else f'cluster {address}'}): "
            f"models {', '.join(config.models)}; REST http://{config.host}:{config.http_port}, "
            f"gRPC {grpc}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        print("atriva-infer serve: stopping (draining requests in flight)", flush=True)
    finally:
        if started_cluster:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
        ray.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _integer(args: Mapping[str, Any], key: str, default: int) -> int:
    value = args.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{key}: expected an integer, got {value!r}") from exc


def _number(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{key}: expected a number, got {value!r}") from exc
