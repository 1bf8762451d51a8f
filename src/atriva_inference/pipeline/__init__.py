"""Cameras in, a model's results per camera out (extra ``[video]``: PyAV).

>>> from atriva_inference.pipeline import Pipeline  # doctest: +SKIP
>>> with Pipeline(model, ["street.mp4", "rtsp://10.0.0.7/stream"]) as pipe:  # doctest: +SKIP
...     for result in pipe:
...         print(result.camera, result.seq, result.outputs)

One decode thread per camera (``sources``, ``camera``), a buffer policy per camera
(``policies``), a scheduler feeding the model's async queue with optional cross-camera
batches (``batching``), exact accounting (``stats``). See docs/pipeline.md.

Importing this package does not import PyAV; opening a file or URL does, and says how to
install it when it is missing.
"""

from __future__ import annotations

from .core import DEFAULT_BUFFER_SIZE, DEFAULT_MAX_DELAY_MS, Pipeline
from .frames import FrameResult
from .policies import POLICIES
from .sources import LIVE_SCHEMES, Reconnect
from .stats import DROP_CAUSES, STATES, CameraStats

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_MAX_DELAY_MS",
    "DROP_CAUSES",
    "LIVE_SCHEMES",
    "POLICIES",
    "STATES",
    "CameraStats",
    "FrameResult",
    "Pipeline",
    "Reconnect",
]
