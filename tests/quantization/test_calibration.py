"""Calibration frames: the split, and the conversion that must equal production's."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InferenceRuntime
from atriva_inference.errors import BackendUnavailableError, InvalidInputError
from atriva_inference.quantization.calibration import MIN_HELD_OUT, FramePlan, split_frames
from atriva_inference.tensor import TensorInfo
from tests.zoo import ZooModel

MEAN, SCALE = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]


def _frames(count: int, size: tuple[int, int] = (16, 16)) -> list[np.ndarray]:
    return [np.full((*size, 3), index, np.uint8) for index in range(count)]


def test_split_is_disjoint_and_spread() -> None:
    split = split_frames(_frames(30), subset_size=20, held_out=5)
    calibration = [int(frame[0, 0, 0]) for frame in split.calibration]
    held = [int(frame[0, 0, 0]) for frame in split.held_out]
    assert len(calibration) == 20 and len(held) == 5
    assert not set(calibration) & set(held)
    assert held[0] < 5 and held[-1] > 24  # spread over the clip, not its tail


def test_split_with_fewer_frames_holds_out_the_rest() -> None:
    split = split_frames(_frames(10), subset_size=6, held_out=50)
    assert (len(split.calibration), len(split.held_out)) == (6, MIN_HELD_OUT)


def test_split_refuses_too_few_saying_what_is_needed() -> None:
    with pytest.raises(InvalidInputError, match=r"at least 9 frames .* got 7 .* subset_size=3"):
        split_frames(_frames(7), subset_size=5, held_out=10)


def test_split_takes_a_batch_array() -> None:
    split = split_frames(np.stack(_frames(8)), subset_size=4, held_out=4)
    assert len(split.calibration) == 4


def test_tensor_is_what_the_runtime_feeds_the_model(conv_net: ZooModel) -> None:
    """The numpy conversion equals the runtime's in-graph one: conv_net's output on the
    calibration tensor equals its output on the uint8 HWC frame given to load_model's
    mean/scale model (OpenVINO's PrePostProcessor and ONNX Runtime's prepended nodes)."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    info = TensorInfo("input", (1, 3, 16, 16), np.dtype(np.float32))
    plan = FramePlan(info, "NCHW", mean=MEAN, scale=SCALE, shape=None)
    tensor = plan.tensor(frame)
    expected = (frame.astype(np.float32) - MEAN) / SCALE
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor[0], expected.transpose(2, 0, 1))
    for backend in ("openvino", "onnxruntime"):
        with InferenceRuntime(backend=backend) as runtime:
            model = runtime.load_model(conv_net.onnx_path, "CPU", mean=MEAN, scale=SCALE)
            converted = model.run({"input": runtime.tensor_from_numpy(frame, layout="HWC")})
            plain = runtime.load_model(conv_net.onnx_path, "CPU")
            reference = plain.run({"input": tensor})
            np.testing.assert_allclose(
                converted["output"].to_numpy(), reference["output"].to_numpy(), rtol=1e-5, atol=1e-4
            )


def test_resize_nhwc_and_free_dims() -> None:
    info = TensorInfo("image", (10, 32, 32, 3), np.dtype(np.float32))
    plan = FramePlan(info, "NHWC", mean=None, scale=None, shape=(1, 48, 64, 3))
    assert plan.size == (48, 64) and not plan.fits  # declared batch 10 and 32x32
    tensor = plan.tensor(np.zeros((20, 30, 3), np.uint8))
    assert tensor.shape == (1, 48, 64, 3)
    declared = FramePlan(info, "NHWC", mean=None, scale=None, shape=None)
    assert declared.size == (32, 32) and declared.shape == (1, 32, 32, 3)
    assert not declared.fits  # the batch of 10 is not the frames' 1


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"mean": [1.0, 2.0]}, r"mean: expected 3 values \(one per channel\) or one, got 2"),
        ({"scale": [0.0]}, r"scale: expected non-zero values"),
    ],
)
def test_bad_mean_scale(kwargs, pattern) -> None:
    info = TensorInfo("input", (1, 3, 8, 8), np.dtype(np.float32))
    with pytest.raises(InvalidInputError, match=pattern):
        FramePlan(info, "NCHW", **{"mean": None, "scale": None, "shape": None, **kwargs})


def test_wrong_channel_count_and_layout() -> None:
    info = TensorInfo("input", (1, 1, 8, 8), np.dtype(np.float32))
    plan = FramePlan(info, "NCHW", mean=None, scale=None, shape=None)
    with pytest.raises(InvalidInputError, match="takes 1 channels, a frame has 4"):
        plan.tensor(np.zeros((8, 8, 4), np.uint8))
    rgb = FramePlan(
        TensorInfo("input", (1, 3, 8, 8), np.dtype(np.float32)), "NCHW", mean=None, scale=None,
        shape=None,
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="takes 3 channels, a frame has 1"):
        rgb.tensor(np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(InvalidInputError, match=r"image inputs .* its layout is 'NC'"):
        FramePlan(
            TensorInfo("v", (1, 4), np.dtype(np.float32)), "NC", mean=None, scale=None, shape=None
        )


def test_integer_image_inputs_take_the_pixels() -> None:
    info = TensorInfo("image_tensor", (1, 8, 8, 3), np.dtype(np.uint8))
    plan = FramePlan(info, "NHWC", mean=None, scale=None, shape=None)
    frame = np.arange(192, dtype=np.uint8).reshape(8, 8, 3)
    tensor = plan.tensor(frame)
    assert tensor.dtype == np.uint8 and tensor.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(tensor[0], frame)
    with pytest.raises(InvalidInputError, match="mean and scale apply to float inputs"):
        FramePlan(info, "NHWC", mean=[1.0], scale=None, shape=None)


def test_missing_pillow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(target: str, *args, **kwargs):
        if target == "PIL" or target.startswith("PIL."):
            raise ImportError(f"No module named {target!r}")
        return real_import(target, *args, **kwargs)

    plan = FramePlan(
        TensorInfo("input", (1, 3, 8, 8), np.dtype(np.float32)), "NCHW", mean=None, scale=None,
        shape=None,
    )  # fmt: skip
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(
        BackendUnavailableError, match=r"needs the 'pillow' package.*atriva-inference\[video\]"
    ) as info:
        plan.tensor(np.zeros((16, 16, 3), np.uint8))  # a frame to resize
    assert isinstance(info.value.__cause__, ImportError)
