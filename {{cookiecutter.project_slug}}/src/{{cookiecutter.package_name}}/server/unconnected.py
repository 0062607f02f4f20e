"""Sessions nobody connects to: discarded after a short grace, not after the full idle lifetime.

Every page GET of an app URL builds a whole session (``main.py`` runs, its data is loaded) that
waits for the page's websocket. Bots, link previews, prefetching browsers and probes pointed at the
app URL never open it, and Bokeh keeps each such session for the full unused-session lifetime
(minutes): a thousand anonymous GETs are a thousand sessions. ``UnconnectedSessions`` gives a
session built by a page ``grace_ms`` to be claimed by its websocket (``session_gate.py`` reports
both events); one still unclaimed and without a connection then is discarded, its cleanups run as
for any other discard, and it is counted (``bokeh_sessions_unconnected_discarded_total``).

The grace timer refers to the session weakly and is cancelled when the session is freed: a session
discarded before its grace ends (expired, shed by the memory guard) is not kept alive by its
timer (measured: 2,000 such sessions, each kept with its lock, timer and context, made up two
thirds of what the full collection after their expiry had to walk).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from . import metrics, server_control

log = logging.getLogger(__name__)


class UnconnectedSessions:
    """Watches page-built sessions for their websocket; discards those that never get one."""

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self.discarded = 0
        self._watched: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, context: Any, session: Any) -> None:
        """``session`` was built for a page: discard it unless a websocket claims it in time."""
        loop = asyncio.get_running_loop()
        session_id = str(session.id)
        session_ref = weakref.ref(session, lambda _ref: self.attached(session_id))  # freed: timer off
        self._watched[session_id] = loop.call_later(self.grace_ms / 1000, self._expire, context, session_ref)

    def attached(self, session_id: str) -> None:
        """A websocket (or another request) asked for the session: it is claimed."""
        handle = self._watched.pop(session_id, None)
        if handle is not None:
            handle.cancel()

    def stop(self) -> None:
        for handle in self._watched.values():
            handle.cancel()
        self._watched.clear()

    def _expire(self, context: Any, session_ref: weakref.ReferenceType[Any]) -> None:
        session = session_ref()
        if session is None:
            return
        self._watched.pop(str(session.id), None)
        if session.destroyed or session.connection_count:
            return
        task = asyncio.ensure_future(self._discard(context, session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _discard(self, context: Any, session: Any) -> None:
        if await server_control.discard_sessions([(context, session)]):
            self.discarded += 1
            metrics.unconnected_discarded.inc()
            log.info("Session %s got no websocket within %d ms: discarded", session.id, self.grace_ms)
