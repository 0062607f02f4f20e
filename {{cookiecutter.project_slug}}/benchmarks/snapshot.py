"""A PNG of a benchmark page, for the README: Markdown cannot show Bokeh's interactive HTML.

It opens the HTML that ``memory.py`` or ``report.py`` wrote in headless system Chromium, driven by
Playwright (the project's ``browser`` extra: ``pip install -e '.[browser]'``; never
``playwright install``), waits until BokehJS has painted every plot and the document is idle, and
saves a screenshot of the page.

    python benchmarks/snapshot.py benchmarks/results/memory.html docs/memory-curves.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: Playwright already passes --headless, --no-sandbox, --no-first-run and
#: --disable-background-networking; these are not among its defaults.
CHROMIUM_ARGS = ("--disable-gpu", "--disable-quic", "--disable-sync")
#: True once every root's view has painted and the document is idle.
PAINTED = """() => {
    const doc = window.Bokeh?.documents?.[0];
    if (doc == null || !doc.is_idle) return false;
    const views = doc.roots().map((root) => window.Bokeh.index.find_one(root));
    return views.length > 0 && views.every((view) => view != null && view.has_finished());
}"""


def snapshot(html: Path, png: Path, chromium: str, width: int = 1100) -> None:
    """Screenshot ``html`` (the whole page, ``width`` CSS pixels wide) into ``png``."""
    from playwright.sync_api import sync_playwright

    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, chromium_sandbox=False, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(html.resolve().as_uri())
            page.wait_for_function(PAINTED, timeout=30_000)
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("html", type=Path, help="a page written by memory.py or report.py")
    parser.add_argument("png", type=Path, help="the screenshot to write")
    parser.add_argument("--width", type=int, default=1100, help="page width in CSS pixels (default 1100)")
    parser.add_argument(
        "--chromium",
        default=os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM,
        help="Chromium executable (default $CHROMIUM_PATH or /usr/bin/chromium)",
    )
    args = parser.parse_args(argv)
    if not args.html.is_file():
        parser.error(f"html: {args.html} not found; run benchmarks/memory.py or report.py first")
    if not os.access(args.chromium, os.X_OK):
        parser.error(f"--chromium: no executable at {args.chromium} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        parser.error("Playwright is not installed: pip install -e '.[browser]'")
    snapshot(args.html, args.png, args.chromium, args.width)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
