"""A real RTSP server on loopback for the tests: GStreamer's gst-rtsp-server (Debian packages,
see RTSP_PACKAGES), run by the system Python that has PyGObject.

``/usr/bin/python3 tests/pipeline/rtsp.py PORT`` serves a live H.264 test pattern at
``rtsp://127.0.0.1:PORT/cam`` and prints ``ready`` once it listens. :class:`RtspServer` runs
it in a subprocess that a test can kill and restart on the same port; :func:`unavailable`
says why it cannot run here (the tests skip with that reason).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: What .ci/run installs for these tests (Debian bookworm).
RTSP_PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
)
SYSTEM_PYTHON = "/usr/bin/python3"

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=96,framerate=25/1"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25"
    " ! rtph264pay name=pay0 pt=96 )"
)


def unavailable() -> str | None:
    """Why the RTSP server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f"no {SYSTEM_PYTHON} (GStreamer's RTSP server runs on the system Python)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst; Gst.init(None);"
        "assert all(Gst.ElementFactory.find(n) for n in "
        "('videotestsrc', 'x264enc', 'rtph264pay'))"
    )
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=60)
    if done.returncode != 0:
        return "GStreamer's RTSP server is not installed: apt-get install " + " ".join(
            RTSP_PACKAGES
        )
    return None


class RtspServer:
    """The server above in a subprocess; ``kill`` and ``start`` again keep the port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.process: subprocess.Popen | None = None

    def start(self) -> RtspServer:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline()  # "ready" once it listens
        if line.strip() != "ready":
            self.kill()
            raise RuntimeError(f"the RTSP server did not start (said {line!r})")
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process.stdout.close()
            self.process = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def main() -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)  # one encoder for every client
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on port {sys.argv[1]}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
