"""A real browser against a real server: what ``bokeh.client`` and raw sockets cannot show.

The other tests open sessions from Python. Only a browser runs BokehJS: it renders the plot into
a canvas, turns a mouse drag on the slider into websocket patches, receives the server's updates,
and closes its websocket when the tab goes away. This module drives headless Chromium through
Playwright against the project's app on an in-process server and checks, end to end, that the
page renders without a console error, that a drag changes the server-side session (plot data and
the per-session sqlite log), and that closing the tab lets the server destroy the session, with
its cleanups, within the idle lifetime plus one check interval.

The tests are marked ``browser`` and left out of the default run. They use the system Chromium
(``CHROMIUM_PATH``, default ``/usr/bin/chromium``; ``playwright install`` is never needed) and the
``browser`` extra: ``pip install -e '.[dev,browser]'`` then ``pytest -m browser``. When either is
missing they skip, unless ``REQUIRE_BROWSER_TESTS=1`` (CI), which makes a missing piece a failure.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from {{ cookiecutter.package_name }}.server.cleanup import on_every_session_end, remove_app_cleanup
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.session_locals import session_locals
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.testing import RunningServer, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page
    from playwright.sync_api import Error as PlaywrightError

pytestmark = pytest.mark.browser

DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: Playwright already passes --headless (headless=True), --no-sandbox (chromium_sandbox=False),
#: --no-first-run, --disable-background-networking and --disable-component-update; these are not
#: among its defaults (--disable-sync only since recent releases; repeating a switch is harmless).
CHROMIUM_ARGS = ("--disable-gpu", "--disable-quic", "--disable-sync")
VIEWPORT = {"width": 1000, "height": 700}

LIFETIME_MS = 1000  # --unused-session-lifetime of the test server
CHECK_MS = 200  # --check-unused-sessions of the test server
MARGIN_S = 1.0  # scheduling slack on a loaded 2-core CI machine

#: True once BokehJS has built the plot's view, the view has painted and the document is idle.
PLOT_RENDERED = """() => {
    const doc = window.Bokeh?.documents?.[0];
    const plot = doc?.get_model_by_name("main_plot");
    const view = plot == null ? null : window.Bokeh.index.find_one(plot);
    return view != null && view.has_finished() && doc.is_idle;
}"""
#: For each canvas of the page: how many pixels have the line glyph's colour (-1: unreadable).
LINE_PIXELS = """(canvases) => {
    const plot = window.Bokeh.documents[0].get_model_by_name("main_plot");
    const color = plot.renderers[0].glyph.line_color;  // a vectorized spec: {value: "#rrggbb"}
    const hex = String(color?.value ?? color);
    if (!/^#[0-9a-f]{6}$/i.test(hex)) return canvases.map(() => -1);
    const rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    return canvases.map((canvas) => {
        const context = canvas.getContext("2d");
        if (context == null || canvas.width === 0 || canvas.height === 0) return -1;
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
        let count = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            const near = rgb.every((value, k) => Math.abs(pixels[i + k] - value) < 40);
            if (near && pixels[i + 3] > 200) count++;
        }
        return count;
    });
}"""
#: The slider's value as the browser's document holds it.
PAGE_WINDOW = "() => window.Bokeh.documents[0].get_model_by_name('window').value"
#: True once the browser's copy of the plot data starts with ``expected`` (pushed by the server).
PAGE_Y_IS = """(expected) => {
    const source = window.Bokeh.documents[0].get_model_by_name("main_plot").renderers[0].data_source;
    const y = Array.from(source.get_column("y") ?? []).slice(0, expected.length);
    return y.length === expected.length && y.every((value, i) => Math.abs(value - expected[i]) < 1e-9);
}"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser | str]:
    """Headless system Chromium driven by Playwright, shared by the module; or why there is none.

    A missing piece is returned, not raised: ``require`` turns it into a skip or, under
    ``REQUIRE_BROWSER_TESTS=1``, a failure of the test itself rather than a setup error.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        yield "Playwright is not installed (pip install -e '.[browser]')"
        return
    executable = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        yield f"no Chromium at {executable} (apt-get install chromium, or set CHROMIUM_PATH)"
        return
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            chromium_sandbox=False,
            args=list(CHROMIUM_ARGS),
            timeout=60_000,
        )
        try:
            yield launched
        finally:
            launched.close()


def require(chromium: Browser | str) -> Browser:
    """The browser; or skip, or fail when CI requires the browser tests (``REQUIRE_BROWSER_TESTS=1``)."""
    if not isinstance(chromium, str):
        return chromium
    if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
        pytest.fail(f"{chromium} (REQUIRE_BROWSER_TESTS=1 requires the browser tests)", pytrace=False)
    pytest.skip(f"{chromium}; set REQUIRE_BROWSER_TESTS=1 to make this a failure")


@dataclass
class ConsoleErrors:
    """Collects a page's ``console.error`` messages and uncaught exceptions."""

    page: Page
    messages: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Page) -> ConsoleErrors:
        collector = cls(page)
        page.on("console", collector._on_console)
        page.on("pageerror", collector._on_page_error)
        return collector

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text}")

    def _on_page_error(self, error: PlaywrightError) -> None:
        self.messages.append(f"uncaught: {error.message}")

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[str]:
        """Let Playwright deliver events until ``count`` errors arrived or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        return self.messages


@dataclass(frozen=True)
class SessionState:
    """What the server holds for the browser's session."""

    session_id: str
    connections: int
    window: int
    y_head: list[float]
    interactions: int
    last_window: int | None


def server_state(running: RunningServer) -> SessionState:
    """Read the only session's slider, plot data and sqlite log on the server's loop."""

    def read() -> SessionState:
        (session,) = running.server.get_sessions()
        document = session.document
        plot = document.get_model_by_name("main_plot")
        y = plot.renderers[0].data_source.data["y"]  # type: ignore[attr-defined]
        database = session_locals(document)["db"]
        (count,) = database.execute("SELECT COUNT(*) FROM interactions").fetchone()
        last = database.execute("SELECT window FROM interactions ORDER BY rowid DESC LIMIT 1").fetchone()
        return SessionState(
            session_id=str(session.id),
            connections=session.connection_count,
            window=int(document.get_model_by_name("window").value),  # type: ignore[attr-defined]
            y_head=[float(value) for value in y[:5]],
            interactions=int(count),
            last_window=None if last is None else int(last[0]),
        )

    return running.call(read)


def drag_slider(page: Page, fraction: float) -> None:
    """Drag the slider's handle with the mouse to ``fraction`` of its track."""
    handle = page.locator(".noUi-handle").bounding_box()
    track = page.locator(".noUi-base").bounding_box()
    assert handle is not None and track is not None, "slider handle or track not visible"
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * fraction, track["y"] + track["height"] / 2, steps=10)
    page.mouse.up()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR", "PNG without a header chunk"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_browser_renders_drives_the_session_and_the_closed_tab_is_destroyed(
    chromium: Browser | str, tmp_path: Path
) -> None:
    browser = require(chromium)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    ended: dict[str, float] = {}

    def record_end(session_context: Any) -> None:
        ended[str(session_context.id)] = time.monotonic()

    on_every_session_end(record_end)
    try:
        with running_server(
            APP_DIR,
            unused_session_lifetime_ms=LIFETIME_MS,
            check_unused_sessions_ms=CHECK_MS,
            allow_own_origin=True,
        ) as running:
            context = browser.new_context(viewport=VIEWPORT)
            try:
                page = context.new_page()
                page.set_default_timeout(15_000)
                errors = ConsoleErrors.attach(page)

                # 1. The page loads, opens its websocket and renders the plot into a canvas.
                response = page.goto(running.url())
                assert response is not None and response.status == 200
                try:
                    page.wait_for_function(PLOT_RENDERED, timeout=20_000)
                except PlaywrightTimeout:
                    pytest.fail(f"the plot did not render within 20 s; page errors: {errors.messages}")
                canvases = page.locator("canvas")
                box = canvases.first.bounding_box()
                assert box is not None and box["width"] >= 100 and box["height"] >= 100, box
                line_pixels = canvases.evaluate_all(LINE_PIXELS)
                assert max(line_pixels) > 200, f"the line is not drawn: {line_pixels}"
                before = server_state(running)
                assert before.connections == 1, "the page's websocket is not attached to its session"
                assert (before.window, before.interactions) == (1, 0)

                # 2. A mouse drag on the slider reaches the server through the websocket.
                drag_slider(page, 0.5)
                window = int(page.evaluate(PAGE_WINDOW))
                assert 20 <= window <= 40, f"the drag moved the slider to {window}"
                assert wait_until(lambda: server_state(running).last_window == window, 5, interval=0.02), (
                    f"the server did not see window={window}: {server_state(running)}"
                )
                after = server_state(running)
                assert after.session_id == before.session_id
                assert after.window == window
                assert after.interactions >= 1
                assert after.y_head != before.y_head, "the server-side plot data did not change"
                # ... and the server's updates come back: the re-smoothed data and the periodic status.
                page.wait_for_function(PAGE_Y_IS, arg=after.y_head, timeout=5_000)
                status = page.locator(".bk-Div")
                status.filter(has_text=f"{after.interactions} interaction(s)").wait_for(timeout=5_000)

                screenshot = tmp_path / "app.png"
                page.screenshot(path=str(screenshot))
                data = screenshot.read_bytes()
                assert png_size(data) == (VIEWPORT["width"], VIEWPORT["height"])
                assert len(data) > 10_000, "screenshot looks blank"
                assert errors.messages == [], errors.messages

                # 3. Closing the tab lets the server destroy the session and run its cleanups in time.
                closed_at = time.monotonic()
                context.close()
                bound_s = (LIFETIME_MS + CHECK_MS) / 1000 + MARGIN_S
                assert wait_until(lambda: running.session_count() == 0, bound_s, interval=0.02), (
                    f"session still alive {bound_s:.1f} s after the tab closed"
                )
                cleaned = wait_until(lambda: after.session_id in ended, 1.0, interval=0.02)
                assert cleaned, "the session was discarded but its cleanups did not run"
                elapsed = ended[after.session_id] - closed_at
                assert LIFETIME_MS / 1000 * 0.9 <= elapsed <= bound_s, elapsed
                print(f"\nbrowser session destroyed {elapsed:.2f} s after the tab closed (bound {bound_s} s)")
            finally:
                context.close()  # a no-op when the test closed it
    finally:
        remove_app_cleanup(record_end)


def test_console_error_collector_catches_errors(chromium: Browser | str) -> None:
    """Negative control: the collector the test above relies on does see errors."""
    page = require(chromium).new_page()
    try:
        errors = ConsoleErrors.attach(page)
        page.evaluate("console.error('x')")
        page.evaluate("setTimeout(() => { throw new Error('boom'); }, 0)")
        messages = errors.wait_for(2)
        assert "console.error: x" in messages
        assert any(message.startswith("uncaught:") and "boom" in message for message in messages)
    finally:
        page.close()


def test_benchmark_snapshot_saves_a_png_of_the_painted_plot(chromium: Browser | str, tmp_path: Path) -> None:
    """``benchmarks/snapshot.py`` (the README's plot image) screenshots a Bokeh page once painted."""
    import subprocess
    import sys

    from bokeh.io import save
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    require(chromium)  # skip or fail like the other browser tests when there is no browser
    plot = figure(title="snapshot", width=900, height=400)
    plot.line(list(range(100)), [value % 17 for value in range(100)], line_width=3)
    html, png = tmp_path / "page.html", tmp_path / "page.png"
    save(plot, filename=str(html), resources=INLINE, title="snapshot")
    snapshot = Path(__file__).resolve().parent.parent / "benchmarks" / "snapshot.py"
    chromium_path = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    completed = subprocess.run(
        [sys.executable, str(snapshot), str(html), str(png), "--chromium", chromium_path, "--width", "1000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    width, height = png_size(png.read_bytes())
    assert width == 1000 and height >= 400
    # A blank page of that size compresses to a few KB; axes, ticks and the line make it larger.
    assert png.stat().st_size > 10_000, png.stat().st_size
