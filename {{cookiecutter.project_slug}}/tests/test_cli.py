"""The two ways to run the app, as a user would: ``python -m <package> serve`` and ``bokeh serve``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bokeh.client import pull_session

from {{ cookiecutter.package_name }} import APP_DIR
from {{ cookiecutter.package_name }}.settings import get_settings
from {{ cookiecutter.package_name }}.testing import free_port


def serve_and_pull(command: list[str], port: int, timeout: float = 30.0) -> str:
    """Start ``command``, pull a session from it, stop it; returns the server's log."""
    # No drain on SIGTERM here: test_ops.py covers draining.
    env = {**os.environ, "{{ cookiecutter.package_name | upper }}_DRAIN_SECONDS": "0"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            log.append(line)
            if "Bokeh app running at" in line:
                break
        else:
            pytest.fail("server did not start:\n" + "".join(log))
        with pull_session(url=f"http://127.0.0.1:{port}/app") as session:
            assert session.document.get_model_by_name("main_plot") is not None
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        log.append(output)
    return "".join(log)


def test_module_cli_serves_with_the_answered_flags() -> None:
    port = free_port()
    settings = get_settings()
    log = serve_and_pull([sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve", "--port", str(port)], port)
    assert f"http://127.0.0.1:{port}/app" in log
    assert f"Unused sessions last for {settings.unused_session_lifetime_ms} milliseconds" in log
    assert f"Check for unused sessions every {settings.check_unused_sessions_ms} milliseconds" in log


def test_plain_bokeh_serve_runs_the_same_app() -> None:
    port = free_port()
    settings = get_settings()
    bokeh = str(Path(sys.executable).with_name("bokeh"))
    command = [
        bokeh, "serve", str(APP_DIR), "--address", "127.0.0.1", "--port", str(port),
        "--unused-session-lifetime", str(settings.unused_session_lifetime_ms),
        "--check-unused-sessions", str(settings.check_unused_sessions_ms),
    ]  # fmt: skip
    log = serve_and_pull(command, port)
    assert f"http://127.0.0.1:{port}/app" in log
