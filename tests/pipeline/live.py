"""A live camera on loopback for the tests: MPEG-TS over ``tcp://127.0.0.1`` served by PyAV.

``python -m tests.pipeline.live PORT [--frames N] [--fps F]`` listens with FFmpeg's
``listen=1``, streams synthetic H.264 frames paced at ``fps`` to each client in turn (``N``
frames per connection, 0 for endless), closes, and listens again. :class:`LiveServer` runs
it in a subprocess that a test can kill and restart on the same port.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """A frame that changes every time (a moving gradient)."""
    x = np.arange(width, dtype=np.uint16)[None, :]
    y = np.arange(height, dtype=np.uint16)[:, None]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (x + 4 * index) % 256
    frame[..., 1] = (y + 2 * index) % 256
    frame[..., 2] = (x + y + index) % 256
    return frame


def serve_one(port: int, frames: int, fps: float, width: int, height: int) -> None:
    """Wait for one client, stream to it until ``frames`` are sent or it goes away."""
    import av

    with av.open(f"tcp://127.0.0.1:{port}?listen=1", "w", format="mpegts") as container:
        stream = container.add_stream(
            "libx264", rate=int(fps), options={"preset": "ultrafast", "tune": "zerolatency"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = int(fps)  # a key frame a second: a client starts within one
        start = time.monotonic()
        index = 0
        while frames == 0 or index < frames:
            frame = av.VideoFrame.from_ndarray(pattern(index, width, height), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            index += 1
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--frames", type=int, default=0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 96))
    args = parser.parse_args()
    import av

    while True:
        # A client that went away is the end of its connection, not of the server.
        with contextlib.suppress(OSError, av.FFmpegError):
            serve_one(args.port, args.frames, args.fps, *args.size)


class LiveServer:
    """The server above in a subprocess; ``kill`` and ``start`` again keep the port."""

    def __init__(self, frames: int = 0, fps: float = 25.0, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.frames = frames
        self.fps = fps
        self.process: subprocess.Popen | None = None

    def start(self) -> LiveServer:
        command = [sys.executable, "-m", "tests.pipeline.live", str(self.port)]
        command += ["--frames", str(self.frames), "--fps", str(self.fps)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


if __name__ == "__main__":
    main()
