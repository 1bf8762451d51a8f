"""Buffer policies, the fps limit and staleness: units, then through a running pipeline."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from atriva_inference import InvalidInputError
from atriva_inference.pipeline import Pipeline
from atriva_inference.pipeline.frames import Frame
from atriva_inference.pipeline.policies import FrameBuffer, RateLimit, resolve_policy
from tests.pipeline.conftest import BIKES_FRAMES, check_accounting, pipeline_threads


def frame(seq: int) -> Frame:
    return Frame(None, seq, None, 0.0, 0.0, None)


def test_buffer_policies_drop_the_frame_they_say():
    latest = FrameBuffer("latest", 2)
    assert [latest.put(frame(i)) for i in range(2)] == [None, None]
    assert latest.put(frame(2)).seq == 0  # the oldest goes
    assert [f.seq for f in latest.frames] == [1, 2]
    newest = FrameBuffer("drop_newest", 2)
    for i in range(2):
        newest.put(frame(i))
    assert newest.put(frame(2)).seq == 2  # the new one goes
    assert [f.seq for f in newest.frames] == [0, 1]
    assert newest.full() and newest.take().seq == 0 and not newest.full()


def test_auto_policy_and_per_camera_policies():
    assert resolve_policy("auto", "a", "file") == "wait"
    assert resolve_policy("auto", "a", "frames") == "wait"
    assert resolve_policy("auto", "a", "live") == "latest"
    assert resolve_policy({"a": "drop_newest"}, "a", "live") == "drop_newest"
    assert resolve_policy({"a": "drop_newest"}, "b", "live") == "latest"
    with pytest.raises(InvalidInputError, match="expected 'auto' or one of"):
        resolve_policy("oldest", "a", "file")


def test_rate_limit_keeps_at_most_fps_by_stream_time():
    limit = RateLimit(5.0)
    kept = [i for i in range(50) if limit.keep(i * 0.04)]  # 2 s of 25 fps
    assert kept == list(range(0, 50, 5))
    assert limit.keep(0.0)  # time went back (a loop): start again
    assert not limit.keep(0.04)
    assert limit.keep(10.0)  # after a gap: at once


def test_fps_on_a_file_drops_after_decode(means_model, bikes):
    with Pipeline(means_model, [bikes], fps=5) as pipe:
        seqs = [result.seq for result in pipe]
        stats = pipe.stats()["cam0"]
    assert seqs == list(range(0, BIKES_FRAMES, 5))  # 25 fps file, every fifth frame
    assert stats.dropped == {"fps": BIKES_FRAMES - len(seqs)}
    assert stats.captured == BIKES_FRAMES and stats.inferred == len(seqs)


def test_staleness_drops_frames_that_waited_too_long(means_model):
    rng = np.random.default_rng(0)
    source = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(40)]

    def slow(outputs, image):
        time.sleep(0.01)
        return outputs

    with Pipeline(means_model, [source], staleness_ms=1, postprocess=slow) as pipe:
        results = list(pipe)
        stats = pipe.stats()["cam0"]
    check_accounting({"cam0": stats})
    assert set(stats.dropped) == {"stale"} and stats.dropped["stale"] > 0
    assert stats.delivered == len(results) == 40 - stats.dropped["stale"]


def test_latest_keeps_latency_bounded_behind_a_slow_consumer(means_model):
    """A camera at 200 fps, a consumer taking 20 ms per result: under ``latest`` each result
    is one of the newest frames captured, however long it runs (waiting for every frame, the
    age would grow by ~4 frames per result: ~240 frames by the end), and the frames in between
    are counted as dropped. The bound is in frames with a wide margin, not in milliseconds."""

    def camera():
        image = np.zeros((32, 32, 3), np.uint8)
        while True:
            time.sleep(0.005)
            yield image

    with means_model.create_async_queue() as queue:
        depth = queue.depth
    ages = []
    with Pipeline(means_model, [camera], policy="latest", buffer_size=2) as pipe:
        for count, result in enumerate(pipe):
            stats = pipe.stats()["cam0"]
            check_accounting({"cam0": stats})
            assert stats.in_flight <= 2 + depth + 1  # the buffer, and what is taken
            ages.append(stats.captured - 1 - result.seq)
            if count == 60:
                break
            time.sleep(0.02)
    # The first results were taken before the queue's first compile ended.
    assert max(ages[depth + 2 :]) <= 40, ages
    assert stats.dropped["buffer_full"] > 0
    assert pipeline_threads() == []


def test_a_camera_whose_every_frame_goes_stale_still_ends(means_model):
    source = [np.zeros((32, 32, 3), np.uint8)] * 10
    with Pipeline(means_model, [source], staleness_ms=1e-6) as pipe:
        guard = threading.Timer(60, pipe.stop)  # a hang fails below instead of hanging
        guard.start()
        results = list(pipe)
        guard.cancel()
        guard.join()
        stats = pipe.stats()["cam0"]
    assert results == [] and stats.dropped == {"stale": 10}
