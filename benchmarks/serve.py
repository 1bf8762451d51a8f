"""The serve section of ``python -m benchmarks`` (``--sections serve``): what the Open
Inference Protocol server adds to a model, measured with the client users already have
(``tritonclient``) against ``atriva-infer serve`` in its own process, in one run.

1. Per-request overhead. The median latency of a request through the server minus that of
   ``model.run`` on the same model in this process, for a small tensor (the tiny ``a + b``,
   float32 [2, 4]) and a 600 KB image tensor (float32 [1, 3, 224, 224] into a light ResNet),
   over binary HTTP (tritonclient's default), JSON HTTP (``binary_data=False``) and gRPC,
   with one client and with 8 concurrent clients (8 threads calling ``model.run`` for the
   direct figure). Each client encodes its input and decodes the output on every request,
   as a real one does. Rounds interleave the variants (the order rotating) and the figure is
   the median of the per-round differences, so drift between rounds cancels.
2. Throughput. 8 clients (binary HTTP, gRPC) on the throughput model (ResNet-50) against the
   async queue's own ``map`` on the same model in this process (target >= 0.9x); beside it,
   batches of 4 through a dynamic-batch copy of the model: the most ``@serve.batch`` could
   gain over the queue at batch 1.
3. Ray Serve. The same server as a Ray Serve application (``--ray``, 2 replicas, a local
   cluster started for it): the image tensor's overhead over binary HTTP and gRPC, and the
   8-client gRPC throughput against the queue.

Other processes' CPU use is measured during every figure and flagged, as in the other
sections. The models are built here with onnx.helper (:mod:`benchmarks.models`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import report, runtime
from .models import BuiltModel, build_resnet, build_small, build_tiny

__all__ = ["SECTION", "ServeSettings", "main", "run_serve", "serve_tables"]

SECTION = "serve"

CLIENTS = 8  # concurrent clients in the concurrent and throughput figures
PROTOCOLS = ("http_binary", "http_json", "grpc")
BATCH = 4  # the batch the @serve.batch probe forms
OVERHEAD_MS_MAX = 10.0  # a 600 KB image over binary HTTP or gRPC adds single-digit ms
THROUGHPUT_RATIO_MIN = 0.9  # server with 8 clients / the async queue on the same model
#: Throughput rounds last this many times ``seconds``: a heavy model answers few per second.
THROUGHPUT_SPAN = 3
READY_TIMEOUT_S = 300.0  # a Ray cluster on 2 busy cores takes a while
STOP_TIMEOUT_S = 90.0

LABELS = {
    "direct": "model.run(feed) in this process",
    "http_binary": "tritonclient.http, binary tensors (its default)",
    "http_json": "tritonclient.http, binary_data=False (JSON)",
    "grpc": "tritonclient.grpc",
}


@dataclass(frozen=True)
class ServeSettings:
    """How long and how much to measure (``--quick`` shrinks everything)."""

    quick: bool = False
    model: str = "resnet50"  # the throughput model; "small" for smoke runs
    seconds: float = 1.5  # per variant per round
    rounds: int = 5
    image: int = 224  # the image tensor is float32 [1, 3, image, image] (224: 602 KB)
    ray: bool = True
    ray_replicas: int = 2

    @classmethod
    def make(
        cls,
        *,
        quick: bool = False,
        model: str = "resnet50",
        seconds: float | None = None,
        rounds: int | None = None,
    ) -> ServeSettings:
        base = cls(quick=True, seconds=0.5, rounds=2) if quick else cls()
        return cls(
            quick=quick,
            model=model,
            seconds=base.seconds if seconds is None else seconds,
            rounds=base.rounds if rounds is None else rounds,
            image=base.image,
        )

    @classmethod
    def smoke(cls) -> ServeSettings:
        """The quickest form, for tests: small models, one short round, no Ray."""
        return cls(quick=True, model="small", seconds=0.05, rounds=1, image=32, ray=False)


# -- the server under test ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``atriva-infer serve`` (or ``--ray``) in its own process group on loopback."""

    def __init__(self, models: dict[str, Path], backend: str, extra: Sequence[str] = ()) -> None:
        self.models = list(models)
        self.http_port, self.grpc_port = _free_port(), _free_port()
        command = [
            sys.executable,
            "-m",
            "atriva_inference.cli",
            "serve",
            *(f"{name}={path}" for name, path in models.items()),
            "--backend",
            backend,
            "--device",
            "CPU",
            "--host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            str(self.grpc_port),
            *extra,
        ]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until every model answers ready over HTTP and gRPC (or the server died)."""
        import tritonclient.grpc as grpc_client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.log()}")
            try:
                for name in self.models:
                    url = f"http://{self.http_url}/v2/models/{name}/ready"
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        answer.read()
                with grpc_client.InferenceServerClient(self.grpc_url) as client:
                    if all(client.is_model_ready(name) for name in self.models):
                        return
            except (OSError, urllib.error.URLError, grpc_client.InferenceServerException):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server was not ready in {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> int | None:
        """SIGTERM, as an orchestrator stops it; the exit status (None if it had to be
        killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                # our own process group (start_new_session), Ray's workers included
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                self._log.close()
                return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything it left behind
        self._log.close()
        return self.process.returncode


# -- clients ------------------------------------------------------------------------------------
Call = Callable[[], dict[str, np.ndarray]]
#: Opens one client (on the thread that will use it) and yields its request.
Client = Callable[[], contextlib.AbstractContextManager[Call]]


def make_client(
    protocol: str, server: ServerProcess, name: str, feed: dict[str, np.ndarray], outputs: list[str]
) -> Client:
    """One client: each request encodes ``feed``, sends it and decodes every output, as a
    user's does. tritonclient.http's client is opened, used and closed on one thread (its
    gevent hub is per thread)."""

    @contextlib.contextmanager
    def grpc_client() -> Iterator[Call]:
        import tritonclient.grpc as grpc_module

        with grpc_module.InferenceServerClient(server.grpc_url) as client:

            def call() -> dict[str, np.ndarray]:
                inputs = []
                for input_name, array in feed.items():
                    tensor = grpc_module.InferInput(input_name, list(array.shape), "FP32")
                    tensor.set_data_from_numpy(array)
                    inputs.append(tensor)
                result = client.infer(name, inputs)
                return {output: result.as_numpy(output) for output in outputs}

            yield call

    @contextlib.contextmanager
    def http_client() -> Iterator[Call]:
        import tritonclient.http as http_module

        binary = protocol == "http_binary"
        client = http_module.InferenceServerClient(server.http_url, network_timeout=600.0)
        requested = [http_module.InferRequestedOutput(o, binary_data=binary) for o in outputs]

        def call() -> dict[str, np.ndarray]:
            inputs = []
            for input_name, array in feed.items():
                tensor = http_module.InferInput(input_name, list(array.shape), "FP32")
                tensor.set_data_from_numpy(array, binary_data=binary)
                inputs.append(tensor)
            result = client.infer(name, inputs, outputs=requested)
            return {output: result.as_numpy(output) for output in outputs}

        try:
            yield call
        finally:
            client.close()

    return grpc_client if protocol == "grpc" else http_client


def direct_client(model: Any, feed: dict[str, np.ndarray]) -> Client:
    """``model.run`` as a client, for the direct figures."""

    @contextlib.contextmanager
    def opened() -> Iterator[Call]:
        yield lambda: {name: tensor.to_numpy() for name, tensor in model.run(feed).items()}

    return opened


def timed(clients: Sequence[Client], seconds: float) -> tuple[list[float], float]:
    """Each client on its own thread (the caller's for one): opened, one request to warm
    it, then requests until ``seconds`` pass, all threads starting together; every latency
    in seconds, and the wall time until the last one ended."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    ready = threading.Barrier(len(clients))
    clock: dict[str, float] = {}

    def loop(client: Client) -> None:
        mine = []
        try:
            with client() as call:
                call()
                if ready.wait() == 0:
                    clock["started"] = time.perf_counter()
                    clock["deadline"] = clock["started"] + seconds
                ready_again.wait()
                while True:
                    begin = time.perf_counter()
                    call()
                    end = time.perf_counter()
                    mine.append(end - begin)
                    if end >= clock["deadline"]:
                        break
        except BaseException as exc:  # reported below, after every thread ended
            errors.append(exc)
            ready.abort()
            ready_again.abort()
        with lock:
            latencies.extend(mine)

    ready_again = threading.Barrier(len(clients))
    if len(clients) == 1:
        loop(clients[0])
    else:
        threads = [threading.Thread(target=loop, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return latencies, time.perf_counter() - clock["started"]


def _rotations(names: Sequence[str], rounds: int) -> Iterator[list[str]]:
    for index in range(rounds):
        shift = index % len(names)
        yield [*names[shift:], *names[:shift]]


def _agrees(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    return all(
        name in got and np.allclose(got[name], value, rtol=1e-4, atol=1e-5)
        for name, value in expected.items()
    )


# -- the models ---------------------------------------------------------------------------------
def build_models(directory: Path, settings: ServeSettings) -> dict[str, BuiltModel]:
    """The tiny ``a + b``, a light ResNet on the image tensor, the throughput model and its
    dynamic-batch copy (the throughput model's graph with the batch dimension named)."""
    image = build_resnet(
        directory,
        name="image_light",
        blocks=(1, 1, 1, 1),
        width=8,
        image=settings.image,
        classes=10,
    )
    heavy = build_small(directory) if settings.model == "small" else build_resnet(directory)
    proto = onnx.load(str(heavy.path))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    batched_path = directory / f"{heavy.name}_batch.onnx"
    onnx.save(proto, str(batched_path))
    batched = BuiltModel(
        name=f"{heavy.name}_batch",
        path=batched_path,
        inputs={"input": (BATCH, *heavy.inputs["input"][1:])},
        outputs={"output": (BATCH, *heavy.outputs["output"][1:])},
    )
    return {"small": build_tiny(directory), "image": image, "heavy": heavy, "batched": batched}


# -- the figures --------------------------------------------------------------------------------
def _summary(latencies: list[float], wall: float) -> dict[str, Any]:
    values = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "per_s": len(latencies) / wall if wall > 0 else None,
    }


def overhead(
    settings: ServeSettings,
    model: Any,
    built: BuiltModel,
    server: ServerProcess,
    protocols: Sequence[str],
    clients: int,
) -> dict[str, Any]:
    """Latency through the server minus ``model.run``, ``clients`` at a time, interleaved."""
    feeds = [built.make_inputs(seed) for seed in range(clients)]
    outputs = list(built.outputs)
    with direct_client(model, feeds[0])() as call:
        expected = call()
    variants: dict[str, list[Client]] = {
        "direct": [direct_client(model, feed) for feed in feeds],
        **{
            protocol: [make_client(protocol, server, built.name, feed, outputs) for feed in feeds]
            for protocol in protocols
        },
    }
    agrees = {}
    for name, opens in variants.items():
        with opens[0]() as call:
            agrees[name] = _agrees(call(), expected)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    meter = report.LoadMeter()
    for order in _rotations(list(variants), settings.rounds):
        for name in order:
            rounds[name].append(_summary(*timed(variants[name], settings.seconds)))
    found: dict[str, Any] = {
        "clients": clients,
        "input_bytes": sum(feed.nbytes for feed in feeds[0].values()),
        "foreign_cpu_percent": meter.foreign_percent(),
        "variants": {},
    }
    direct = [r["median_ms"] for r in rounds["direct"]]
    for name, results in rounds.items():
        medians = [r["median_ms"] for r in results]
        entry = {
            "median_ms": float(np.median(medians)),
            "per_s": float(np.median([r["per_s"] for r in results])),
            "requests": sum(r["requests"] for r in results),
            "rounds_median_ms": medians,
            "agrees_with_direct": agrees[name],
        }
        if name != "direct":
            entry["overhead_ms"] = float(np.median(np.subtract(medians, direct)))
            entry["ratio"] = float(np.median(np.divide(medians, direct)))
        found["variants"][name] = entry
    return found


def _frames(built: BuiltModel, count: int = CLIENTS) -> list[dict[str, np.ndarray]]:
    return [built.make_inputs(seed) for seed in range(count)]


def queue_throughput(model: Any, frames: list[dict[str, np.ndarray]], seconds: float) -> float:
    """Frames per second through ``create_async_queue().map`` for ``seconds``."""
    with model.create_async_queue() as queue:
        for _ in queue.map(frames):  # warm-up: compile and fill once
            pass
        started = time.perf_counter()
        deadline = started + seconds

        def until_deadline() -> Iterator[dict[str, np.ndarray]]:
            for frame in itertools.cycle(frames):
                if time.perf_counter() >= deadline:
                    return
                yield frame

        count = sum(1 for _ in queue.map(until_deadline()))
        return count / (time.perf_counter() - started)


def throughput(
    settings: ServeSettings,
    model: Any,
    batched_model: Any | None,
    models: dict[str, BuiltModel],
    server: ServerProcess,
    protocols: Sequence[str],
) -> dict[str, Any]:
    """Server with 8 clients vs the async queue on the same model, interleaved; and batches
    of ``BATCH`` through the queue (what ``@serve.batch`` could form)."""
    heavy = models["heavy"]
    frames = _frames(heavy)
    outputs = list(heavy.outputs)
    clients = {
        protocol: [make_client(protocol, server, heavy.name, frame, outputs) for frame in frames]
        for protocol in protocols
    }
    batches = [models["batched"].make_inputs(seed) for seed in range(CLIENTS)]
    names = ["queue", *clients, *(["queue_batch"] if batched_model is not None else [])]
    per_round: dict[str, list[float]] = {name: [] for name in names}
    span = settings.seconds * THROUGHPUT_SPAN
    meter = report.LoadMeter()
    for order in _rotations(names, settings.rounds):
        for name in order:
            if name == "queue":
                per_round[name].append(queue_throughput(model, frames, span))
            elif name == "queue_batch":
                rate = queue_throughput(batched_model, batches, span)
                per_round[name].append(rate * BATCH)
            else:
                latencies, wall = timed(clients[name], span)
                per_round[name].append(len(latencies) / wall)
    queue = per_round["queue"]
    return {
        "model": heavy.name,
        "clients": CLIENTS,
        "foreign_cpu_percent": meter.foreign_percent(),
        "per_s": {name: float(np.median(rates)) for name, rates in per_round.items()},
        "rounds_per_s": per_round,
        "ratio_to_queue": {
            name: float(np.median(np.divide(rates, queue)))
            for name, rates in per_round.items()
            if name != "queue"
        },
    }


def _serve_models(models: dict[str, BuiltModel]) -> dict[str, Path]:
    return {built.name: built.path for key, built in models.items() if key != "batched"}


def run_serve(settings: ServeSettings, backend: str) -> dict[str, Any]:
    """Build the models, start the server, measure; everything the JSON's ``serve`` holds."""
    from atriva_inference import InferenceRuntime

    started = time.perf_counter()
    found: dict[str, Any] = {"settings": asdict(settings), "backend": backend, "labels": LABELS}
    with (
        tempfile.TemporaryDirectory(prefix="atriva-bench-serve-") as directory,
        InferenceRuntime(backend) as rt,
    ):
        models = build_models(Path(directory), settings)
        found["models"] = {
            key: {"name": built.name, "inputs": {k: list(v) for k, v in built.inputs.items()}}
            for key, built in models.items()
        }
        loaded = {key: rt.load_model(built.path, device="CPU") for key, built in models.items()}
        server = ServerProcess(_serve_models(models), backend)
        try:
            server.wait_ready()
            found["overhead"] = {
                f"{key}_{clients}": overhead(
                    settings, loaded[key], models[key], server, PROTOCOLS, clients
                )
                for key in ("small", "image")
                for clients in (1, CLIENTS)
            }
            found["throughput"] = throughput(
                settings,
                loaded["heavy"],
                loaded["batched"],
                models,
                server,
                ("http_binary", "grpc"),
            )
        finally:
            found["server_exit_status"] = server.stop()
        if settings.ray:
            found["ray"] = _ray(settings, backend, models, loaded)
        for model in loaded.values():
            model.close()
    found["elapsed_s"] = time.perf_counter() - started
    return found


def _ray(
    settings: ServeSettings, backend: str, models: dict[str, BuiltModel], loaded: dict[str, Any]
) -> dict[str, Any]:
    """The image overhead and the 8-client throughput through the Ray Serve application."""
    try:
        import ray  # noqa: F401  (only whether it is installed)
    except ImportError:
        return {"skipped": "ray is not installed (pip install 'atriva-inference[ray]')"}
    launched = time.perf_counter()
    server = ServerProcess(
        _serve_models(models), backend, ("--ray", "--replicas", str(settings.ray_replicas))
    )
    try:
        server.wait_ready()
        found: dict[str, Any] = {
            "replicas": settings.ray_replicas,
            "start_s": time.perf_counter() - launched,
        }
        found["overhead"] = {
            f"image_{clients}": overhead(
                settings, loaded["image"], models["image"], server, ("http_binary", "grpc"), clients
            )
            for clients in (1, CLIENTS)
        }
        found["throughput"] = throughput(settings, loaded["heavy"], None, models, server, ("grpc",))
    finally:
        status = server.stop()
    found["server_exit_status"] = status
    return found


# -- the report ---------------------------------------------------------------------------------
def _overhead_rows(overheads: dict[str, Any], prefix: str = "") -> list[list[Any]]:
    rows = []
    for key, cell in overheads.items():
        tensor = key.rsplit("_", 1)[0]
        size = cell["input_bytes"]
        direct = cell["variants"]["direct"]
        for name, entry in cell["variants"].items():
            if name == "direct":
                continue
            rows.append(
                [
                    f"{prefix}{tensor} ({size / 1e3:.0f} KB)"
                    if size >= 1e3
                    else f"{prefix}{tensor} ({size} B)",
                    name,
                    cell["clients"],
                    direct["median_ms"],
                    entry["median_ms"],
                    entry["overhead_ms"],
                    entry["ratio"],
                    entry["per_s"],
                    "yes" if entry["agrees_with_direct"] else "NO",
                ]
            )
    return rows


def _throughput_rows(result: dict[str, Any], prefix: str = "") -> list[list[Any]]:
    return [
        [f"{prefix}{name}", result["per_s"][name], result["ratio_to_queue"].get(name)]
        for name in result["per_s"]
    ]


def serve_tables(found: dict[str, Any]) -> str:
    """The section's tables, as printed and as docs/serving-scale-out.md shows them."""
    headers = [
        "tensor",
        "protocol",
        "clients",
        "direct ms",
        "server ms",
        "overhead ms",
        "x direct",
        "req/s",
        "same answer",
    ]
    rows = _overhead_rows(found["overhead"])
    ray = found.get("ray", {})
    if "overhead" in ray:
        rows += _overhead_rows(ray["overhead"], "ray: ")
    lines = [
        f"== serve ({found['backend']}): per-request overhead over model.run "
        "(median of per-round differences) ==",
        report.table(headers, rows),
        "",
        f"== serve: throughput with {CLIENTS} clients on {found['throughput']['model']} "
        "vs the async queue in-process ==",
    ]
    rows = _throughput_rows(found["throughput"])
    if "throughput" in ray:
        rows += [row for row in _throughput_rows(ray["throughput"], "ray: ") if row[2] is not None]
    lines.append(report.table(["path", "inferences/s", "x queue"], rows))
    if "queue_batch" in found["throughput"]["per_s"]:
        lines.append(
            f"  (queue_batch: batches of {BATCH} through a dynamic-batch copy, in images/s: "
            "the most @serve.batch could form)"
        )
    if "skipped" in ray:
        lines.append(f"  ray: skipped ({ray['skipped']})")
    elif ray:
        lines.append(
            f"  ray: {ray['replicas']} replicas, ready {ray['start_s']:.0f} s after launch"
        )
    return "\n".join(lines)


def checks_for(found: dict[str, Any]) -> list[dict[str, Any]]:
    backend = found["backend"]
    checks = []
    for clients in (1, CLIENTS):
        cell = found["overhead"][f"image_{clients}"]["variants"]
        for protocol in ("http_binary", "grpc"):
            checks.append(
                runtime._check(
                    backend,
                    f"serve: image {protocol} overhead, {clients} client(s)",
                    cell[protocol]["overhead_ms"],
                    "<",
                    OVERHEAD_MS_MAX,
                    "ms",
                    2,
                )
            )
    for protocol in ("http_binary", "grpc"):
        checks.append(
            runtime._check(
                backend,
                f"serve: {CLIENTS}-client {protocol} throughput / async queue",
                found["throughput"]["ratio_to_queue"][protocol],
                ">=",
                THROUGHPUT_RATIO_MIN,
            )
        )
    agree = all(
        entry["agrees_with_direct"]
        for cell in found["overhead"].values()
        for entry in cell["variants"].values()
    )
    checks.append(
        runtime._check(backend, "serve: every answer == model.run", float(agree), ">=", 1)
    )
    for check in checks:
        check["section"] = "serve"
    return checks


def _noisy(found: dict[str, Any]) -> list[str]:
    parts = [(f"overhead {key}", cell) for key, cell in found["overhead"].items()]
    parts.append(("throughput", found["throughput"]))
    ray = found.get("ray", {})
    parts += [(f"ray overhead {key}", cell) for key, cell in ray.get("overhead", {}).items()]
    if "throughput" in ray:
        parts.append(("ray throughput", ray["throughput"]))
    return [
        f"serve {what} ({cell['foreign_cpu_percent']:.0f}%)"
        for what, cell in parts
        if (cell["foreign_cpu_percent"] or 0) > runtime.FOREIGN_WARN_PERCENT
    ]


# -- the command ----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None, document: dict[str, Any] | None = None) -> int:
    """Run the section when ``--sections`` names it; add it to ``document`` (or to the JSON
    the sections before it wrote in this run, or a new one) and write the JSON. The first
    of ``--backends`` serves; ``--model`` picks the throughput model."""
    args = runtime.parse_args(argv)
    if SECTION not in args.sections:
        return 0
    if document is None:
        document = runtime.section_document(args, argv, SECTION, {"runtime", "frames", "pipeline"})
    settings = ServeSettings.make(
        quick=args.quick, model=args.model, seconds=args.seconds, rounds=args.rounds
    )
    backend = args.backends[0]
    found = run_serve(settings, backend)
    print(serve_tables(found) + "\n", flush=True)
    checks = checks_for(found)
    document["sections"] = list(args.sections)
    document[SECTION] = found
    document["checks"] = [*document.get("checks", []), *checks]
    misses = [c for c in checks if c["result"] != "PASS"]
    print("== serve checks ==")
    print(runtime.checks_table(checks))
    print(
        f"\nserve: {len(checks) - len(misses)} PASS, {len(misses)} MISS; {found['elapsed_s']:.0f} s"
    )
    noisy = _noisy(found)
    if noisy:
        print(
            "WARNING: other processes used the CPU while these were measured: "
            + ", ".join(noisy)
            + ". Their figures are skewed; rerun on a quiet machine."
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(runtime._jsonable(document), out, indent=2)
        out.write("\n")
    print(f"wrote {args.json}")
    return 1 if (args.strict and misses) else 0
