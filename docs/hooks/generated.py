"""MkDocs hook: the parts of pages generated from the code at every build.

A page holds a marker line; the build replaces it with what the code says now, so these parts
cannot drift: the CLI reference (from the argparse parser), the error reference (each error
really raised) and the extras table (from pyproject.toml). A page that lost its marker fails
the build.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

# MkDocs loads a hook from its file, not as part of a package: its neighbours come by path.
sys.path.insert(0, str(Path(__file__).parent))

import cli_reference
import error_reference
import extras_table

#: Page -> (its marker, what replaces it given the MkDocs config).
GENERATED: dict[str, tuple[str, Callable[[Any], str]]] = {
    "cli.md": (
        "<!-- generated: cli-reference -->",
        lambda config: cli_reference.render_reference(),
    ),
    "errors.md": (
        "<!-- generated: error-reference -->",
        lambda config: error_reference.render_reference(),
    ),
    "getting-started.md": (
        "<!-- generated: extras -->",
        lambda config: extras_table.render_table(
            Path(config["config_file_path"]).parent / "pyproject.toml"
        ),
    ),
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    entry = GENERATED.get(page.file.src_uri)
    if entry is None:
        return markdown
    marker, render = entry
    if marker not in markdown:
        raise PluginError(f"docs/{page.file.src_uri} lost its marker {marker!r}")
    return markdown.replace(marker, render(config))
