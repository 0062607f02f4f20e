"""What ``python -m <package> serve`` adds to a running Bokeh server.

``attach`` starts the event-loop lag monitor and the memory guard, installs admission control with
the watch on sessions nobody connects to, binds the metrics to the server and installs the expiry
follow-up; ``Runtime.stop`` undoes it (``shutdown.py`` calls it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import memory, metrics, server_control
from .admission import Admission
from .expiry_follow_up import ExpiryFollowUp
from .guard import MemoryGuard
from .ops import OpsState
from .session_gate import SessionGate
from .settings import Settings
from .unconnected import UnconnectedSessions


@dataclass
class Runtime:
    """The pieces attached to one server."""

    server: Any
    state: OpsState
    guard: MemoryGuard
    expiry_follow_up: ExpiryFollowUp
    gate: SessionGate
    unconnected: UnconnectedSessions

    def stop(self) -> None:
        """Stop the timers and handlers ``attach`` started (on the server's loop thread)."""
        self.guard.stop()
        self.state.lag.stop()
        self.expiry_follow_up.uninstall()
        self.gate.uninstall()
        self.unconnected.stop()


def attach(server: Any, state: OpsState, settings: Settings, login: Any = None) -> Runtime:
    """Start lag monitor, memory guard and admission control for ``server``; call on its loop thread.

    ``login`` (``login.OidcLogin``) lets the session gate skip requests without a user."""
    server_control.check_internals(server)
    state.live_sessions = lambda: len(server.get_sessions())
    metrics.bind_server(state.live_sessions, lambda: state.ready)
    memory.bind_loop(server.io_loop.asyncio_loop)
    state.lag.start(server.io_loop)
    guard = MemoryGuard(server, state, settings.memory_soft_limit_bytes, settings.memory_check_interval_ms)
    guard.start()
    admission = Admission(
        settings.admission_limit_bytes,
        max_sessions=settings.max_sessions,
        rss=memory.process_rss,
        live_sessions=state.live_sessions,
    )
    metrics.bind_admission(lambda: admission.pending, admission.cost.estimate, settings.admission_limit_bytes)
    unconnected = UnconnectedSessions(settings.unconnected_grace_ms)
    gate = SessionGate(server, admission, unconnected, settings.retry_after_s, login).install()
    return Runtime(server, state, guard, ExpiryFollowUp(server).install(), gate, unconnected)
