"""Griffe extension for the API reference: the house docstrings' Sphinx roles as Markdown, and
every role that names something of this package checked against the code.

The package's docstrings are prose with Sphinx roles (``:class:`Model```,
``:func:`~.options.add_model_options```) and reST literal blocks (``::``). mkdocstrings renders
docstrings as Markdown, where a role would show as ``:class:`` followed by code. This turns a
role into inline code of the name as Sphinx would display it (``~`` keeps the last part) and
``::`` into ``:`` (the indented block after it is already a Markdown code block).

Once the package is loaded, each role naming this package's objects is resolved the way Sphinx
would (relative to the module, its class, or from the package root): a name that resolves to
nothing is logged as a warning, which fails ``mkdocs build --strict``. A stale name in a
docstring cannot reach the site.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const):`(~?)([^`]+)`")
LITERAL_BLOCK = re.compile(r"::$", re.M)
PACKAGE = "atriva_inference"
# mkdocstrings-python forwards this logger to MkDocs': a warning here fails a strict build.
logger = logging.getLogger("mkdocs.plugins.griffe_roles")


def _role(match: re.Match[str]) -> str:
    target = match.group(2).lstrip(".")
    if match.group(1):  # ~a.b.C shows as C
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def markdown(text: str) -> str:
    return LITERAL_BLOCK.sub(":", ROLE.sub(_role, text))


class SphinxRolesAsMarkdown(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != PACKAGE:
            return
        stale = []
        for obj in _objects(pkg):
            if obj.docstring is None:
                continue
            for match in ROLE.finditer(obj.docstring.value):
                target = match.group(2)
                if _ours(target, obj) and _resolve(target, obj) is None:
                    stale.append(f"{obj.path}: {match.group(0)}")
            obj.docstring.value = markdown(obj.docstring.value)
        for entry in stale:
            logger.warning("docstring names something that does not exist: %s", entry)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _ours(target: str, obj: griffe.Object) -> bool:
    """Whether ``target`` can only mean something of this package (not numpy, cuda.core...)."""
    name = target.lstrip("~")
    if name.startswith((".", PACKAGE + ".")) or name == PACKAGE:
        return True
    if "." in name:  # qualified: ours when its first part is one of this package's names here
        first = name.split(".", 1)[0]
        found = _scope_lookup(first, obj)
        if found is None:  # ``Model.run`` from a module that does not import Model: a class
            # of ours by that name makes it ours (``cuda.core.X`` is NVIDIA's, not our cuda/)
            return any(o.is_class and o.name == first for o in _objects(obj.package))
        return not found.is_alias or found.target_path.startswith(PACKAGE)
    return True


def _scope_lookup(name: str, obj: griffe.Object) -> griffe.Object | griffe.Alias | None:
    """``name`` as the code around ``obj`` sees it: its class's members, its module's."""
    scope: griffe.Object | None = obj
    while scope is not None:
        if name in scope.members:
            return scope.members[name]
        if scope.is_module:
            break
        scope = scope.parent
    return None


def _resolve(target: str, obj: griffe.Object) -> griffe.Object | griffe.Alias | None:
    name = target.lstrip("~")
    package = obj.package
    module = obj.module
    if name.startswith("."):  # relative to the module's package, as in a relative import
        level = len(name) - len(name.lstrip("."))
        base = module if module.is_init_module else module.parent
        for _ in range(level - 1):
            base = base.parent if base is not None else None
        return _get(base, name.lstrip(".")) if base is not None else None
    if name == PACKAGE:
        return package
    if name.startswith(PACKAGE + "."):
        return _get(package, name[len(PACKAGE) + 1 :])
    first, _, rest = name.partition(".")
    found = _scope_lookup(first, obj)
    if found is not None:
        return _get(found, rest) if rest else found
    # Not in scope (a docstring naming a class of a sibling module): Sphinx would still find an
    # object of that name; so do we, anywhere in the package. A name found nowhere is stale.
    return next((o for o in _objects(package) if o.path.endswith("." + name)), None)


def _get(obj: griffe.Object | griffe.Alias, path: str) -> griffe.Object | griffe.Alias | None:
    try:
        return obj[path]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
