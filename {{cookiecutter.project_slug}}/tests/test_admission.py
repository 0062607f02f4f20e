"""Admission control, sessions nobody connects to, and request limits.

The decision itself is tested on fake RSS readings; the door (503 + Retry-After, websocket closed
with 1013) on a real server whose admission is capped at one session; the grace on a real server
with a short grace and a long idle lifetime (so only the grace can end a session); the body limit
on the real CLI with a raw socket that sends only the headers of a 10 MB POST. Each has its
control: the second session is refused while the first, attached, one works; a connected session
outlives the grace; bare ``bokeh serve`` waits to read the same body instead of refusing it.
"""

from __future__ import annotations

import dataclasses
import gc
import socket
import time
import urllib.request
import weakref
from collections.abc import Iterator

import pytest
from bokeh.client import pull_session
from bokeh.util.token import generate_jwt_token, generate_session_id

from {{ cookiecutter.package_name }}.server.admission import TICKET_TTL_S, Admission, Refusal, Ticket
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.session_gate import TRY_AGAIN_LATER
from {{ cookiecutter.package_name }}.server.settings import get_settings
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import bokeh_command, free_port, project_server, served
from {{ cookiecutter.package_name }}_devtools.testing import (
    RunningServer,
    http_get,
    http_request,
    page_token,
    running_runtime,
    websocket_handshake,
)

MB = 2**20


# --- the decision --------------------------------------------------------------------------------


class Machine:
    """Fake RSS, live sessions and clock for ``Admission``."""

    def __init__(self, rss_mb: float) -> None:
        self.rss = int(rss_mb * MB)
        self.live = 0
        self.now = 0.0

    def admission(self, limit_mb: float, max_sessions: int = 0) -> Admission:
        return Admission(
            int(limit_mb * MB),
            max_sessions=max_sessions,
            rss=lambda: self.rss,
            live_sessions=lambda: self.live,
            clock=lambda: self.now,
        )

    def build(self, admission: Admission, ticket: Ticket | Refusal, session_mb: float) -> None:
        """The ticket's session is built: RSS grows by ``session_mb``."""
        assert isinstance(ticket, Ticket), ticket
        self.rss += int(session_mb * MB)
        self.live += 1
        admission.built(ticket, succeeded=True)


def test_the_first_session_is_admitted_alone_then_its_measured_cost_decides() -> None:
    machine = Machine(rss_mb=100)
    admission = machine.admission(limit_mb=200)
    first = admission.admit()
    assert isinstance(first, Ticket)
    assert isinstance(refused := admission.admit(), Refusal) and refused.reason == "measuring"
    machine.build(admission, first, session_mb=30)
    assert admission.cost.estimate() == pytest.approx(30 * MB, rel=0.01)
    for _ in range(2):  # 130 -> 190 MB: two more fit under 200 ...
        machine.build(admission, admission.admit(), session_mb=30)
    refused = admission.admit()  # ... a fourth would reach 220
    assert isinstance(refused, Refusal) and refused.reason == "memory", refused
    assert "would pass the admission limit 200 MB" in refused.detail


def test_sessions_admitted_but_not_built_count_against_the_limit() -> None:
    machine = Machine(rss_mb=100)
    admission = machine.admission(limit_mb=200)
    machine.build(admission, admission.admit(), session_mb=30)  # measured: 30 MB a session
    starting = [admission.admit(), admission.admit()]  # 130 MB + 2 x 30 on the way
    assert all(isinstance(ticket, Ticket) for ticket in starting) and admission.pending == 2
    assert isinstance(admission.admit(), Refusal), "130 + 3 x 30 > 200 although RSS is still 130"
    machine.now += TICKET_TTL_S + 1  # their clients went away before the sessions were built
    assert admission.pending == 0 and isinstance(admission.admit(), Ticket)


def test_over_the_limit_or_at_the_session_cap_nothing_is_admitted() -> None:
    machine = Machine(rss_mb=250)
    assert admission_reason(machine.admission(limit_mb=200)) == "memory"
    machine.rss, machine.live = 50 * MB, 3
    assert admission_reason(machine.admission(limit_mb=200, max_sessions=3)) == "max_sessions"
    assert admission_reason(machine.admission(limit_mb=200, max_sessions=4)) is None


def admission_reason(admission: Admission) -> str | None:
    decision = admission.admit()
    return decision.reason if isinstance(decision, Refusal) else None


def test_the_cost_is_the_footprint_when_creations_overlap() -> None:
    """In a crowd no creation is alone; the footprint above the idle baseline still measures."""
    machine = Machine(rss_mb=100)
    admission = machine.admission(limit_mb=1000)
    admission.refusal()  # idle: the baseline is 100 MB
    machine.build(admission, admission.admit(), session_mb=40)
    first, second = admission.admit(), admission.admit()
    machine.build(admission, first, session_mb=40)
    machine.build(admission, second, session_mb=40)
    assert admission.cost.footprint == pytest.approx(40 * MB, rel=0.01)


# --- the door, on a real server --------------------------------------------------------------------


@pytest.fixture
def one_session_server() -> Iterator[RunningServer]:
    """The app on a real server with the runtime attached and admission capped at one session."""
    settings = dataclasses.replace(get_settings(), max_sessions=1, retry_after_s=7)
    with running_runtime(settings, unused_session_lifetime_ms=60_000) as (running, _runtime):
        yield running


@pytest.mark.requires_patch("session_gate")
def test_a_refused_page_gets_503_retry_after_and_a_page(
    one_session_server: RunningServer,
) -> None:
    running = one_session_server
    first = http_request(running.url())
    assert first.status == 200
    refused = http_request(running.url())
    assert refused.status == 503 and refused.headers["Retry-After"] == "7"
    assert "busy" in refused.body and "try again in 7 seconds" in refused.body
    assert running.session_count() == 1, "the refused page left no session behind"
    metrics = http_get(running.url("/metrics"))[1]
    assert 'bokeh_sessions_refused_total{kind="page",reason="max_sessions"} 1.0' in metrics

    # The admitted page's own websocket attaches to its session: never refused.
    token = page_token(first.body)
    websocket = websocket_handshake(running.port, "/app/ws", token)
    websocket.sock.close()
    assert websocket.status == 101


@pytest.mark.requires_patch("session_gate")
def test_a_refused_websocket_is_closed_with_1013_and_why(
    one_session_server: RunningServer,
) -> None:
    running = one_session_server
    with pull_session(url=running.url()) as admitted:
        # A second new session through a websocket (what bokeh.client does): refused.
        token = generate_jwt_token(generate_session_id(), signed=False)
        websocket = websocket_handshake(running.port, "/app/ws", token)
        try:
            assert websocket.status == 101, websocket.status_line
            frame = websocket.first_frame
        finally:
            websocket.sock.close()
        assert frame[0] == 0x88, f"expected a close frame, got {frame[:2]!r}"
        code = int.from_bytes(frame[2:4], "big")
        assert code == TRY_AGAIN_LATER and b"server full (max_sessions)" in frame[4:]
        assert running.session_count() == 1
        admitted.document.get_model_by_name("window").value = 5
        admitted.force_roundtrip()  # the admitted session keeps working
    metrics = http_get(running.url("/metrics"))[1]
    assert 'bokeh_sessions_refused_total{kind="websocket",reason="max_sessions"} 1.0' in metrics


# --- sessions nobody connects to -------------------------------------------------------------------


def metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


@pytest.mark.requires_patch("session_gate")
def test_a_page_session_without_websocket_is_discarded_after_the_grace() -> None:
    """Control in the same run: a connected session, older than the grace, is still there."""
    settings = dataclasses.replace(get_settings(), unconnected_grace_ms=400)
    with running_runtime(settings, unused_session_lifetime_ms=60_000) as (running, _runtime):
        connected = pull_session(url=running.url())
        pages_from = time.monotonic()  # each page's session is built after this, and goes a grace later
        for _ in range(3):
            assert http_get(running.url())[0] == 200
        assert metric(http_get(running.url("/metrics"))[1], "bokeh_sessions_live") == 4
        assert wait_until(lambda: running.session_count() == 1, 10), "unconnected sessions stayed"
        assert 0.4 <= time.monotonic() - pages_from <= 5
        text = http_get(running.url("/metrics"))[1]
        assert metric(text, "bokeh_sessions_live") == 1
        assert metric(text, "bokeh_sessions_unconnected_discarded_total") == 3
        assert running.call(lambda: [s.id for s in running.server.get_sessions()]) == [connected.id]
        connected.close()


@pytest.mark.requires_patch("session_gate")
def test_a_page_session_that_expires_within_its_grace_is_not_kept_by_its_timer() -> None:
    """The idle lifetime (0.3 s) ends the session long before its grace (60 s): once discarded it is
    freed and its grace timer is gone. How we know this can fail: a timer holding the session
    itself (as it did) keeps it alive, with its lock and timer, for the whole grace."""
    settings = dataclasses.replace(get_settings(), unconnected_grace_ms=60_000)
    with running_runtime(settings, unused_session_lifetime_ms=300) as (running, runtime):
        assert http_get(running.url())[0] == 200
        session_ref = running.call(lambda: weakref.ref(running.server.get_sessions()[0]))
        assert runtime.unconnected is not None and len(runtime.unconnected._watched) == 1
        assert wait_until(lambda: running.session_count() == 0, 10), "the session did not expire"
        # Bokeh's discard still holds it while its destroy hooks run: wait for that, not the grace.
        freed = wait_until(lambda: gc.collect() >= 0 and session_ref() is None, 10)
        assert freed, "the discarded session is still alive"
        assert running.call(lambda: len(runtime.unconnected._watched)) == 0


# --- request limits ----------------------------------------------------------------------------------


TEN_MB = 10 * 2**20


def post_headers_only(port: int, path: str, timeout: float = 1.5) -> str:
    """Send the headers of a 10 MB POST and no body; the first response line, or "" if none came."""
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {TEN_MB}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0].decode()
        except TimeoutError:
            return ""


def test_a_10_mb_post_is_refused_before_its_body_is_read() -> None:
    with project_server() as server:
        post_headers_only(server.port, "/healthz")  # warm-up: the first refusal loads Tornado's error path
        assert http_get(server.url("/healthz"))[0] == 200
        before = server.rss_bytes()
        for path in ("/app", "/healthz", "/metrics", "/no-such-route"):
            assert post_headers_only(server.port, path).startswith("HTTP/1.1 400"), path
        # And a real 10 MB body, sent whole: refused the same way, RSS unmoved.
        status = None
        try:
            request = urllib.request.Request(server.url("/app"), data=b"x" * TEN_MB, method="POST")
            status = http_request(request).status
        except OSError:
            status = "connection closed while sending"  # the server stopped reading: also a refusal
        assert status in (400, "connection closed while sending"), status
        assert server.rss_bytes() - before < 2 * MB, (before, server.rss_bytes())


def test_bare_bokeh_serve_waits_to_read_the_same_body() -> None:
    """Control: without the limit the same headers get no answer; the server waits for 10 MB."""
    port = free_port()
    with served(bokeh_command(APP_DIR, port, "--address", "127.0.0.1"), port):
        assert post_headers_only(port, "/app") == ""
