"""The built site renders in a real headless Chromium (Debian's chromium and chromium-driver,
installed by .ci/run): pages load from a local server with their headings, the architecture
page's Mermaid diagrams become SVG, and the browser logs no error (no JavaScript exception,
no failed load: nothing may come from the network)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.docs.browser import MISSING, chromium, chromium_present, open_page, serve


@pytest.fixture(scope="module")
def server(built_site, tmp_path_factory) -> Iterator[str]:
    """The built site on 127.0.0.1, plus probe/ (a page whose script throws)."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(built_site, root / "site")
    (root / "probe").mkdir()
    (root / "probe" / "index.html").write_text(
        "<html><body><h1>Probe</h1><script>throw new Error('probe error')</script></body></html>"
    )
    with serve(root) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not chromium_present():
        pytest.skip(MISSING)
    pytest.importorskip("selenium", reason="selenium (dev extra) is not installed")
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def _errors(driver) -> list[str]:
    """Browser log entries of level SEVERE since the last call: exceptions, failed loads."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _heading(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "article h1").text.strip()


def _shadow_svg_count(driver) -> int:
    """SVG elements inside the page's shadow roots (Material renders Mermaid into a closed
    one, which only the DevTools protocol can look into)."""
    document = driver.execute_cdp_cmd("DOM.getDocument", {"depth": -1, "pierce": True})

    def count(node: dict, in_shadow: bool) -> int:
        here = int(in_shadow and node.get("nodeName", "").lower() == "svg")
        children = node.get("children", [])
        shadows = node.get("shadowRoots", [])
        return (
            here
            + sum(count(child, in_shadow) for child in children)
            + sum(count(root, True) for root in shadows)
        )

    return count(document["root"], False)


def _all(driver, selector: str, attribute: str) -> list[str]:
    """``attribute`` of every element matching ``selector``."""
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e[arguments[1]])"
    return [str(value).strip() for value in driver.execute_script(script, selector, attribute)]


def test_home_page_reaches_every_part_in_one_click(browser, server):
    open_page(browser, f"{server}/site/")
    assert _heading(browser) == "atriva-inference"
    tabs = _all(browser, ".md-tabs__link", "textContent")
    assert {"Getting started", "Backends", "Reference", "Status"} <= set(tabs), tabs
    links = _all(browser, "article a", "href")
    for page in [
        "getting-started/",
        "backends/openvino/",
        "backends/onnxruntime/",
        "backends/tensorrt/",
        "cli/",
        "status/",
    ]:
        assert f"{server}/site/{page}" in links, page
    assert _errors(browser) == []


def test_architecture_page_draws_its_diagrams(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, f"{server}/site/architecture/")
    assert _heading(browser) == "Architecture"
    diagrams = len(_all(browser, "pre.mermaid, div.mermaid", "className"))
    assert diagrams >= 2
    # Each <pre class="mermaid"> is replaced by a <div class="mermaid"> holding the SVG.
    WebDriverWait(browser, 20).until(lambda d: not _all(d, "pre.mermaid", "className"))
    assert _shadow_svg_count(browser) >= diagrams
    assert _errors(browser) == []


def test_api_page(browser, server):
    open_page(browser, f"{server}/site/api/model/")
    assert _heading(browser) == "Model"
    assert "atriva_inference.Model" in _all(browser, "article h2", "id")
    assert _errors(browser) == []


def test_the_checks_see_a_missing_page_and_a_script_error(browser, server):
    open_page(browser, f"{server}/site/no-such-page/")
    assert _errors(browser), "a missing page (404) must show in the browser log"
    open_page(browser, f"{server}/probe/")
    assert any("probe error" in message for message in _errors(browser))
