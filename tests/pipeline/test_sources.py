"""Live network sources on loopback: a camera killed and restarted reconnects while the
others keep delivering; a source that never answers does not hang; memory stays flat over
many reconnects; a corrupt file fails only its camera."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from atriva_inference import InferenceTimeoutError, InvalidInputError
from atriva_inference.pipeline import Pipeline, Reconnect
from atriva_inference.pipeline.sources import make_source
from tests.pipeline import rtsp
from tests.pipeline.conftest import BIKES_FRAMES, check_accounting, pipeline_threads
from tests.pipeline.live import LiveServer, free_port
from tests.pipeline.rtsp import RtspServer

#: Quick reconnects for the tests (a real camera keeps the defaults).
QUICK = Reconnect(timeout_s=2.0, initial_s=0.1, max_s=0.5, reset_after_s=1.0)


def paced_frames(fps: float = 50.0):
    """A callable source: endless frames at ``fps``, as a camera from Python would give."""

    def frames():
        frame = np.full((32, 32, 3), 7, np.uint8)
        while True:
            time.sleep(1.0 / fps)
            yield frame

    return frames


def consume_until(pipe: Pipeline, done: Callable[[], bool], seconds: float, seen: dict) -> None:
    """Iterate until ``done()`` (checked after each result); after ``seconds`` a timer stops
    the pipeline, so a test waiting for results that never come fails instead of hanging."""
    timer = threading.Timer(seconds, pipe.stop)
    timer.start()
    try:
        for result in pipe:
            seen.setdefault(result.camera, []).append(result.seq)
            check_accounting(pipe.stats())
            if done():
                return
        pytest.fail(f"no more results within {seconds} s: {pipe.stats()}")
    finally:
        timer.cancel()
        timer.join()


def make_server(kind: str) -> LiveServer | RtspServer:
    """A live camera on loopback: MPEG-TS over TCP from PyAV, or GStreamer's RTSP server."""
    if kind == "rtsp":
        reason = rtsp.unavailable()
        if reason is not None:
            pytest.skip(reason)
        return RtspServer(free_port())
    return LiveServer(fps=25)


@pytest.mark.parametrize("kind", ["tcp", "rtsp"])
def test_killed_live_source_reconnects_and_the_others_keep_delivering(means_model, kind):
    seen: dict[str, list[int]] = {}
    with make_server(kind) as server:
        sources = {"live": server.url, "other": paced_frames()}
        with Pipeline(means_model, sources, reconnect=QUICK) as pipe:
            assert pipe.policies == {"live": "latest", "other": "wait"}

            def delivered(name: str) -> int:
                return len(seen.get(name, []))

            consume_until(pipe, lambda: delivered("live") >= 10, 30, seen)
            server.kill()
            states = set()
            other_before = delivered("other")

            def lost() -> bool:
                states.add(pipe.stats()["live"].state)
                return "reconnecting" in states and delivered("other") >= other_before + 50

            consume_until(pipe, lost, 30, seen)
            server.start()
            live_before = delivered("live")
            consume_until(pipe, lambda: delivered("live") >= live_before + 10, 30, seen)
            live = pipe.stats()["live"]
            assert live.state == "running" and live.reconnects >= 1
            assert isinstance(live.error, Exception)  # why it was lost, kept
        stats = pipe.stats()
    check_accounting(stats)
    assert all(camera.in_flight == 0 for camera in stats.values())
    for seqs in seen.values():
        assert seqs == sorted(set(seqs))
    assert pipeline_threads() == []


def test_a_source_that_never_answers_does_not_hang(means_model):
    with socket.socket() as silent:  # accepts connections (the backlog), never sends a byte
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        watch = Reconnect(timeout_s=0.5, initial_s=0.05, max_s=0.1, attempts=2)
        sources = {"silent": url, "frames": [np.zeros((32, 32, 3), np.uint8)] * 5}
        with Pipeline(means_model, sources, reconnect=watch) as pipe:
            results = list(pipe)  # ends: the silent camera fails after its attempts
            stats = pipe.stats()
    assert [r.camera for r in results] == ["frames"] * 5
    silent_stats = stats["silent"]
    assert silent_stats.state == "failed" and silent_stats.reconnects == 2
    assert isinstance(silent_stats.error, InferenceTimeoutError)
    assert "did not answer within 0.5 s" in str(silent_stats.error)
    assert stats["frames"].delivered == 5
    assert pipeline_threads() == []


def test_stop_while_a_source_does_not_answer(means_model):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        pipe = Pipeline(means_model, [url], reconnect=Reconnect(timeout_s=0.5))
        assert pipe.stats()["cam0"].state in ("starting", "reconnecting")
        pipe.stop()
    assert pipe.stats()["cam0"].state == "ended"
    assert pipeline_threads() == []


def test_a_corrupt_file_fails_only_its_camera(means_model, bikes, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(100_000))
    with Pipeline(means_model, {"bad": corrupt, "good": bikes}) as pipe:
        results = list(pipe)
        stats = pipe.stats()
    assert {r.camera for r in results} == {"good"}
    assert stats["good"].delivered == BIKES_FRAMES and stats["good"].state == "ended"
    assert stats["bad"].state == "failed" and stats["bad"].captured == 0
    assert isinstance(stats["bad"].error, InvalidInputError)
    assert "corrupt.mp4" in str(stats["bad"].error)


#: Reconnects before the first measure (warm-up: the model's requests, allocator pools) and
#: at the last.
FIRST_MARK, LAST_MARK = 40, 120


def _rss_and_threads() -> tuple[int, int]:
    """Resident memory (kB) and OS threads of this process (FFmpeg's included)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.split()[0] if value.split() else ""
    return int(fields["VmRSS"]), int(fields["Threads"])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_memory_and_threads_flat_over_many_reconnects(means_model):
    """A server that closes every connection after a few frames: the camera reconnects again
    and again; each container is closed, so memory and threads do not grow with the count."""
    watch = Reconnect(timeout_s=2.0, initial_s=0.01, max_s=0.02, reset_after_s=0.01)
    marks = {}
    with (
        LiveServer(frames=5, fps=100) as server,
        Pipeline(means_model, [server.url], reconnect=watch) as pipe,
    ):
        # Nobody consumes: under `latest` the camera keeps capturing (and dropping) anyway.
        deadline = time.monotonic() + 60
        while LAST_MARK not in marks and time.monotonic() < deadline:
            time.sleep(0.02)
            stats = pipe.stats()["cam0"]
            check_accounting({"cam0": stats})
            for mark in (FIRST_MARK, LAST_MARK):
                if stats.reconnects >= mark and mark not in marks:
                    marks[mark] = _rss_and_threads()
        assert LAST_MARK in marks, pipe.stats()
        assert pipe.stats()["cam0"].captured > 0
    (rss_first, threads_first), (rss_last, threads_last) = marks[FIRST_MARK], marks[LAST_MARK]
    # Threads come and go with each connection (FFmpeg's decoder threads): a few either way.
    assert threads_last <= threads_first + 8, (threads_first, threads_last)
    # An unclosed container keeps its buffers and decoder: 80 of them are tens of MB.
    assert rss_last - rss_first < 8_000, (rss_first, rss_last)


def test_reconnect_backs_off_exponentially_with_jitter():
    rng = random.Random(0)
    plain = Reconnect(initial_s=0.5, max_s=4.0, jitter=0.0)
    assert [plain.delay(n, rng) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittered = Reconnect(initial_s=1.0, max_s=1.0, jitter=0.25)
    delays = [jittered.delay(10_000, rng) for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays) and len(set(delays)) > 100
    for bad in ({"timeout_s": 0}, {"jitter": 1.0}, {"attempts": 0}, {"max_s": "1"}):
        with pytest.raises(InvalidInputError, match="Reconnect"):
            Reconnect(**bad)


def test_sources_by_kind(bikes):
    assert make_source("a", "rtsp://10.0.0.7/stream", False).kind == "live"
    assert make_source("a", "tcp://127.0.0.1:9", False).reopenable
    assert make_source("a", f"file://{bikes}", False).kind == "file"
    assert make_source("a", bikes, True).loop
    frames = make_source("a", lambda: [], False)
    assert frames.kind == "frames" and frames.reopenable
    assert not make_source("a", [np.zeros((2, 2, 3), np.uint8)], False).reopenable
    with pytest.raises(InvalidInputError, match="got bytes"):
        make_source("a", b"rtsp://x", False)
    with pytest.raises(InvalidInputError, match="got int"):
        make_source("a", 7, False)
