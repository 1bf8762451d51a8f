"""What the pages must keep in step with the code: every public name has an API entry, and the
architecture page names every layer and module that tests/test_architecture.py knows."""

from __future__ import annotations

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
