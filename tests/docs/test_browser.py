"""The built site renders in a real headless Chromium (Debian's chromium and chromium-driver,
installed by .ci/run): pages load from a local server with their headings, the architecture
page's Mermaid diagrams become SVG, and the browser logs no error (no JavaScript exception,
no failed load: nothing may come from the network)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(built_site, tmp_path_factory) -> Iterator[str]:
    """The built site on 127.0.0.1, plus probe/ (a page whose script throws)."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(built_site, root / "site")
    (root / "probe").mkdir()
    (root / "probe" / "index.html").write_text(
        "<html><body><h1>Probe</h1><script>throw new Error('probe error')</script></body></html>"
    )
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="docs-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver;"
            " .ci/run installs them)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) missing")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _errors(driver) -> list[str]:
    """Browser log entries of level SEVERE since the last call: exceptions, failed loads."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _open(driver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


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
    _open(browser, f"{server}/site/")
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

    _open(browser, f"{server}/site/architecture/")
    assert _heading(browser) == "Architecture"
    diagrams = len(_all(browser, "pre.mermaid, div.mermaid", "className"))
    assert diagrams >= 2
    # Each <pre class="mermaid"> is replaced by a <div class="mermaid"> holding the SVG.
    WebDriverWait(browser, 20).until(lambda d: not _all(d, "pre.mermaid", "className"))
    assert _shadow_svg_count(browser) >= diagrams
    assert _errors(browser) == []


def test_api_page(browser, server):
    _open(browser, f"{server}/site/api/model/")
    assert _heading(browser) == "Model"
    assert "atriva_inference.Model" in _all(browser, "article h2", "id")
    assert _errors(browser) == []


def test_the_checks_see_a_missing_page_and_a_script_error(browser, server):
    _open(browser, f"{server}/site/no-such-page/")
    assert _errors(browser), "a missing page (404) must show in the browser log"
    _open(browser, f"{server}/probe/")
    assert any("probe error" in message for message in _errors(browser))
