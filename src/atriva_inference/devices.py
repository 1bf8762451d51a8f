"""Device strings: parsed once, resolved against what a backend really sees.

Accepted (case-insensitive): ``"AUTO"``, ``"CPU"``, ``"GPU"``, ``"NPU"`` and indexed
forms such as ``"GPU.1"``. ``AUTO`` resolves deterministically to the first present of
GPU -> NPU -> CPU. A named device that is absent raises :class:`DeviceUnavailableError`
listing the devices present: there is never a silent fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DeviceUnavailableError, InvalidInputError

__all__ = ["AUTO", "AUTO_ORDER", "DEVICE_KINDS", "Device", "normalize_device", "resolve_device"]

AUTO = "AUTO"
DEVICE_KINDS = ("CPU", "GPU", "NPU")
AUTO_ORDER = ("GPU", "NPU", "CPU")

_DEVICE_PATTERN = re.compile(r"^(CPU|GPU|NPU)(?:\.(\d+))?$")


@dataclass(frozen=True)
class Device:
    """A device resolved against what a backend sees: what backends receive, never a string
    to parse again."""

    #: The name as the backend reports it (``"CPU"``, ``"GPU.1"``; OpenVINO says ``"GPU"``
    #: for a lone GPU), which is what the backend's own API takes.
    name: str
    kind: str  # "CPU" | "GPU" | "NPU"
    index: int  # 0 when the backend gives no index

    @classmethod
    def of(cls, name: str) -> Device:
        """The device a backend calls ``name`` (a canonical name it reported)."""
        kind, _, index = name.partition(".")
        return cls(name, kind, int(index) if index else 0)

    @property
    def indexed_name(self) -> str:
        """``"GPU.0"`` even where the backend says ``"GPU"``: how device data names it."""
        return f"{self.kind}.{self.index}"

    def __str__(self) -> str:
        return self.name


def normalize_device(device: str) -> str:
    """Return the canonical spelling of ``device`` (``"gpu.1"`` -> ``"GPU.1"``).

    Raises :class:`InvalidInputError` for strings that name no device kind we know.
    """
    if not isinstance(device, str):
        raise InvalidInputError(
            f"device: expected a string such as 'AUTO', 'CPU', 'GPU', 'GPU.1' or 'NPU', "
            f"got {type(device).__name__}"
        )
    text = device.strip().upper()
    if text == AUTO or _DEVICE_PATTERN.match(text):
        return text
    raise InvalidInputError(
        f"device: expected 'AUTO', one of {', '.join(DEVICE_KINDS)} or an indexed form "
        f"such as 'GPU.1', got {device!r}"
    )


def _kind(device: str) -> str:
    return device.split(".", 1)[0]


def resolve_device(requested: str, present: Sequence[str], backend: str) -> Device:
    """Map a requested device onto one of ``present`` (canonical names the backend reports).

    ``"GPU"`` matches the first GPU whatever its index; ``"GPU.1"`` must be present as such
    (``"GPU"`` alone counts as ``"GPU.0"``).
    """
    wanted = normalize_device(requested)
    if wanted == AUTO:
        for kind in AUTO_ORDER:
            for name in present:
                if _kind(name) == kind:
                    return Device.of(name)
        raise DeviceUnavailableError(
            f"device 'AUTO': backend '{backend}' sees no GPU, NPU or CPU "
            f"(devices present: {_listing(present)})"
        )
    if "." not in wanted:
        for name in present:
            if _kind(name) == wanted:
                return Device.of(name)
    else:
        kind, index = wanted.split(".")
        for name in present:
            if name == wanted or (index == "0" and name == kind):
                return Device.of(name)
    raise DeviceUnavailableError(
        f"device '{wanted}' is not available to backend '{backend}' "
        f"(devices present: {_listing(present)}); refusing to fall back silently"
    )


def _listing(present: Sequence[str]) -> str:
    return ", ".join(present) if present else "none"
