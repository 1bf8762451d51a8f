"""Truthful precision for quantized models (issue 14): ``model.precision`` says INT8 when INT8
kernels run, ``model.quantization`` says how many, ``precision="INT8"`` requires one.

Real INT8 builds of the real pretrained models (tests/int8_models.py): PP-LCNet and CenterFace
quantized with ONNX Runtime (U8S8 per-channel QDQ) and NNCF (OpenVINO IR), plus a build that
quantizes only the classifier's last MatMul (runs mostly in float on every CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.errors import DeviceUnavailableError, ModelLoadError
from atriva_inference.precision import (
    Quantization,
    QuantizationWarning,
    label,
    not_quantized_error,
    summarize,
    unknown,
    warn_about_quantization,
)
from tests.int8_models import Int8Zoo, classifier_path, load_image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `examples` lives at the repository root

from examples import centerface, orientation  # noqa: E402

BACKENDS = ("openvino", "onnxruntime")
#: PP-LCNet: 32 convolutions and the classifier's MatMul.
CLASSIFIER_COMPUTE = 33
#: CenterFace: 60 convolutions and 3 transposed convolutions.
CENTERFACE_COMPUTE = 63


@pytest.fixture
def int8(int8_zoo: Int8Zoo) -> Int8Zoo:
    """The session's INT8 builds (tests/conftest.py), shared with the other test modules."""
    return int8_zoo


def _depthwise_convolutions(path: Path) -> int:
    """Convolutions of the ONNX model whose group is their input channel count (> 1)."""
    model = onnx.load(str(path))
    count = 0
    for node in model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        count += node.op_type == "Conv" and group > 1
    return count


# -- the value type and the shared decisions ---------------------------------------------------


def test_quantization_text_and_fraction() -> None:
    partial = Quantization(28, 32, "FP32")
    assert partial.fraction == pytest.approx(0.875)
    assert str(partial) == "28 of 32 compute layers in INT8, the rest in FP32"
    assert not partial.mostly_float
    assert str(Quantization(33, 33, "FP32")) == "all 33 compute layers in INT8"
    assert str(Quantization(0, 5, "BF16")) == "0 of 5 compute layers in INT8, all in BF16"
    assert Quantization(4, 32, "FP32").mostly_float
    assert Quantization(0, 0, "FP32").fraction == 0.0


def test_summarize_decides_from_layers() -> None:
    layers = [(True, "FP32"), (False, "BF16"), (False, "BF16"), (True, "FP32")]
    assert summarize(layers, quantized_graph=True, default_float="FP32") == Quantization(
        2, 4, "BF16"
    )
    # a float graph without INT8 layers is no quantized model at all
    assert summarize([(False, "FP32")], quantized_graph=False, default_float="FP32") is None
    # every layer INT8: the remainder's precision is the one in effect
    assert summarize([(True, "x")], quantized_graph=True, default_float="FP16") == Quantization(
        1, 1, "FP16"
    )
    assert label(None, "FP32") == "FP32"
    assert label(Quantization(0, 3, "FP32"), "FP32") == "FP32"  # quantized, none runs INT8
    assert label(Quantization(1, 3, "FP32"), "FP32") == "INT8"


def test_a_quantized_graph_without_a_counted_layer_is_unknown_never_int8() -> None:
    """Q/DQ around no compute layer we know (or a plugin naming its layers otherwise):
    nothing counted, so no "all 0 compute layers in INT8" and no INT8 label."""
    found = summarize([], quantized_graph=True, default_float="FP32")
    assert found is not None and not found.known
    assert (found.int8_layers, found.compute_layers, found.float_precision) == (0, 0, "FP32")
    text = str(found)
    assert text.startswith("unknown how much runs INT8: no compute layer"), text
    assert "all 0" not in text
    assert label(found, "FP32") == "FP32"
    assert not found.mostly_float  # not known either: the unknown warning says it instead
    assert str(Quantization(0, 0, "FP32")).startswith("unknown how much runs INT8")
    # a float graph: nothing quantized, nothing unknown; asked for INT8, its layers counted
    assert summarize([], quantized_graph=False, default_float="FP32", asked=True) is None
    assert summarize(
        [(False, "FP32")], quantized_graph=False, default_float="FP32", asked=True
    ) == Quantization(0, 1, "FP32")
    with pytest.warns(
        QuantizationWarning, match="could not tell what runs INT8 on gpu-ish: no comp"
    ):
        warn_about_quantization(found, "m.xml", "gpu-ish")
    error = str(not_quantized_error(found, "FP32", "m.xml", "openvino"))
    assert "quantized (Q/DQ or FakeQuantize found)" in error
    assert "could not tell what runs INT8" in error and "no INT8 layer is confirmed" in error
    assert "float model" not in error and "0 compute layers" not in error
    why = unknown("FP32", "its optimized graph is unreadable")
    assert str(why) == "unknown how much runs INT8: its optimized graph is unreadable"
    assert "(its optimized graph is unreadable)" in str(
        not_quantized_error(why, "FP32", "m.onnx", "onnxruntime")
    )


def test_not_quantized_error_names_the_command() -> None:
    error = not_quantized_error(Quantization(0, 7, "FP32"), "FP32", "m.onnx", "openvino")
    assert isinstance(error, ModelLoadError)
    text = str(error)
    assert "expected a quantized model" in text
    assert "7 compute layers all run FP32 on openvino" in text
    assert "atriva-infer quantize" in text and "m.onnx" in text


# -- the classifier ----------------------------------------------------------------------------


def _classify_rotations(runtime: InferenceRuntime, model) -> dict[int, tuple[str, float]]:
    labels = orientation.load_labels(classifier_path())
    page = orientation.load_page_image()
    answers = {}
    for degrees in orientation.ROTATIONS:
        batch = orientation.preprocess(orientation.rotate(page, degrees))
        tensor = runtime.tensor_from_numpy(batch, layout="NCHW")
        probabilities = model.run({"x": tensor})[model.outputs[0].name].to_numpy().reshape(-1)
        index = int(np.argmax(probabilities))
        answers[degrees] = (labels[index], float(probabilities[index]))
    return answers


def _classifier_builds(int8: Int8Zoo, backend: str) -> list[Path]:
    builds = [int8.classifier_u8s8()]
    if backend == "openvino":
        builds.append(int8.classifier_nncf())
    return builds


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_classifier_says_int8_and_answers_right(int8: Int8Zoo, backend: str) -> None:
    for path in _classifier_builds(int8, backend):
        with InferenceRuntime(backend) as runtime:
            model = runtime.load_model(path, device="CPU")
            assert model.precision == "INT8", path
            quantization = model.quantization
            assert quantization is not None, path
            assert quantization.compute_layers == CLASSIFIER_COMPUTE, (path, quantization)
            assert quantization.float_precision == "FP32"
            if path.suffix == ".xml":
                # NNCF leaves the depthwise convolutions in f32 (its CPU preset), all else INT8
                depthwise = _depthwise_convolutions(classifier_path())
                assert depthwise > 0
                assert quantization.int8_layers == CLASSIFIER_COMPUTE - depthwise, quantization
            else:
                assert quantization.int8_layers == CLASSIFIER_COMPUTE, quantization
            assert "INT8" in repr(model) and str(quantization) in repr(model)
            assert f"precision=INT8 ({quantization})" in str(model.get_profiling())
            for degrees, (answer, probability) in _classify_rotations(runtime, model).items():
                assert answer == orientation.expected_label(degrees), (path, degrees)
                assert probability > 0.8, (path, degrees, probability)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_model_reports_fp32_and_no_quantization(backend: str) -> None:
    with InferenceRuntime(backend) as runtime:
        model = runtime.load_model(classifier_path(), device="CPU")
        assert model.precision == "FP32"
        assert model.quantization is None
        assert "INT8" not in repr(model)
        assert model.get_profiling().quantization is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_mostly_float_build_warns_and_reports_its_fraction(int8: Int8Zoo, backend: str) -> None:
    path = int8.classifier_mostly_float()
    with InferenceRuntime(backend) as runtime:
        with pytest.warns(QuantizationWarning, match=r"only 1 of 33 compute layers in INT8"):
            model = runtime.load_model(path, device="CPU")
        assert model.precision == "INT8"  # one INT8 kernel runs: never labelled FP32
        assert model.quantization == Quantization(1, CLASSIFIER_COMPUTE, "FP32")
        assert model.quantization.mostly_float
        # still a working classifier
        answers = _classify_rotations(runtime, model)
        assert answers[0][0] == orientation.expected_label(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_precision_accepts_a_quantized_model(int8: Int8Zoo, backend: str) -> None:
    with InferenceRuntime(backend) as runtime:
        model = runtime.load_model(int8.classifier_u8s8(), device="CPU", precision="INT8")
        assert model.precision == "INT8"
        assert model.quantization.float_precision == "FP32"


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_precision_refuses_the_float_classifier(backend: str) -> None:
    with InferenceRuntime(backend) as runtime:
        with pytest.raises(ModelLoadError, match="expected a quantized model") as caught:
            runtime.load_model(classifier_path(), device="CPU", precision="INT8")
        message = str(caught.value)
        assert f"{CLASSIFIER_COMPUTE} compute layers all run FP32" in message, message
        assert "atriva-infer quantize" in message
        assert runtime._models == []  # closed, nothing left loaded
        assert runtime.load_model(classifier_path(), device="CPU").precision == "FP32"


def test_bf16_on_an_int8_model_is_never_mislabelled(int8: Int8Zoo) -> None:
    """precision="BF16" on a quantized IR: the float remainder runs BF16, the model stays
    INT8. On a CPU without bf16 (this one: AVX2 only) it is refused, as on a float model."""
    with InferenceRuntime("openvino") as runtime:
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if "BF16" not in capabilities:
            with pytest.raises(DeviceUnavailableError, match="BF16"):
                runtime.load_model(int8.classifier_nncf(), device="CPU", precision="BF16")
            return
        model = runtime.load_model(int8.classifier_nncf(), device="CPU", precision="BF16")
        assert model.precision == "INT8"
        assert model.quantization.float_precision == "BF16"


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantization_survives_the_compiled_model_cache(
    int8: Int8Zoo, backend: str, tmp_path: Path
) -> None:
    path = int8.classifier_nncf() if backend == "openvino" else int8.classifier_u8s8()
    found = []
    for _ in range(2):
        with InferenceRuntime(backend, cache_dir=tmp_path) as runtime:
            model = runtime.load_model(path, device="CPU")
            found.append((model.loaded_from_cache, model.precision, model.quantization))
    assert [cached for cached, _, _ in found] == [False, True]
    assert found[0][1:] == found[1][1:]
    assert found[1][1] == "INT8"


def test_onnxruntime_float_model_is_not_inspected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float model pays nothing: its optimized graph is never written or read."""
    from atriva_inference.backends import onnxruntime as backend

    def fail(*args: object) -> None:
        raise AssertionError("a float model's optimized graph was read")

    monkeypatch.setattr(backend, "_inspection_of_file", fail)
    monkeypatch.setattr(backend, "_inspection", fail)
    with InferenceRuntime("onnxruntime") as runtime:
        assert runtime.load_model(classifier_path(), device="CPU").quantization is None


# -- a quantized model whose executed graph cannot be read: unknown, warned, never "float" ------


def _unknown_on_load(runtime: InferenceRuntime, path: Path, why: str, **options: object):
    """Load ``path`` (warned: unknown) and check the INT8 refusal says the same."""
    with pytest.warns(QuantizationWarning, match=r"could not tell what runs INT8") as caught:
        model = runtime.load_model(path, device="CPU", **options)
    assert why in str(caught[0].message), caught[0].message
    assert model.precision == "FP32"  # no INT8 layer confirmed: no INT8 label
    assert model.quantization is not None and not model.quantization.known
    assert why in model.quantization.unknown
    assert str(model.quantization) in repr(model)
    model.close()
    with pytest.raises(ModelLoadError) as refused:  # the error says it: no warning too
        runtime.load_model(path, device="CPU", precision="INT8", **options)
    message = str(refused.value)
    assert "could not tell what runs INT8" in message and why in message, message
    assert "float model" not in message and "no INT8 kernel" not in message, message
    assert [m for m in runtime._models if not m.closed] == []


def _ort_error(text: str) -> Exception:
    import onnxruntime

    return onnxruntime.capi.onnxruntime_pybind11_state.Fail(text)


def test_onnxruntime_unwritable_optimized_graph_is_unknown(
    int8: Int8Zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atriva_inference.backends import onnxruntime as backend

    plain = backend._session

    def no_optimized_graph(source, options, providers):
        if options.optimized_model_filepath:
            raise _ort_error("cannot save an optimized graph here")
        return plain(source, options, providers)

    monkeypatch.setattr(backend, "_session", no_optimized_graph)
    with InferenceRuntime("onnxruntime") as runtime:
        _unknown_on_load(runtime, int8.classifier_u8s8(), "cannot save an optimized graph here")


def test_onnxruntime_unreadable_optimized_graph_is_unknown(
    int8: Int8Zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import InferenceSession

    def broken(*args: object) -> None:
        raise IndexError("offset past the buffer")

    monkeypatch.setattr(InferenceSession.InferenceSession, "GetRootAsInferenceSession", broken)
    with InferenceRuntime("onnxruntime") as runtime:
        _unknown_on_load(runtime, int8.classifier_u8s8(), "offset past the buffer")


def test_onnxruntime_cache_entry_never_written_is_unknown(
    int8: Int8Zoo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from atriva_inference.backends import onnxruntime as backend

    plain = backend._session

    def written_nowhere(source, options, providers):
        session = plain(source, options, providers)
        if options.optimized_model_filepath:
            Path(options.optimized_model_filepath).unlink()
        return session

    monkeypatch.setattr(backend, "_session", written_nowhere)
    with InferenceRuntime("onnxruntime", cache_dir=tmp_path) as runtime:
        _unknown_on_load(runtime, int8.classifier_u8s8(), "wrote no optimized graph")


def test_openvino_without_a_runtime_graph_is_unknown(
    int8: Int8Zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino as ov

    def refused(self: object) -> None:
        raise RuntimeError("this plugin keeps no runtime graph")

    monkeypatch.setattr(ov.CompiledModel, "get_runtime_model", refused)
    with InferenceRuntime("openvino") as runtime:
        _unknown_on_load(runtime, int8.classifier_nncf(), "this plugin keeps no runtime graph")


def test_openvino_layers_named_otherwise_are_unknown(
    int8: Int8Zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin whose layerType names we do not know (as a GPU/NPU one may): not INT8."""
    from atriva_inference.backends import openvino as backend

    monkeypatch.setattr(backend, "_COMPUTE_LAYERS", frozenset())
    with InferenceRuntime("openvino") as runtime:
        _unknown_on_load(runtime, int8.classifier_u8s8(), "no compute layer")


# -- CenterFace ----------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_image("astronaut.png")


@pytest.fixture(scope="module")
def f32_face(astronaut: np.ndarray) -> np.ndarray:
    with InferenceRuntime("openvino") as runtime:
        model = runtime.load_model(centerface.find_model_path(), device="CPU", dynamic=True)
        faces = centerface.detect(model, runtime, astronaut)
    assert len(faces.boxes) == 1
    return faces.boxes[0]


@pytest.mark.parametrize(
    ("backend", "build"),
    [
        ("openvino", "centerface_nncf"),
        ("openvino", "centerface_u8s8"),
        ("onnxruntime", "centerface_u8s8"),
    ],
)
def test_int8_centerface_finds_the_astronaut(
    int8: Int8Zoo, backend: str, build: str, astronaut: np.ndarray, f32_face: np.ndarray
) -> None:
    with InferenceRuntime(backend) as runtime:
        model = runtime.load_model(getattr(int8, build)(), device="CPU", dynamic=True)
        assert model.precision == "INT8"
        quantization = model.quantization
        assert quantization.compute_layers == CENTERFACE_COMPUTE, quantization
        assert quantization.fraction > 0.5, quantization
        faces = centerface.detect(model, runtime, astronaut)
    assert len(faces.boxes) == 1, faces
    assert _iou(faces.boxes[0], f32_face) >= 0.85, (faces.boxes[0], f32_face)


# -- shapes: quantized models compile static per shape on OpenVINO's CPU plugin ----------------


def test_quantized_openvino_model_compiles_static_per_shape(int8: Int8Zoo) -> None:
    """INT8 CenterFace with dynamic=True: one static compile per new input shape (issue 14:
    dynamic costs INT8 12-17% on OpenVINO CPU); static_shapes=False keeps it dynamic, and
    the f32 model keeps the CPU's dynamic default."""
    shapes = ((1, 3, 64, 96), (1, 3, 96, 64), (1, 3, 64, 96))

    def signatures(path: Path, **options: object) -> list[bool]:
        with InferenceRuntime("openvino") as runtime:
            model = runtime.load_model(path, device="CPU", dynamic=True, **options)
            for shape in shapes:
                model.run({model.inputs[0].name: np.zeros(shape, np.float32)})
            assert model.shape_cache_info().currsize == 2
            return [record.specialized for record in model.get_profiling().shapes]

    assert signatures(int8.centerface_nncf()) == [True, True]
    assert signatures(int8.centerface_nncf(), static_shapes=False) == [False, False]
    assert signatures(centerface.find_model_path()) == [False, False]
