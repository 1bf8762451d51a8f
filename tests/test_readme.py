"""The README's two commands are the project's contract with a fresh clone: keep them true.
The README is one screen that links into the docs site: its links must lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: One screen: what it is, the two commands, a quickstart, the links.
MAX_LINES = 60


def readme_commands(path: Path = README) -> list[str]:
    text = path.read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, f"{path.name} has no fenced shell block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert "-m examples" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci


def test_the_docs_show_the_same_two_commands():
    for page in ("docs/index.md", "docs/getting-started.md"):
        text = (ROOT / page).read_text(encoding="utf-8")
        assert all(command in text.splitlines() for command in readme_commands()), page


def test_readme_fits_one_screen_and_its_links_exist():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    links = [
        target.split("#", 1)[0]
        for target in re.findall(r"\]\(([^)]+)\)", text)
        if not target.startswith(("http://", "https://", "#"))
    ]
    assert links, "the README links into the docs"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
