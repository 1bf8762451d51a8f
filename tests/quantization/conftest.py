"""Session fixtures: the folder of real frames, and each quantized build made once.

``quantized(model, backend)`` quantizes the real classifier (``"classifier"``) or CenterFace
(``"centerface"``) from the frames folder the first time it is asked for, and returns the
same ``(report, path)`` afterwards. A build that failed fails every test asking for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from atriva_inference import available_backends
from atriva_inference.quantization import QuantReport, quantize
from tests import int8_models, zoo
from tests.quantization import real_frames

pytest.importorskip("nncf")
pytest.importorskip("PIL")

USABLE = {status.name for status in available_backends() if status.usable}
SUBSET = 8
HELD_OUT = 4

Build = tuple[QuantReport, Path]


@pytest.fixture(scope="session")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_frames.write_frames(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="session")
def quantized(
    tmp_path_factory: pytest.TempPathFactory, frames_dir: Path
) -> Callable[[str, str], Build]:
    directory = tmp_path_factory.mktemp("quantized")
    built: dict[tuple[str, str], Build | BaseException] = {}

    def build(model: str, backend: str) -> Build:
        if backend not in USABLE:
            pytest.skip(f"backend {backend} is not usable here")
        key = (model, backend)
        if key not in built:
            try:
                built[key] = _quantize(model, backend, directory, frames_dir)
            except BaseException as exc:  # pytest's skip is a BaseException
                built[key] = exc
        result = built[key]
        if isinstance(result, BaseException):
            raise result
        return result

    return build


def _quantize(model: str, backend: str, directory: Path, frames: Path) -> Build:
    suffix = ".xml" if backend == "openvino" else ".onnx"
    output = directory / f"{model}-{backend}-int8{suffix}"
    common = {"backend": backend, "subset_size": SUBSET, "held_out": HELD_OUT, "min_speedup": 0}
    if model == "classifier":
        source = int8_models.classifier_path()
        if backend == "openvino":  # NNCF from the IR, the usual OpenVINO route
            source = zoo.ov_ir_of(source, directory)
        report = quantize(
            source,
            frames,
            output,
            mean=real_frames.CLASSIFIER_MEAN,
            scale=real_frames.CLASSIFIER_SCALE,
            metric="top1",
            **common,
        )
    else:
        report = quantize(
            int8_models.centerface_path(),
            frames,
            output,
            shape=real_frames.CENTERFACE_SHAPE,
            metric="iou",
            decode="centerface",
            **common,
        )
    return report, output
