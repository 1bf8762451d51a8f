"""The examples of docs/pipeline.md run as written (```python blocks; ```py blocks need
cameras the tests do not have), with ``model`` and ``clip`` as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pipeline.conftest import pipeline_threads

PAGE = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"
EXAMPLES = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.S | re.M)


def test_the_page_has_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_runs(index, means_model, bikes, capsys):
    exec(
        compile(EXAMPLES[index], f"{PAGE}:example {index}", "exec"),
        {
            "model": means_model,
            "clip": str(bikes),
        },
    )
    assert capsys.readouterr().out
    assert pipeline_threads() == []
