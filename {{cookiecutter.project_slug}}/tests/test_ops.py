"""Operations: routes that create no session, the memory guard, and the draining SIGTERM."""

from __future__ import annotations

import dataclasses
import json
import signal
import time

import pytest
from bokeh.client import pull_session

from {{ cookiecutter.package_name }}.server.session_gate import WARM_UP_PREFIX
from {{ cookiecutter.package_name }}.server.settings import env_var, get_settings
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import project_server
from {{ cookiecutter.package_name }}_devtools.testing import http_get, open_http_session, running_runtime

METRIC_NAMES = (
    "bokeh_sessions_live",
    "bokeh_sessions_created_total",
    "bokeh_sessions_destroyed_total",
    "bokeh_session_cleanup_failures_total",
    "bokeh_session_cleanup_seconds_bucket",
    "bokeh_process_rss_bytes",
    "bokeh_event_loop_lag_seconds",
    "bokeh_memory_guard_evictions_total",
)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture(scope="module", params=["", "/dash"], ids=["no-prefix", "prefix"])
def cli(request):
    with project_server(prefix=request.param) as server:
        yield server


def test_routes_answer_and_create_no_session(cli) -> None:
    status, body = http_get(cli.url("/healthz"))
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert "loop_lag_ms" in json.loads(body)
    status, body = http_get(cli.url("/readyz"))
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, text = http_get(cli.url("/metrics"))
    assert status == 200
    for name in METRIC_NAMES:
        assert any(line.startswith(name) for line in text.splitlines()), name
    created_at_start = metric(text, "bokeh_sessions_created_total")  # the warm-up sessions
    for _ in range(100):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert http_get(cli.url(path))[0] == 200
    text = http_get(cli.url("/metrics"))[1]
    assert metric(text, "bokeh_sessions_created_total") == created_at_start
    assert metric(text, "bokeh_sessions_live") == 0
    # Control: the app URL does create a session, and the metrics see it.
    assert http_get(cli.url("/app"))[0] == 200
    text = http_get(cli.url("/metrics"))[1]
    assert metric(text, "bokeh_sessions_created_total") == created_at_start + 1
    assert metric(text, "bokeh_sessions_live") == 1


@pytest.mark.requires_patch("server_control")
def test_memory_guard_sheds_idle_sessions_only_and_recovers() -> None:
    settings = dataclasses.replace(get_settings(), memory_check_interval_ms=100)
    # A lifetime of a minute: only the guard can expire sessions during this test.
    with running_runtime(settings, unused_session_lifetime_ms=60_000) as (running, attached):
        connected = [pull_session(url=running.url()) for _ in range(2)]
        try:
            for _ in range(4):
                open_http_session(running)
            attached.guard.soft_limit_bytes = 2**20  # 1 MB: over it from now on
            assert running.wait_for_sessions(2, timeout=10) == 2, "idle sessions were not shed"
            assert http_get(running.url("/readyz"))[0] == 503
            assert attached.guard.evictions == 4
            alive = running.call(lambda: sorted(s.id for s in running.server.get_sessions()))
            assert alive == sorted(c.id for c in connected), "a connected session was expired"
            attached.guard.soft_limit_bytes = 1 << 50
            assert wait_until(lambda: http_get(running.url("/readyz"))[0] == 200, 5)
            recoveries = metric(
                http_get(running.url("/metrics"))[1], "bokeh_memory_guard_recovery_seconds_count"
            )
            assert recoveries >= 1, "the guard timed its recovery"
        finally:
            for client in connected:
                client.close()


@pytest.mark.requires_patch("server_control")
def test_sigterm_drains_then_runs_every_cleanup_and_exits_0() -> None:
    drain = 2.0
    with project_server(env={env_var("drain_seconds"): str(drain)}) as server:
        clients = [pull_session(url=server.url("/app")) for _ in range(2)]
        for _ in range(2):
            assert http_get(server.url("/app"))[0] == 200
        ids = {client.id for client in clients}
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: http_get(server.url("/readyz"))[0] == 503, 2, interval=0.02)
        assert http_get(server.url("/readyz"))[0] == 503, "readiness must turn off at once"
        assert http_get(server.url("/healthz"))[0] == 200, "still alive while draining"
        code = server.process.wait(timeout=drain + 5)
        elapsed = time.monotonic() - started
        for client in clients:
            client.close()
    assert code == 0, server.log
    assert drain - 0.5 <= elapsed <= drain + 5
    cleaned = [line for line in server.lines if "cleaned up in" in line and WARM_UP_PREFIX not in line]
    assert len(cleaned) == 4, server.log
    assert all(any(session_id in line for line in cleaned) for session_id in ids)
    assert "Drained: 4 session(s) discarded" in server.log
