"""What ``python -m <package> serve`` adds to a running Bokeh server.

``attach`` starts the event-loop lag monitor and the memory guard, binds the metrics to the server
and installs the expiry follow-up; ``Runtime.stop`` undoes it (``shutdown.py`` calls it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import memory, metrics, server_control
from .expiry_follow_up import ExpiryFollowUp
from .guard import MemoryGuard
from .ops import OpsState
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The pieces attached to one server."""

    server: Any
    state: OpsState
    guard: MemoryGuard
    expiry_follow_up: ExpiryFollowUp

    def stop(self) -> None:
        """Stop the timers and handlers ``attach`` started (on the server's loop thread)."""
        self.guard.stop()
        self.state.lag.stop()
        self.expiry_follow_up.uninstall()


def attach(server: Any, state: OpsState, settings: Settings) -> Runtime:
    """Start lag monitor and memory guard for ``server``; call on the server's loop thread."""
    server_control.check_internals(server)
    state.live_sessions = lambda: len(server.get_sessions())
    metrics.bind_server(state.live_sessions, lambda: state.ready)
    memory.bind_loop(server.io_loop.asyncio_loop)
    state.lag.start(server.io_loop)
    guard = MemoryGuard(server, state, settings.memory_soft_limit_bytes, settings.memory_check_interval_ms)
    guard.start()
    return Runtime(server, state, guard, ExpiryFollowUp(server).install())
