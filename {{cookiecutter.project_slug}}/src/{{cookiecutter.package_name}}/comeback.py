"""Retry, within moments, a session that Bokeh scheduled to discard but found busy.

Bokeh discards an expired session only if nothing else holds its document lock at that moment;
otherwise it logs "Session '<id>' was scheduled to discard but came back to life" and leaves the
session for the next unused-session check (``--check-unused-sessions``, 60 s here by default).
On Bokeh 3.10, which runs locked callbacks in an executor, a periodic callback of an idle session
is often mid-run when a mass expiry comes, so a share of expired sessions outlive the batch by a
whole check interval. This handler listens for Bokeh's log line and retries that one session
shortly after, while it is still idle and unlocked, so an expiry batch really empties.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from . import server_control

BOKEH_LOGGER = "bokeh.server.contexts"
_CAME_BACK = re.compile(r"Session '([^']+)' was scheduled to discard but came back to life")

log = logging.getLogger(__name__)


class ComebackRetry(logging.Handler):
    """A logging handler on Bokeh's contexts logger that retries busy expired sessions."""

    def __init__(self, server: Any, delay_s: float = 0.1, attempts: int = 20) -> None:
        super().__init__(level=logging.WARNING)
        self.server = server
        self.delay_s = delay_s
        self.attempts = attempts
        self.retried = 0
        self._loop = server.io_loop.asyncio_loop

    def emit(self, record: logging.LogRecord) -> None:
        match = _CAME_BACK.search(record.getMessage())
        if match:
            self._loop.call_soon_threadsafe(self._schedule, match.group(1), self.attempts)

    def _schedule(self, session_id: str, attempts: int) -> None:
        self._loop.call_later(self.delay_s, lambda: asyncio.ensure_future(self._retry(session_id, attempts)))

    async def _retry(self, session_id: str, attempts: int) -> None:
        found = server_control.find_session(self.server, session_id)
        if found is None:
            return
        context, session = found
        if session.connection_count:
            return  # a client came back: the session lives on
        if session.expiration_blocked:
            if attempts > 1:
                self._schedule(session_id, attempts - 1)
            return
        self.retried += 1
        await server_control.discard_sessions([(context, session)])

    def install(self) -> ComebackRetry:
        bokeh_logger = logging.getLogger(BOKEH_LOGGER)
        bokeh_logger.addHandler(self)
        return self

    def uninstall(self) -> None:
        logging.getLogger(BOKEH_LOGGER).removeHandler(self)
