"""The extras table of docs/getting-started.md, read from pyproject.toml at build time.

Each extra of ``[project.optional-dependencies]`` becomes a row: its name, what it brings (the
comment lines just above it in pyproject.toml, else a short default below) and its
requirements. An extra added to pyproject.toml appears without editing the page.
"""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib


#: For extras pyproject.toml says nothing about in a comment.
DEFAULTS = {
    "openvino": "the OpenVINO backend (CPU, GPU, NPU): IR, ONNX, TensorFlow, TFLite, Paddle",
    "onnxruntime": "the ONNX Runtime backend (CPU) and onnx",
    "demo": "what the examples (`python -m examples`) draw and read images with",
    "dev": "everything the test suite needs (tests, linters, the docs build)",
}


def render_table(pyproject: Path) -> str:
    text = pyproject.read_text(encoding="utf-8")
    project = tomllib.loads(text)["project"]
    name = project["name"]
    extras = project.get("optional-dependencies", {})
    comments = _comments(text)
    rows = [
        f'Install one or several with `pip install "{name}[extra,...]"`.',
        "",
        "| extra | what it brings | requirements |",
        "|---|---|---|",
    ]
    for extra, requirements in extras.items():
        what = comments.get(extra) or DEFAULTS.get(extra, "")
        packages = ", ".join(f"`{requirement}`" for requirement in requirements)
        rows.append(f"| `[{extra}]` | {_cell(what)} | {packages} |")
    return "\n".join(rows)


def _comments(text: str) -> dict[str, str]:
    """Comment lines directly above each ``name = [...]`` of the optional-dependencies table."""
    section = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text, re.M | re.S)
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in section.group(1).splitlines() if section else []:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
        elif match := re.match(r"([A-Za-z0-9_.-]+)\s*=", stripped):
            if pending:
                found[match.group(1)] = " ".join(pending)
            pending = []
        else:
            pending = []
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
