"""Test bodies run in a worker process, so a crash or a hang fails one test, not the run.

``Sandbox.call(function, *args)`` runs a module-level function (found by its import name)
in a worker process and returns its JSON-able result. An exception there fails the calling
test with the worker's traceback; a worker that dies fails it with its signal; a worker
silent past ``timeout`` is killed and fails it as a hang. The next call starts a new worker.

Workers treat warnings as errors (as pytest does here) and run under a cap on their data
memory, so a runaway allocation fails inside the worker instead of starving the machine.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The data memory (RLIMIT_DATA) a worker may map: well above what these tests use
#: (~0.3 GiB), far below the 100+ GiB a runaway "huge shape" allocation would ask for.
MEMORY_LIMIT = 8 << 30

#: The worker's scratch directory (models it builds); set in the worker only.
WORKDIR: Path | None = None


class Sandbox:
    """One worker process at a time, started on first use and after a crash or hang."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._process: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._stderr: IO[str] | None = None

    def call(self, function: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
        target = f"{function.__module__}:{function.__qualname__}"
        process = self._process if self._process and self._process.poll() is None else None
        if process is None:
            process = self._start()
        assert process.stdin is not None
        errors_from = self._stderr_size()
        line: str | None = None
        hung = False
        try:
            process.stdin.write(json.dumps({"call": target, "args": args}) + "\n")
            process.stdin.flush()
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            hung = True
        except BrokenPipeError:
            pass  # the worker is gone: reported below with its exit status
        if hung:
            self._stop(kill=True)
            pytest.fail(
                f"{target} hung: no answer within {timeout:g} s{self._stderr_tail(errors_from)}",
                pytrace=False,
            )
        if line is None:
            code = self._stop(kill=False)
            pytest.fail(
                f"{target} killed the worker process ({describe_exit(code)})"
                f"{self._stderr_tail(errors_from)}",
                pytrace=False,
            )
        reply = json.loads(line)
        if not reply["ok"]:
            pytest.fail(f"{target} failed in the worker:\n{reply['error']}", pytrace=False)
        return reply["value"]

    def close(self) -> int | None:
        """End the worker; its exit status (None when none was running)."""
        code = self._stop(kill=False)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return code

    def stderr(self) -> str:
        """Everything the workers wrote to stderr so far."""
        return (self._workdir / "worker-stderr.txt").read_text(errors="replace")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _start(self) -> subprocess.Popen[str]:
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self._stderr is None:
            self._stderr = (self._workdir / "worker-stderr.txt").open("a+")
        self._replies = queue.Queue()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tests.robustness.sandbox import serve; serve()",
                str(self._workdir),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        reader = threading.Thread(
            target=_read_lines, args=(self._process.stdout, self._replies), daemon=True
        )
        reader.start()
        return self._process

    def _stop(self, *, kill: bool) -> int | None:
        """End the worker (ours: by its own pid) and return its exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if kill:
            process.kill()
        elif process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()  # the worker's loop ends at end of input
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=30)
        finally:
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    stream.close()

    def _stderr_size(self) -> int:
        assert self._stderr is not None
        self._stderr.seek(0, os.SEEK_END)
        return self._stderr.tell()

    def _stderr_tail(self, start: int) -> str:
        assert self._stderr is not None
        self._stderr.seek(start)
        text = self._stderr.read()[-3000:].strip()
        return f"\nworker stderr:\n{text}" if text else ""


def _read_lines(stream: IO[str], replies: queue.Queue[str | None]) -> None:
    for line in stream:
        replies.put(line)
    replies.put(None)


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def serve() -> None:
    """The worker: one JSON request per line on stdin, one JSON reply per line back."""
    global WORKDIR
    WORKDIR = Path(sys.argv[1])
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed, by Python or a backend's C++, goes to stderr
    warnings.simplefilter("error")
    sys.path.insert(0, str(ROOT))
    for line in sys.stdin:
        request = json.loads(line)
        try:
            value = _resolve(request["call"])(*request["args"])
            reply = json.dumps({"ok": True, "value": value})
        except BaseException:
            reply = json.dumps({"ok": False, "error": traceback.format_exc()})
        replies.write(reply + "\n")
        replies.flush()


def _resolve(target: str) -> Callable[..., Any]:
    import importlib

    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
