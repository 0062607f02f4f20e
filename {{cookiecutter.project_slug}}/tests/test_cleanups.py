"""Cleanup semantics: once per session, isolated, logged with the session id, main.py kept whole."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.server import lifecycle
from {{ cookiecutter.package_name }}_devtools.testing import (
    open_dropped_session,
    open_http_session,
    open_websocket_session,
    running_server,
)

import probe

APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(autouse=True)
def fresh_probe():
    probe.reset()
    yield
    probe.reset()


def open_each_kind(running, per_kind: int) -> None:
    clients = [open_websocket_session(running) for _ in range(per_kind)]
    for _ in range(per_kind):
        open_http_session(running)
        open_dropped_session(running)
    assert running.wait_for_sessions(3 * per_kind, 10) == 3 * per_kind
    for client in clients:
        client.close()
    assert running.wait_for_sessions(0, 15) == 0


@pytest.mark.requires_patch("keep_modules")
def test_cleanups_run_once_per_session_and_a_failure_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    with running_server(APPS / "cleanups") as running:
        open_each_kind(running, per_kind=3)
    created = probe.sessions_with("created")
    assert len(created) == 9
    # The raising cleanup ran first; both other kinds still ran, exactly once each.
    assert probe.sessions_with("registered") == created
    assert probe.sessions_with("document") == created
    failures = [r for r in caplog.records if "failed for session" in r.getMessage()]
    assert len(failures) == 9
    for record in failures:
        assert record.exc_info is not None and "fails on purpose" in str(record.exc_info[1])
    assert {r.getMessage().rsplit(" ", 1)[-1] for r in failures} == set(created)


@pytest.mark.requires_patch("keep_modules")
def test_main_py_globals_survive_for_destroy_callbacks() -> None:
    with running_server(APPS / "globals_trap") as running:
        open_each_kind(running, per_kind=2)
    assert len(probe.sessions_with("destroyed")) == 6
    assert set(probe.sessions_with("destroyed").values()) == {1}


def test_naive_bokeh_loses_the_same_cleanup(caplog: pytest.LogCaptureFixture) -> None:
    """Control for the test above: served as a plain script, Bokeh's cleared globals break it."""
    caplog.set_level(logging.WARNING)
    with running_server(APPS / "globals_trap" / "main.py") as running:
        open_each_kind(running, per_kind=2)
    assert probe.sessions_with("destroyed") == {}
    assert any("is not defined" in r.getMessage() for r in caplog.records)


@pytest.mark.requires_patch("keep_modules")
def test_a_cleanup_may_call_helpers_that_read_main_py_globals(caplog: pytest.LogCaptureFixture) -> None:
    """cleanup -> method -> helper -> global, and a destroy callback -> helper -> global, all in main.py."""
    caplog.set_level(logging.ERROR)
    with running_server(APPS / "cleanup_chain") as running:
        open_each_kind(running, per_kind=2)
    created = probe.sessions_with("created")
    assert len(created) == 6
    assert probe.sessions_with("released") == created, "every handle closed exactly once"
    assert probe.sessions_with("finished") == created
    assert not [r for r in caplog.records if "failed for session" in r.getMessage()]


def test_without_keeping_main_py_the_chain_breaks(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control for the test above: with main.py cleared before the cleanups (Bokeh's order, no
    keeping), the same chain raises NameError and no handle is closed."""
    monkeypatch.setattr(lifecycle, "keep_modules_for_cleanups", lambda session_context, store: None)
    caplog.set_level(logging.ERROR)
    with running_server(APPS / "cleanup_chain") as running:
        open_each_kind(running, per_kind=1)
    assert len(probe.sessions_with("created")) == 3
    assert probe.sessions_with("released") == {} and probe.sessions_with("finished") == {}
    failures = [r for r in caplog.records if "failed for session" in r.getMessage()]
    assert len(failures) == 6 and all(isinstance(r.exc_info[1], NameError) for r in failures)
