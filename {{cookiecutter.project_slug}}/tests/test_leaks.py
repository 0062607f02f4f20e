"""Leak tests: closed sessions leave no session, object, resource or RSS behind.

How we know these can fail: ``test_leak_check_reports_the_leaky_app`` runs the same check on
``apps/leaky`` (per-session data kept in an imported module's registry) and asserts it reports
the leak; the globals-trap test in ``test_cleanups.py`` fails on Bokeh's naive behaviour.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import weakref
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.server.cleanup import on_every_session_end, remove_app_cleanup
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}_devtools.leakcheck import check_app_for_leaks
from {{ cookiecutter.package_name }}_devtools.testing import (
    open_dropped_session,
    open_http_session,
    open_websocket_session,
    running_server,
)

APPS = Path(__file__).resolve().parent / "apps"
SESSIONS_PER_KIND = 4  # 12 sessions x 20 MB: a leak of one session is 4x the RSS budget

pytestmark = pytest.mark.leak


def test_app_releases_sessions_and_memory(payload_mb: float) -> None:
    # The server must hand memory back by itself: no allocator tuning from the environment.
    assert not [name for name in os.environ if name.startswith("MALLOC_")]
    report = check_app_for_leaks(
        APP_DIR,
        websocket_sessions=SESSIONS_PER_KIND,
        http_sessions=SESSIONS_PER_KIND,
        dropped_sessions=SESSIONS_PER_KIND,
        rss_budget_mb=5.0,
    )
    print("\n" + report.summary())
    opened = 3 * SESSIONS_PER_KIND
    # The payload must be visible at the peak, or the RSS comparison proves nothing.
    assert report.rss_peak_mb - report.rss_baseline_mb > 0.5 * opened * payload_mb, report.summary()
    assert report.locals_values_tracked >= opened, "the app's working arrays must be tracked by weakref"
    assert report.ok, report.summary()


def test_leak_check_reports_the_leaky_app() -> None:
    """Negative control: the leak check must fail on an app that keeps session data in a registry."""
    import leaky_registry

    try:
        # Its values never die: waiting 1 s instead of 5 for them to be freed only saves time.
        report = check_app_for_leaks(
            APPS / "leaky", websocket_sessions=4, http_sessions=3, dropped_sessions=3, release_timeout_s=1.0
        )
        print("\n" + report.summary())
        assert not report.ok
        assert report.locals_values_alive == 10
        assert report.retained_mb > 150, report.summary()
        assert any("RSS" in problem for problem in report.problems)
    finally:
        leaky_registry.SESSION_DATA.clear()


def test_guide_snippet_data_is_released_and_db_closed() -> None:
    """The guide's code, verbatim, on this project's locals: data freed, connection closed."""
    with running_server(APPS / "guide", unused_session_lifetime_ms=1500) as running:
        clients = [open_websocket_session(running) for _ in range(2)]
        open_http_session(running)
        open_dropped_session(running)
        assert running.wait_for_sessions(4, 10) == 4

        def grab() -> tuple[list[weakref.ref[object]], list[sqlite3.Connection]]:
            caches, connections = [], []
            for session in running.server.get_sessions():
                store = session.document.session_context.locals
                caches.append(weakref.ref(store["data_cache"]["x"]))
                connections.append(store["db_conn"])
            return caches, connections

        caches, connections = running.call(grab)
        for client in clients:
            client.close()
        assert running.wait_for_sessions(0, 10) == 0
    gc.collect()
    assert [ref() for ref in caches] == [None] * 4
    for connection in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")


def test_every_session_cleaned_once_and_db_closed(server, payload_mb: float) -> None:
    """WebSocket, HTTP-only and dropped sessions: one cleanup run each, every connection closed."""
    ended: list[str] = []

    def record_end(context) -> None:
        ended.append(str(context.id))

    on_every_session_end(record_end)
    try:
        clients = [open_websocket_session(server) for _ in range(3)]
        for _ in range(3):
            open_http_session(server)
            open_dropped_session(server)
        assert server.wait_for_sessions(9, 10) == 9

        def grab() -> dict[str, sqlite3.Connection]:
            return {str(s.id): s.document.session_context.locals["db"] for s in server.server.get_sessions()}

        connections = server.call(grab)
        for client in clients:
            client.close()
        assert server.wait_for_sessions(0, 10) == 0
    finally:
        remove_app_cleanup(record_end)
    assert sorted(ended) == sorted(connections), "every session ended exactly once"
    for connection in connections.values():
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")


def test_connected_sessions_keep_their_data_while_others_expire(server, payload_mb: float) -> None:
    kept = [open_websocket_session(server) for _ in range(2)]
    for _ in range(3):
        open_http_session(server)
    assert server.wait_for_sessions(5, 10) == 5
    # The HTTP-only sessions expire; the connected ones must stay intact.
    assert server.wait_for_sessions(2, 10) == 2

    def kept_state() -> list[tuple[float, int]]:
        result = []
        for session in server.server.get_sessions():
            store = session.document.session_context.locals
            (one,) = store["db"].execute("SELECT 1").fetchone()
            result.append((store["working"].nbytes / 2**20, one))
        return result

    assert server.call(kept_state) == [(20.0, 1), (20.0, 1)]
    for client in kept:
        client.close()
    assert server.wait_for_sessions(0, 10) == 0
