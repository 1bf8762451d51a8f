"""The command-line tests' files: zoo models (tests/zoo.py) and two .npy-ish inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.zoo import ZooModel


@pytest.fixture(scope="module")
def models(
    conv_net: ZooModel,
    dynamic: ZooModel,
    strings: ZooModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """``onnx``/``xml``: conv_net float32[1,3,16,16] -> [1,4,16,16]; ``dynamic``: x[N,3,H,W];
    ``strings``: string[3]; ``data``: a conv_net input as .npy; ``text``: not a .npy file."""
    assert conv_net.ir_path is not None
    root = tmp_path_factory.mktemp("cli")
    data = root / "x.npy"
    np.save(data, np.random.default_rng(7).random((1, 3, 16, 16)).astype(np.float32))
    text = root / "not-npy.npy"
    text.write_text("this is not a numpy file\n")
    return {
        "onnx": conv_net.onnx_path,
        "xml": conv_net.ir_path,
        "dynamic": dynamic.onnx_path,
        "strings": strings.onnx_path,
        "data": data,
        "text": text,
    }
