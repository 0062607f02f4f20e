"""What ``python -m <package> serve`` adds to a running Bokeh server.

``attach`` starts the event-loop lag monitor, binds the metrics to the server and, where
``patches.py`` says this Bokeh allows them, starts the memory guard, installs admission control
with the watch on sessions nobody connects to; ``Runtime.stop`` undoes it (``shutdown.py`` calls
it). The modules of pieces that are off are not even imported. Expiry in slices is process-wide
(``stall_free.install``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import full_collections, memory, metrics, patches
from .admission import Admission
from .ops import OpsState
from .settings import Settings

if TYPE_CHECKING:
    from .guard import MemoryGuard
    from .session_gate import SessionGate
    from .unconnected import UnconnectedSessions


@dataclass
class Runtime:
    """The pieces attached to one server (``None``: off on this Bokeh, see ``patches.py``)."""

    server: Any
    state: OpsState
    guard: MemoryGuard | None = None
    gate: SessionGate | None = None
    unconnected: UnconnectedSessions | None = None

    async def warm_up(self, sessions: int) -> None:
        """Build and discard throwaway sessions to measure a session's cost before users come (the
        measurement is admission control's: without the gate, there is nothing to warm up for)."""
        if self.gate is not None:
            await self.gate.warm_up(sessions)

    def stop(self) -> None:
        """Stop the timers and handlers ``attach`` started (on the server's loop thread)."""
        self.state.lag.stop()
        for piece, stop in (
            (self.guard, "stop"),
            (self.gate, "uninstall"),
            (self.unconnected, "stop"),
        ):
            if piece is not None:
                getattr(piece, stop)()


def attach(server: Any, state: OpsState, settings: Settings, login: Any = None) -> Runtime:
    """Start lag monitor, memory guard and admission control for ``server``; call on its loop thread.

    ``login`` (``login.OidcLogin``) lets the session gate skip requests without a user."""
    state.live_sessions = lambda: len(server.get_sessions())
    metrics.bind_server(state.live_sessions, lambda: state.ready)
    memory.bind_loop(server.io_loop.asyncio_loop)
    full_collections.bind_live_sessions(state.live_sessions)
    state.lag.start(server.io_loop)
    runtime = Runtime(server, state)
    if patches.is_active("server_control"):
        from .guard import MemoryGuard

        runtime.guard = MemoryGuard(
            server, state, settings.memory_soft_limit_bytes, settings.memory_check_interval_ms
        )
        runtime.guard.start()
    if patches.is_active("session_gate"):
        from .session_gate import SessionGate
        from .unconnected import UnconnectedSessions

        admission = Admission(
            settings.admission_limit_bytes,
            max_sessions=settings.max_sessions,
            rss=memory.process_rss,
            live_sessions=state.live_sessions,
        )
        metrics.bind_admission(
            lambda: admission.pending, admission.cost.estimate, settings.admission_limit_bytes
        )
        runtime.unconnected = UnconnectedSessions(settings.unconnected_grace_ms)
        runtime.gate = SessionGate(
            server, admission, runtime.unconnected, settings.retry_after_s, login
        ).install()
    return runtime
