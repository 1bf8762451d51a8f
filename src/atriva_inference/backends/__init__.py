"""Backend registry: names map to ``"module:Class"`` and nothing heavy is imported until used."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ..errors import BackendUnavailableError
from .base import Backend

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKENDS",
    "BackendStatus",
    "available_backends",
    "choose_backend",
    "create_backend",
    "install_hint",
]


class _Entry(NamedTuple):
    target: str  # "module:Class"
    packages: tuple[str, ...]  # import names the backend needs
    extra: str  # pip extra that installs them


BACKENDS: dict[str, _Entry] = {
    "openvino": _Entry(
        "atriva_inference.backends.openvino:OpenVINOBackend", ("openvino",), "openvino"
    ),
    "onnxruntime": _Entry(
        "atriva_inference.backends.onnxruntime:ONNXRuntimeBackend", ("onnxruntime",), "onnxruntime"
    ),
    "tensorrt": _Entry(
        "atriva_inference.backends.tensorrt:TensorRTBackend",
        ("tensorrt", "cuda.core"),
        "tensorrt",
    ),
}

#: Tried in this order when no backend is named (CLI, server): the first usable one wins.
DEFAULT_BACKENDS = ("openvino", "onnxruntime")


class BackendStatus(NamedTuple):
    """Whether a backend can be used here, why (not), and the devices it sees."""

    name: str
    usable: bool
    reason: str
    devices: tuple[str, ...]


def install_hint(extra: str) -> str:
    """The command that installs an extra: ``pip install 'atriva-inference[tensorrt]'``."""
    return f"pip install 'atriva-inference[{extra}]'"


def _check_known(name: str) -> _Entry:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}"
        )
    return BACKENDS[name.lower()]


def create_backend(name: str, *, cache_dir: Path | None = None) -> Backend:
    """Import and instantiate a backend; missing packages raise with the extra to install."""
    entry = _check_known(name)
    name = name.lower()
    for package in entry.packages:
        try:
            found = importlib.util.find_spec(package) is not None
            if not found:  # fails at once; done only to chain the real ImportError
                importlib.import_module(package)
        except (ImportError, ValueError) as exc:
            raise BackendUnavailableError(
                f"backend '{name}' needs the '{package}' package, which is not installed: "
                f"{install_hint(entry.extra)}"
            ) from exc
    module_name, class_name = entry.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend '{name}' could not import its package ({exc}): {install_hint(entry.extra)}"
        ) from exc
    backend_class: type[Backend] = getattr(module, class_name)
    return backend_class(cache_dir=cache_dir)


def available_backends() -> list[BackendStatus]:
    """Each known backend: usable here or not, why, and the devices it sees.

    This imports the installed backends' packages (to ask them for devices); a plain
    ``import atriva_inference`` does not.
    """
    statuses = []
    for name in BACKENDS:
        try:
            backend = create_backend(name)
        except BackendUnavailableError as exc:
            statuses.append(BackendStatus(name, False, str(exc), ()))
            continue
        try:
            devices = tuple(backend.devices())
        finally:
            backend.close()
        if devices:
            statuses.append(BackendStatus(name, True, "installed", devices))
        else:
            statuses.append(BackendStatus(name, False, "installed, but sees no device here", ()))
    return statuses


def choose_backend(
    requested: str | None = None, statuses: Sequence[BackendStatus] | None = None
) -> str:
    """``requested`` as given, or the first usable of :data:`DEFAULT_BACKENDS` (``statuses``:
    what :func:`available_backends` already said, to avoid asking again)."""
    if requested is not None:
        return requested
    known = {status.name: status for status in statuses or available_backends()}
    for name in DEFAULT_BACKENDS:
        if name in known and known[name].usable:
            return name
    reasons = "; ".join(
        f"{name}: {known[name].reason}" for name in DEFAULT_BACKENDS if name in known
    )
    raise BackendUnavailableError(f"no usable backend ({reasons})")
