"""What the pages must keep in step with the code: every public name has an API entry, and the
architecture page names every layer and module that tests/test_architecture.py knows."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re

import pytest

from tests.docs.conftest import ROOT
from tests.test_architecture import LAYERS

#: Modules whose ``__all__`` is the public API, documented under docs/api/.
PUBLIC = [
    "atriva_inference",
    "atriva_inference.vision",
    "atriva_inference.pipeline",
    "atriva_inference.quantization",
]
PUBLIC_WITH_EXTRAS = {"atriva_inference.serve": "fastapi"}


def _documented_ids(site) -> set[str]:
    ids: set[str] = set()
    for page in (site / "api").rglob("index.html"):
        ids |= set(re.findall(r'id="(atriva_inference[\w.]*)"', page.read_text(encoding="utf-8")))
    return ids


@pytest.mark.parametrize("module_name", [*PUBLIC, *PUBLIC_WITH_EXTRAS])
def test_every_public_class_and_function_has_an_api_entry(built_site, module_name):
    if module_name in PUBLIC_WITH_EXTRAS:
        pytest.importorskip(PUBLIC_WITH_EXTRAS[module_name])
    module = importlib.import_module(module_name)
    ids = _documented_ids(built_site)
    names = {id_.rsplit(".", 1)[-1] for id_ in ids}
    public = [
        name
        for name in module.__all__
        if inspect.isclass(getattr(module, name)) or inspect.isroutine(getattr(module, name))
    ]
    assert public
    missing = [name for name in public if name not in names]
    assert not missing, f"{module_name}: no API entry for {missing} (add them to docs/api/)"


def test_the_architecture_page_names_every_layer_and_module():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [layer for layer, _ in LAYERS if f"| {layer} |" not in page]
    for _, modules in LAYERS:
        for module in modules:
            if module and f"`{module}.py`" not in page and f"`{module}/`" not in page:
                missing.append(module)
    assert not missing, f"docs/architecture.md's layer table lacks {missing}"


@functools.cache
def _class_members() -> dict[str, set[str]]:
    """Every class defined in src/atriva_inference, by name: its methods and attributes."""
    classes: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "atriva_inference").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = classes.setdefault(node.name, set())
                for item in ast.walk(node):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
    return classes


#: ``Class.member`` written as code on a page (``Engine.run``, ``Backend.devices()``).
MEMBER_MENTION = re.compile(r"`([A-Z]\w*)\.([a-z_]\w*)(?:\([^`]*\))?`")


@pytest.mark.parametrize("page", ["architecture.md", "guide.md", "getting-started.md", "index.md"])
def test_class_members_named_on_the_page_exist(page):
    """The architecture page names internals no API page renders (``Engine.start``,
    ``LoadedModel.create_request()``): each must still exist in the code."""
    classes = _class_members()
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    mentions = [m.groups() for m in MEMBER_MENTION.finditer(text) if m.group(1) in classes]
    if page == "architecture.md":
        assert len(mentions) >= 8, mentions
    stale = [f"{cls}.{member}" for cls, member in mentions if member not in classes[cls]]
    assert not stale, f"docs/{page} names members that do not exist: {stale}"


def test_the_member_reader_finds_mentions():
    found = [m.groups() for m in MEMBER_MENTION.finditer("`Engine.run` and `Backend.devices()`")]
    assert found == [("Engine", "run"), ("Backend", "devices")]
    assert "create_request" in _class_members()["LoadedModel"]
