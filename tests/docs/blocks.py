"""The ```python blocks of a Markdown page, and their per-block settings.

A block is a fence whose language is ``python`` or ``py``, optionally followed by
pymdownx.superfences attributes in braces: ```python {skip="needs an NVIDIA GPU"}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LANGUAGES = ("python", "py")
_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_ATTRIBUTE = re.compile(r"""([A-Za-z_][\w-]*)=(["'])(.*?)\2""")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    source: str
    settings: dict[str, str]

    @property
    def skip(self) -> str | None:
        """The reason this block does not run here, or None."""
        return self.settings.get("skip")

    def compile(self):
        """The block as code whose line numbers are the page's: tracebacks show the page."""
        return compile("\n" * self.line + self.source, str(self.path), "exec")


def blocks(path: Path) -> list[Block]:
    """Every Python block of ``path``, in page order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, info = opening.group("indent", "fence", "info")
        end = index + 1
        while end < len(lines) and not re.match(rf"^{re.escape(indent)}{fence}\s*$", lines[end]):
            end += 1
        language = info.strip().split("{", 1)[0].strip().lower()
        if language in LANGUAGES:
            body = [
                line[len(indent) :] if line.startswith(indent) else line
                for line in lines[index + 1 : end]
            ]
            attributes = info.split("{", 1)[1] if "{" in info else ""
            settings = {m.group(1): m.group(3) for m in _ATTRIBUTE.finditer(attributes)}
            found.append(Block(path, index + 1, "\n".join(body) + "\n", settings))
        index = end + 1
    return found
