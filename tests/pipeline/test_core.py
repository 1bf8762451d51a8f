"""Pipeline end to end on files and frames from Python: order, accounting, policies, stop."""

from __future__ import annotations

import itertools
import re
import threading
import time

import numpy as np
import pytest

from atriva_inference import (
    InferenceFailedError,
    InferenceRuntime,
    InvalidInputError,
    ModelClosedError,
)
from atriva_inference.pipeline import CameraStats, FrameResult, Pipeline, Reconnect
from tests.pipeline.conftest import (
    BIKES_FRAMES,
    CPU_BACKENDS,
    channel_means,
    check_accounting,
    pipeline_threads,
)


def frames(count: int, seed: int = 0, shape=(32, 32, 3)):
    """``count`` random RGB frames."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield rng.integers(0, 256, shape, dtype=np.uint8)


def collect(pipe: Pipeline) -> dict[str, list[FrameResult]]:
    results: dict[str, list[FrameResult]] = {name: [] for name in pipe.cameras}
    for result in pipe:
        results[result.camera].append(result)
    return results


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_wait_on_files_delivers_every_frame_in_order(backend, bikes, means_path):
    with InferenceRuntime(backend) as runtime:
        model = runtime.load_model(means_path, "CPU")
        with Pipeline(model, [bikes, str(bikes)]) as pipe:
            assert pipe.policies == {"cam0": "wait", "cam1": "wait"}
            assert pipe.size == (32, 32)  # the model's static input size
            results = collect(pipe)
            stats = pipe.stats()
    for name in ("cam0", "cam1"):
        got = results[name]
        assert [r.seq for r in got] == list(range(BIKES_FRAMES))
        assert all(r.frame.shape == (32, 32, 3) and r.frame.dtype == np.uint8 for r in got)
        # Each result carries the outputs of its own frame.
        for result in got[::25]:
            np.testing.assert_allclose(
                result.outputs["means"].to_numpy()[0], channel_means(result.frame), rtol=1e-4
            )
        assert [r.pts for r in got[:3]] == pytest.approx([0.0, 0.04, 0.08])
        assert all(a.time <= b.time for a, b in itertools.pairwise(got))
        camera = stats[name]
        assert isinstance(camera, CameraStats)
        assert (camera.captured, camera.inferred, camera.delivered) == (BIKES_FRAMES,) * 3
        assert camera.dropped == {} and camera.in_flight == 0
        assert camera.state == "ended" and camera.error is None
    assert pipeline_threads() == []


def test_frames_from_python_and_dict_names(means_model):
    sources = {"door": list(frames(7)), "yard": lambda: frames(5, seed=1)}
    with Pipeline(means_model, sources) as pipe:
        results = collect(pipe)
    assert [r.seq for r in results["door"]] == list(range(7))
    assert [r.seq for r in results["yard"]] == list(range(5))
    for result, frame in zip(results["yard"], frames(5, seed=1)):
        np.testing.assert_array_equal(result.frame, frame)
        assert result.pts is None
        np.testing.assert_allclose(
            result.outputs["means"].to_numpy()[0], channel_means(frame), rtol=1e-4
        )


def test_exact_accounting_under_a_slow_model(means_model):
    """Three policies on fast sources behind a slow model: every snapshot adds up, every gap
    in a camera's seq is a counted drop, nothing is delivered twice."""

    def slow(outputs, frame):
        time.sleep(0.01)
        return outputs

    sources = {"latest": frames(120), "drop_newest": frames(120, 1), "wait": frames(60, 2)}
    policy = {"latest": "latest", "drop_newest": "drop_newest", "wait": "wait"}
    seen: dict[str, list[int]] = {name: [] for name in sources}
    with Pipeline(means_model, sources, policy=policy, postprocess=slow) as pipe:
        for result in pipe:
            seen[result.camera].append(result.seq)
            check_accounting(pipe.stats())
        stats = pipe.stats()
    check_accounting(stats)
    for name, seqs in seen.items():
        camera = stats[name]
        assert seqs == sorted(set(seqs))
        assert camera.delivered == len(seqs) and camera.in_flight == 0
        assert camera.captured == (60 if name == "wait" else 120)
        assert camera.captured - len(seqs) == sum(camera.dropped.values())
        assert camera.inferred == camera.delivered
    assert stats["wait"].dropped == {}
    assert stats["latest"].dropped.get("buffer_full", 0) > 0
    assert stats["drop_newest"].dropped.get("buffer_full", 0) > 0
    # latest keeps the newest: its last frame always gets through; drop_newest keeps the first.
    assert seen["latest"][-1] == 119
    assert seen["drop_newest"][0] == 0


def test_invalid_arguments_say_what_was_expected(means_model, bikes, tmp_path):
    cases = [
        ({"sources": []}, "at least one source"),
        ({"sources": 42}, "expected a list of sources"),
        ({"sources": [tmp_path / "missing.mp4"]}, "does not exist"),
        ({"sources": ["ftp://host/x"]}, "unsupported URL scheme"),
        ({"sources": [bikes], "policy": "newest"}, "expected 'auto' or one of"),
        ({"sources": [bikes], "buffer_size": 0}, "buffer_size: expected a positive integer"),
        ({"sources": [bikes], "fps": -1}, "fps: expected a number > 0"),
        ({"sources": [bikes], "size": (32,)}, "size: expected (width, height)"),
        ({"sources": [bikes], "reconnect": "yes"}, "reconnect: expected"),
        ({"sources": [iter([])], "loop": True}, "one-shot iterator"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidInputError, match=re.escape(message)):
            Pipeline(means_model, **kwargs)
    assert pipeline_threads() == []


def test_stop_mid_run_counts_what_was_left_and_leaves_no_thread(means_model, bikes):
    pipe = Pipeline(means_model, [bikes, bikes], loop=True)
    taken = [result for _, result in zip(range(20), pipe)]
    pipe.stop()
    pipe.stop()  # idempotent
    assert list(pipe) == []  # nothing more after stop
    stats = pipe.stats()
    check_accounting(stats)
    assert sum(camera.delivered for camera in stats.values()) == len(taken) == 20
    for camera in stats.values():
        assert camera.in_flight == 0 and camera.state == "ended"
        assert set(camera.dropped) <= {"stopped"}
    assert pipeline_threads() == []


def test_loop_reads_a_file_again(means_model, bikes):
    with Pipeline(means_model, [bikes], loop=True, fps=1) as pipe:
        results = [result for _, result in zip(range(25), pipe)]
    assert [r.seq for r in results][:3] == [0, 25, 50]  # 1 fps of a 25 fps file
    assert results[-1].seq > 250  # past the first pass
    assert results[10].pts == pytest.approx(0.0)  # the PTS starts again with each pass


def test_a_failing_frame_source_fails_only_its_camera(means_model):
    def broken():
        yield from frames(3)
        raise OSError("camera unplugged")

    sources = {"broken": broken(), "bad_frames": [np.zeros((32, 32), np.uint8)], "ok": frames(4)}
    with Pipeline(means_model, sources) as pipe:
        results = collect(pipe)
        stats = pipe.stats()
    assert [r.seq for r in results["broken"]] == [0, 1, 2]
    assert stats["broken"].state == "failed"
    assert "camera unplugged" in str(stats["broken"].error)
    assert isinstance(stats["broken"].error.__cause__, OSError)
    assert stats["bad_frames"].state == "failed"
    assert isinstance(stats["bad_frames"].error, InvalidInputError)
    assert len(results["ok"]) == 4 and stats["ok"].state == "ended"


def test_a_callable_source_is_called_again_after_it_raised(means_model):
    calls = []

    def flaky():
        calls.append(1)
        yield from frames(2)
        if len(calls) == 1:
            raise ConnectionError("dropped")

    quick = Reconnect(initial_s=0.01, max_s=0.02)
    with Pipeline(means_model, [flaky], reconnect=quick) as pipe:
        seqs = [r.seq for r in pipe]
        stats = pipe.stats()["cam0"]
    assert seqs == [0, 1, 2, 3] and len(calls) == 2
    assert stats.reconnects == 1 and stats.state == "ended"


def test_a_failing_postprocess_drops_only_that_frame(means_model):
    def postprocess(outputs, image):
        if image[0, 0, 0] == 2:
            raise ValueError("cannot decode")
        return int(image[0, 0, 0])

    source = [np.full((32, 32, 3), value, np.uint8) for value in range(5)]
    with Pipeline(means_model, [source], postprocess=postprocess) as pipe:
        results = list(pipe)
        stats = pipe.stats()["cam0"]
    assert [(r.seq, r.outputs) for r in results] == [(0, 0), (1, 1), (3, 3), (4, 4)]
    assert stats.dropped == {"error": 1} and stats.inferred == 5
    assert isinstance(stats.error, InferenceFailedError)
    assert isinstance(stats.error.__cause__, ValueError)


def test_closing_the_model_under_a_running_pipeline_ends_it_with_the_error(means_path):
    with InferenceRuntime("openvino") as runtime:
        model = runtime.load_model(means_path, "CPU")
        pipe = Pipeline(model, [list(frames(3))], loop=True)
        delivered = 0
        with pytest.raises(ModelClosedError):
            for _ in pipe:
                delivered += 1
                if delivered == 5:
                    model.close()
        assert list(pipe) == []  # raised once, then the end
        stats = pipe.stats()["cam0"]
    check_accounting({"cam0": stats})
    assert stats.in_flight == 0 and stats.state == "ended"
    assert isinstance(stats.error, ModelClosedError)
    assert pipeline_threads() == []


def test_a_slow_camera_does_not_hold_back_the_others(means_model, bikes):
    def slow():
        image = np.zeros((32, 32, 3), np.uint8)
        while True:
            yield image
            time.sleep(0.5)

    street = 0
    with Pipeline(means_model, {"slow": slow, "street": bikes}) as pipe:
        guard = threading.Timer(60, pipe.stop)  # a stall fails below instead of hanging
        guard.start()
        for result in pipe:
            street += result.camera == "street"
            if street == BIKES_FRAMES:
                break
        guard.cancel()
        guard.join()
        stats = pipe.stats()
    assert street == BIKES_FRAMES and stats["street"].dropped == {}
    assert stats["slow"].captured < BIKES_FRAMES  # it kept its own pace meanwhile


def test_an_empty_source_with_loop_ends(means_model):
    with Pipeline(means_model, [[]], loop=True) as pipe:
        assert list(pipe) == []
        assert pipe.stats()["cam0"].state == "ended"
