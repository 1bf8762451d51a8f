"""The documentation site, built once per session with ``mkdocs build --strict``; the other
docs tests read (or serve) the built pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mkdocs_build(config: Path, site: Path, *, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``config`` into ``site``: the command CI's docs check runs."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(config),
            "-d",
            str(site),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="the [docs] extra is not installed")
    site = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}{result.stdout}"
    return site


def built_page(site: Path, page: str) -> str:
    """The HTML of ``page`` (a docs/ path such as ``cli.md``) in the built site."""
    stem = Path(page.removesuffix(".md"))
    path = site / (stem.parent if stem.name == "index" else stem) / "index.html"
    assert path.is_file(), f"{page} was not built ({path} is missing)"
    return path.read_text(encoding="utf-8")
