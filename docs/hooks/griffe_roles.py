"""Griffe extension for the API reference: the house docstrings' Sphinx roles as Markdown.

The package's docstrings are prose with Sphinx roles (``:class:`Model```,
``:func:`~.options.add_model_options```) and reST literal blocks (``::``). mkdocstrings renders
docstrings as Markdown, where a role would show as ``:class:`` followed by code. This turns a
role into inline code of the name as Sphinx would display it (``~`` keeps the last part) and
``::`` into ``:`` (the indented block after it is already a Markdown code block).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const):`(~?)([^`]+)`")
LITERAL_BLOCK = re.compile(r"::$", re.M)


def _role(match: re.Match[str]) -> str:
    target = match.group(2).lstrip(".")
    if match.group(1):  # ~a.b.C shows as C
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def markdown(text: str) -> str:
    return LITERAL_BLOCK.sub(":", ROLE.sub(_role, text))


class SphinxRolesAsMarkdown(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
