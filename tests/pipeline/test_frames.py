"""Frames: the fused conversion, checks of frames from Python, PyAV missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest

from atriva_inference import InvalidInputError
from atriva_inference.pipeline.frames import check_array, to_image
from tests.pipeline.conftest import CPU_BACKENDS
from tests.pipeline.live import ROOT


def test_to_image_scales_and_converts_in_one_call():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (255, 0, 0)
    assert to_image(rgb, None) is rgb  # already what the model takes: no copy
    assert to_image(rgb, (64, 48)) is rgb
    small = to_image(rgb, (32, 24))
    assert small.shape == (24, 32, 3) and small.dtype == np.uint8
    assert tuple(small[12, 4]) == (255, 0, 0) and tuple(small[12, 28]) == (0, 0, 0)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    decoded = to_image(frame, (16, 12))
    assert decoded.shape == (12, 16, 3)
    assert decoded[6, 2, 0] > 200 and decoded[6, 2, 2] < 60  # red stays red through YUV


def test_frames_from_python_must_be_rgb_uint8():
    check_array(np.zeros((2, 2, 3), np.uint8), "cam")
    for bad in (np.zeros((2, 2, 3), np.float32), np.zeros((2, 2), np.uint8), [1, 2, 3]):
        with pytest.raises(InvalidInputError, match=r"camera 'cam': expected frames as RGB uint8"):
            check_array(bad, "cam")


def test_without_pyav_the_error_names_the_extra(means_path, bikes):
    """PyAV made unimportable in a fresh interpreter: the package imports, frames from Python
    at the model's size still run, a video file says how to install PyAV."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["av"] = None  # import av raises ImportError
        import numpy as np
        from atriva_inference import BackendUnavailableError, InferenceRuntime
        from atriva_inference.pipeline import Pipeline
        model = InferenceRuntime({CPU_BACKENDS[0]!r}).load_model({str(means_path)!r}, "CPU")
        with Pipeline(model, [[np.zeros((32, 32, 3), np.uint8)] * 3]) as pipe:
            assert len(list(pipe)) == 3
        try:
            Pipeline(model, [{str(bikes)!r}])
        except BackendUnavailableError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'atriva-inference[video]'" in done.stdout
