"""Fixtures of the robustness suite: one sandbox worker process shared by its tests."""

from __future__ import annotations

import pytest

from tests.robustness.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """Runs test bodies in a worker process (restarted after a crash or hang)."""
    with Sandbox(tmp_path_factory.mktemp("sandbox")) as box:
        yield box
