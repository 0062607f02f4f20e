"""The few Bokeh server internals the memory guard and graceful shutdown need, in one place.

Bokeh has public ways to expire sessions only through its own timer. Shedding idle sessions now
(memory guard) and discarding every session at shutdown (Bokeh 3.8/3.9 do not) need the
application contexts, their ``_discard_session`` coroutine and the open connections. These were
read in Bokeh 3.8.2, 3.9.2 and 3.10.2 (``server/tornado.py``, ``server/contexts.py``,
``server/connection.py``); ``patches.py`` checks them (piece ``server_control``) and the runtime uses
this module only where that piece is on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from bokeh.protocol.exceptions import ProtocolError

log = logging.getLogger(__name__)


def application_contexts(server: Any) -> list[Any]:
    return list(server._tornado._applications.values())


def has_session(context: Any, session_id: str) -> bool:
    """Whether ``context`` holds a live session with this id."""
    try:
        context.get_session(session_id)
    except ProtocolError:
        return False
    return True


def idle_sessions_oldest_first(server: Any) -> list[tuple[Any, Any]]:
    """(context, session) for every session with no open connection, longest idle first."""
    idle = [
        (context, session)
        for context in application_contexts(server)
        for session in list(context.sessions)
        if session.connection_count == 0 and not session.destroyed
    ]
    idle.sort(key=lambda pair: pair[1].milliseconds_since_last_unsubscribe, reverse=True)
    return idle


async def discard_sessions(pairs: Iterable[tuple[Any, Any]]) -> int:
    """Discard each idle session now (its destroy hooks run). Returns how many went."""
    discarded = 0
    for context, session in pairs:
        if session.connection_count:
            continue
        session.request_expiration()
        await context._discard_session(session, lambda s: s.connection_count == 0)
        discarded += session.destroyed
    return discarded


async def close_connections(
    tornado: Any, session_ids: set[str] | None, reason: str, timeout_s: float = 5.0
) -> None:
    """Detach the websockets of these sessions (all when ``None``) and close them (sessions go idle)."""

    def chosen(connection: Any) -> bool:
        session = getattr(connection, "_session", None)
        return session_ids is None or (session is not None and str(session.id) in session_ids)

    for connection in [connection for connection in list(tornado._clients) if chosen(connection)]:
        tornado.client_lost(connection)
        socket = getattr(connection, "_socket", None)
        if socket is not None:
            socket.close(1001, reason)
    deadline = time.monotonic() + timeout_s
    while any(chosen(connection) for connection in tornado._clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def close_all_connections(server: Any, timeout_s: float = 5.0) -> None:
    """Detach every websocket from its session and close it (sessions become idle)."""
    await close_connections(server._tornado, None, "server shutting down", timeout_s)


async def end_sessions(tornado: Any, session_ids: set[str], reason: str) -> int:
    """Close these sessions' websockets, then discard the sessions (their cleanups run)."""
    await close_connections(tornado, session_ids, reason)
    total = 0
    for context in tornado._applications.values():
        pairs = [(context, session) for session in list(context.sessions) if str(session.id) in session_ids]
        total += await discard_sessions(pairs)
    return total


async def discard_all_sessions(server: Any) -> int:
    """Close every connection, then discard every session so that every cleanup runs."""
    await close_all_connections(server)
    total = 0
    for context in application_contexts(server):
        pairs = [(context, session) for session in list(context.sessions)]
        total += await discard_sessions(pairs)
    return total
