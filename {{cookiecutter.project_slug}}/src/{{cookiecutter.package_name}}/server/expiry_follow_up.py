"""Finish each expiry batch: retry, within moments, expired sessions Bokeh skipped because busy.

Bokeh's unused-session check skips an expired session whose document lock is held at that moment
(silently, or after "Session '<id>' was scheduled to discard but came back to life") and leaves it
for the next check (``--check-unused-sessions``, 60 s here by default). On Bokeh 3.10, which runs
locked callbacks in an executor, an idle session's periodic callback is often mid-run when a mass
expiry comes, so part of every batch outlived it by a whole check interval (measured: 200 sessions
took 20-80 s to go instead of 0.2 s).

``ExpiryFollowUp`` wraps each application context's ``_cleanup_sessions`` (the coroutine Bokeh's
check awaits; same signature in Bokeh 3.8-3.10): after Bokeh's pass, every session that is still
there although it is expired and has no connection is retried shortly after, while it is still
idle and no longer locked. Nothing else changes: a session is only ever discarded when Bokeh's own
rule (no connection, idle longer than the lifetime) holds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from . import server_control

log = logging.getLogger(__name__)


class ExpiryFollowUp:
    """Retries expired sessions that Bokeh's check left behind."""

    def __init__(self, server: Any, delay_s: float = 0.1, attempts: int = 50) -> None:
        self.server = server
        self.delay_s = delay_s
        self.attempts = attempts
        self.retried = 0
        self._originals: list[tuple[Any, Any]] = []
        self._tasks: set[asyncio.Future[None]] = set()

    def install(self) -> ExpiryFollowUp:
        for context in server_control.application_contexts(self.server):
            original = context._cleanup_sessions
            context._cleanup_sessions = functools.partial(self._cleanup_then_follow_up, context, original)
            self._originals.append((context, original))
        return self

    def uninstall(self) -> None:
        for context, original in self._originals:
            context._cleanup_sessions = original
        self._originals.clear()

    async def _cleanup_then_follow_up(self, context: Any, original: Any, linger_ms: int) -> None:
        await original(linger_ms)
        for session in list(context.sessions):
            if self._expired(session, linger_ms):
                self._schedule(context, session, linger_ms, self.attempts)

    @staticmethod
    def _expired(session: Any, linger_ms: int) -> bool:
        return (
            not session.destroyed
            and session.connection_count == 0
            and session.milliseconds_since_last_unsubscribe > linger_ms
        )

    def _schedule(self, context: Any, session: Any, linger_ms: int, attempts: int) -> None:
        loop = asyncio.get_running_loop()

        def start() -> None:
            task = asyncio.ensure_future(self._retry(context, session, linger_ms, attempts))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loop.call_later(self.delay_s, start)

    async def _retry(self, context: Any, session: Any, linger_ms: int, attempts: int) -> None:
        if not self._expired(session, linger_ms):
            return  # gone already, or a client came back
        if session.expiration_blocked:
            if attempts > 1:
                self._schedule(context, session, linger_ms, attempts - 1)
            return
        self.retried += 1
        await server_control.discard_sessions([(context, session)])
