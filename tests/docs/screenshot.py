"""Regenerate docs/assets/home.png, the picture of the site's home page the README shows:

    .venv/bin/python -m tests.docs.screenshot

Builds the site (``mkdocs build --strict``) into a temporary folder, serves it on 127.0.0.1 and
saves the home page as Debian's headless Chromium draws it at 1280x800.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.docs.browser import MISSING, chromium, chromium_present, open_page, serve
from tests.docs.conftest import ROOT, mkdocs_build

OUTPUT = ROOT / "docs" / "assets" / "home.png"


def main() -> None:
    if not chromium_present():
        raise SystemExit(MISSING)
    with tempfile.TemporaryDirectory() as directory:
        site = Path(directory) / "site"
        result = mkdocs_build(ROOT / "mkdocs.yml", site)
        if result.returncode:
            raise SystemExit(f"mkdocs build --strict failed:\n{result.stderr}")
        with serve(site) as url, chromium(Path(directory) / "profile", height=800) as driver:
            open_page(driver, f"{url}/")
            time.sleep(1.0)  # Material's script lays out the tabs and the table of contents
            OUTPUT.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(OUTPUT))
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
