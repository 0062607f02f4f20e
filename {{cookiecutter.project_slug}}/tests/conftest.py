"""Fixtures: a real Bokeh server for the project's app, on 127.0.0.1 and an OS-chosen port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.server import patches, stall_free
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import env_var, get_settings
from {{ cookiecutter.package_name }}_devtools.memory_cgroup import cgroup_unavailable_reason
from {{ cookiecutter.package_name }}_devtools.testing import RunningServer, running_server

TESTS_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """Run every in-process server as ``python -m <package> serve`` runs: with stall-free expiry."""
    stall_free.install()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires_patch(name, ...)``: skip, with the reason, where a piece is off here."""
    for mark in item.iter_markers("requires_patch"):
        for name in mark.args:
            status = patches.statuses()[name]
            if not status.active:
                pytest.skip(f"{name} is off: {status.reason}")


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set project settings by env var inside a test; the cached settings are reset around it."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def server() -> Iterator[RunningServer]:
    """The project's app on a real server with short session expiry (1.5 s, checked every 100 ms).

    The lifetime must outlast opening a test's sessions: HTTP-only sessions start idle.
    """
    with running_server(APP_DIR, unused_session_lifetime_ms=1500) as running:
        yield running


@pytest.fixture
def payload_mb(settings_env: pytest.MonkeyPatch) -> float:
    """Make every session of the demo app hold 20 MB, so a leak cannot hide in RSS noise."""
    settings_env.setenv(env_var("session_payload_mb"), "20")
    return 20.0


@pytest.fixture(scope="session")
def real_memory_limit() -> None:
    """Tests that need a real kernel memory limit: skipped with the reason where no memory cgroup
    can be made here (not root, no controller), and failed instead under ``CI``, where they must run."""
    reason = cgroup_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the memory-limit tests, but no memory cgroup can be made: {reason}")
    pytest.skip(f"no memory cgroup can be made here: {reason}")
