"""The on-disk engine cache: where built engines are kept, the key they are found by, and
writing an entry so that no reader sees half of it. Pure, tested without TensorRT.

A second load deserialises instead of building; a damaged entry is rebuilt, never fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .profiles import Profile

__all__ = ["engine_cache_dir", "engine_cache_key", "write_atomically"]

#: Bumped when what the cache stores changes meaning, so old entries are not reused.
_CACHE_FORMAT = 2


def _profiles_json(profiles: Sequence[Profile]) -> list[list[list[Any]]]:
    return [
        [[name, list(r.min), list(r.opt), list(r.max)] for name, r in sorted(profile.items())]
        for profile in profiles
    ]


def engine_cache_key(
    model_bytes: bytes,
    trt_version: str,
    gpu: Any,
    precision: str,
    profiles: Sequence[Profile],
    *,
    profiling: bool = False,
    flags: Iterable[str] = (),
) -> str:
    """The file name (hex) of a built engine in the cache.

    ``gpu`` is a ``cuda.GpuProperties`` (or anything with ``name`` and
    ``compute_capability``): an engine is specific to the TensorRT version and the GPU it
    was built on, and to the precision and profiles asked for. ``profiling`` (detailed
    layer information built in) changes the engine too, and so do ``flags``, the network
    and builder flags of the build (strong typing, FP16 ...): one precision can be reached
    by different builds.
    """
    digest = hashlib.sha256()
    digest.update(len(model_bytes).to_bytes(8, "big"))  # model bytes never run into the rest
    digest.update(model_bytes)
    described = {
        "format": _CACHE_FORMAT,
        "tensorrt": str(trt_version),
        "gpu": str(gpu.name),
        "compute_capability": [int(part) for part in gpu.compute_capability],
        "precision": str(precision),
        "profiles": _profiles_json(profiles),
        "profiling": bool(profiling),
        "flags": sorted(str(flag) for flag in flags),
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()[:40]


def engine_cache_dir(
    backend_dir: Path | None,
    options_dir: Path | None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Where built engines are kept: ``<cache_dir>/tensorrt`` for the ``cache_dir`` given to
    the backend (else the load's), else ``$XDG_CACHE_HOME/atriva-inference/tensorrt`` or
    ``~/.cache/atriva-inference/tensorrt``. TensorRT caches by default, unlike the other
    backends, because a build takes seconds to minutes."""
    base = backend_dir if backend_dir is not None else options_dir
    if base is not None:
        return Path(base) / "tensorrt"
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative paths are invalid and must be ignored.
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "atriva-inference" / "tensorrt"


def write_atomically(target: Path, data: Any) -> None:
    """Write the cache entry through a ``.partial`` file and ``os.replace``: a concurrent
    reader never sees half an engine. A cache that cannot be written only costs a rebuild."""
    writer = f"{os.getpid()}.{threading.get_ident()}"
    partial = target.with_name(f"{target.stem}.{writer}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(memoryview(data))
        os.replace(partial, target)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
