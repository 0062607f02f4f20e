"""Operations routes: ``/healthz``, ``/readyz`` and ``/metrics``.

Bokeh has no health endpoint, and every GET of an app URL creates a full session, so probes must
never hit the app. These are plain Tornado handlers passed to Bokeh as ``extra_patterns`` (Bokeh
prefixes them with ``--prefix``); none of them touches a session, and none asks for a login.
With a metrics port (``METRICS_PORT``), ``/readyz`` and ``/metrics`` are served only there, by a
second Tornado server on the same event loop (``start_metrics_server``), so a proxy in front of the
Bokeh port cannot expose them; ``/healthz`` stays on both. ``OpsState`` holds what they report:
readiness (draining, memory guard) and the event-loop lag measured by ``LoopLagMonitor``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.web import Application, RequestHandler

from . import metrics, patches


class LoopLagMonitor:
    """Measures how late the event loop runs a timer: the loop's responsiveness."""

    def __init__(self, interval_s: float = 0.1, window_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self.max_lag_s = 0.0
        self.window_lag_s = 0.0
        self._window_started = time.monotonic()
        self._expected: float | None = None
        self._loop: IOLoop | None = None
        self._handle: object | None = None

    def start(self, loop: IOLoop) -> None:
        self._loop = loop
        loop.add_callback(self._tick)

    def stop(self) -> None:
        if self._loop is not None and self._handle is not None:
            self._loop.remove_timeout(self._handle)
        self._loop = None

    def _tick(self) -> None:
        if self._loop is None:
            return
        now = time.monotonic()
        if self._expected is not None:
            lag = max(0.0, now - self._expected)
            self.max_lag_s = max(self.max_lag_s, lag)
            if now - self._window_started > self.window_s:
                self._window_started, self.window_lag_s = now, lag
            else:
                self.window_lag_s = max(self.window_lag_s, lag)
            metrics.loop_lag.set(self.window_lag_s)
            metrics.max_loop_lag.set(self.max_lag_s)
        self._expected = now + self.interval_s
        self._handle = self._loop.call_later(self.interval_s, self._tick)


@dataclass
class OpsState:
    """What the operations routes report; shared by the handlers, the guard and the shutdown."""

    draining: bool = False
    over_memory_limit: bool = False
    live_sessions: Callable[[], int] = lambda: 0
    lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    started_at: float = field(default_factory=time.time)

    @property
    def ready(self) -> bool:
        return not self.draining and not self.over_memory_limit

    def reasons(self) -> list[str]:
        return [
            name
            for name, on in (("draining", self.draining), ("over memory soft limit", self.over_memory_limit))
            if on
        ]


class _OpsHandler(RequestHandler):
    state: OpsState

    def initialize(self, state: OpsState) -> None:
        self.state = state

    def write_json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


class HealthHandler(_OpsHandler):
    """Liveness: the process and its event loop answer; also which runtime pieces are on."""

    def get(self) -> None:
        self.write_json(
            200,
            {
                "status": "ok",
                "uptime_s": round(time.time() - self.state.started_at, 1),
                "loop_lag_ms": round(self.state.lag.window_lag_s * 1e3, 1),
                "loop_lag_max_ms": round(self.state.lag.max_lag_s * 1e3, 1),
                **patches.report(),
            },
        )


class ReadyHandler(_OpsHandler):
    """Readiness: 503 while draining or over the memory soft limit."""

    def get(self) -> None:
        ready = self.state.ready
        self.write_json(
            200 if ready else 503,
            {
                "status": "ready" if ready else "unavailable",
                "reasons": self.state.reasons(),
                "sessions": self.state.live_sessions(),
            },
        )


class MetricsHandler(_OpsHandler):
    """Prometheus exposition of ``metrics.registry``."""

    def get(self) -> None:
        body, content_type = metrics.render()
        self.set_header("Content-Type", content_type)
        self.finish(body)


def ops_patterns(
    state: OpsState, *, internal: bool = True
) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    """``extra_patterns`` for ``bokeh.server.server.Server`` (Bokeh adds ``--prefix``).

    ``internal=False`` leaves out ``/readyz`` and ``/metrics`` (they are on the metrics port).
    """
    patterns: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
        (r"/healthz/?", HealthHandler, {"state": state})
    ]
    if internal:
        patterns += [
            (r"/readyz/?", ReadyHandler, {"state": state}),
            (r"/metrics/?", MetricsHandler, {"state": state}),
        ]
    return patterns


def start_metrics_server(state: OpsState, address: str | None, port: int) -> HTTPServer:
    """Serve the operations routes on ``port`` (on the current event loop); call ``stop()`` to close."""
    server = HTTPServer(Application(ops_patterns(state)), max_body_size=4096)
    server.listen(port, address or "")
    return server
