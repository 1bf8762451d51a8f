"""``mkdocs build --strict`` passes, and the strict settings really catch what they must."""

from __future__ import annotations

import pytest

from tests.docs.conftest import ROOT, built_page, mkdocs_build

yaml = pytest.importorskip("yaml", reason="the [docs] extra (MkDocs brings PyYAML) is missing")

HOOKS = ROOT / "docs" / "hooks"


def test_the_site_builds_strictly_with_every_page(built_site):
    nav_pages = _nav_pages(yaml.safe_load(_config_text())["nav"])
    on_disk = {
        str(path.relative_to(ROOT / "docs"))
        for path in (ROOT / "docs").rglob("*.md")
        if "hooks" not in path.parts
    }
    assert on_disk <= set(nav_pages), f"pages missing from the nav: {on_disk - set(nav_pages)}"
    for page in nav_pages:
        assert "<h1" in built_page(built_site, page), page


def test_nothing_is_fetched_from_the_network(built_site):
    """No Google Fonts, no CDN: the pages work offline (the browser test sees no failed load)."""
    for html in built_site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        for host in ("fonts.googleapis.com", "fonts.gstatic.com", "unpkg.com", "cdn.jsdelivr"):
            assert host not in text, f"{html} refers to {host}"


STALE_ROLE = '"""The package.\n\nSee :class:`NoSuchThing`."""\n'
#: Pages of the probe site that break the build, and what the build must say about each. The
#: stale ``:::`` identifier aborts at once, so it gets a build of its own.
BAD_PAGES = {
    "several faults": {
        "index.md": ("See [the missing page](missing.md).\n", "missing.md"),
        "api.md": ("# API\n\n::: atriva_inference\n", "NoSuchThing"),  # from STALE_ROLE
        "refs.md": ("# Refs\n\nSee [it][atriva_inference.NoSuchRef].\n", "NoSuchRef"),
    },
    "stale API name": {"index.md": ("# Index\n\n::: atriva_inference.NoSuchName\n", "NoSuchName")},
}


@pytest.mark.parametrize("case", BAD_PAGES, ids=list(BAD_PAGES))
def test_a_strict_build_fails_on(tmp_path, case):
    """The same validation settings, mkdocstrings handler and griffe extension as mkdocs.yml,
    on pages with a broken link, a stale cross-reference, a stale ``:::`` identifier, or a
    package whose docstring names nothing that exists: each is reported and fails the build."""
    config = yaml.safe_load(_config_text())
    src = tmp_path / "src"
    (src / "atriva_inference").mkdir(parents=True)
    (src / "atriva_inference" / "__init__.py").write_text(STALE_ROLE)
    handler = {"paths": [str(src)], "options": {"extensions": [str(HOOKS / "griffe_roles.py")]}}
    small = {
        "site_name": "probe",
        "strict": True,
        "validation": config["validation"],
        "docs_dir": str(tmp_path / "docs"),
        "plugins": ["search", "autorefs", {"mkdocstrings": {"handlers": {"python": handler}}}],
    }
    (tmp_path / "docs").mkdir()
    for name, (text, _) in BAD_PAGES[case].items():
        (tmp_path / "docs" / name).write_text(text)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(small))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path)
    assert result.returncode != 0
    for _, expected in BAD_PAGES[case].values():
        assert expected in result.stderr + result.stdout, expected


def _config_text() -> str:
    # mkdocs.yml names a Python function (!!python/name:...) that safe_load refuses.
    return "\n".join(
        line for line in (ROOT / "mkdocs.yml").read_text().splitlines() if "!!python" not in line
    )


def _nav_pages(nav) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_the_nav_reader_sees_nested_sections():
    assert _nav_pages([{"A": "a.md"}, {"B": [{"C": "c.md"}, "d.md"]}]) == ["a.md", "c.md", "d.md"]
