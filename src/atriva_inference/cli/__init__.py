"""``atriva-infer``: inspect a model, run it once or benchmark it from the command line.

::

    atriva-infer info model.xml --device CPU
    atriva-infer run model.onnx --backend onnxruntime --input images=frame.npy --iterations 20
    atriva-infer run model.xml            # random inputs shaped from the model
    atriva-infer bench model.onnx --mode async --requests 4 --seconds 10 --json out.json
    atriva-infer bench model.onnx --compare            # every usable backend, side by side

Every error the runtime raises (and bad ``.npy`` files or arguments) prints one line,
``atriva-infer: error: <message>``, to stderr and exits with status 2; never a traceback.

Modules: :mod:`.parser` (the arguments, shared options defined once), :mod:`.app` (the
commands and :func:`main`), :mod:`.bench` (measuring and comparing), :mod:`.inputs`
(random inputs, ``.npy`` files, ``--shape``), :mod:`.text` (how values are written).
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
