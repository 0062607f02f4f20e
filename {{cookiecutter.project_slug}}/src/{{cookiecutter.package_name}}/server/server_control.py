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
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from bokeh.protocol.exceptions import ProtocolError

from . import memory

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


#: Longest run of discards between two turns of the event loop, unless one discard alone is longer (ms).
DEFAULT_SLICE_MS = 10
#: After each slice the event loop has this share of the slice's length (at least 1 ms) to itself. A
#: request needs several turns of the loop (accept, read, answer): with one turn per slice it waited
#: 3-4 slices (measured, 200 sessions on Bokeh 3.9: 35-44 ms with 10 ms slices; with the pause, 4-12 ms).
PAUSE_SHARE = 0.2
# Sessions one of these paths is discarding now: another path must not start on them as well.
_discarding: weakref.WeakSet[Any] = weakref.WeakSet()


def _unconnected(session: Any) -> bool:
    return bool(session.connection_count == 0)


async def discard_one(
    context: Any, session: Any, should_discard: Callable[[Any], bool] = _unconnected
) -> bool:
    """Discard ``session`` if ``should_discard`` holds; Bokeh waits for its document lock and checks
    again under it. False if it stayed, or is gone, or another path is discarding it now."""
    if session.destroyed or session in _discarding or not should_discard(session):
        return False
    _discarding.add(session)
    try:
        await context._discard_session(session, should_discard)
    finally:
        _discarding.discard(session)
    return bool(session.destroyed)


async def discard_in_slices(
    pairs: Iterable[tuple[Any, Any]],
    should_discard: Callable[[Any], bool] = _unconnected,
    *,
    skip_blocked: bool = False,
    request_expiration: bool = False,
    slice_ms: float = DEFAULT_SLICE_MS,
) -> int:
    """Discard each session for which ``should_discard`` still holds when its turn comes.

    Bokeh checks ``should_discard`` again under the session's document lock, as its own expiry
    does. After each discard that ends a slice of ``slice_ms``, the event loop runs alone for a
    pause (``PAUSE_SHARE`` of the slice): a batch of any size never blocks it for much longer than
    one slice. Memory releases are held until the last discard (``memory.releases_held``); the C
    heap is trimmed between slices in steps
    (``memory.trim_step``), so that no single trim has a whole batch to walk. ``skip_blocked``
    leaves sessions whose document lock is held or awaited (Bokeh's expiry does);
    ``request_expiration`` marks each one expired first (Bokeh's rule then ignores its idle time).
    Returns how many sessions were discarded.
    """
    discarded = since_trim = 0
    pause_s = max(slice_ms * PAUSE_SHARE, 1.0) / 1000
    with memory.releases_held():
        slice_started = time.perf_counter()
        for context, session in pairs:
            if skip_blocked and session.expiration_blocked:
                continue
            if request_expiration and session.connection_count == 0 and not session.destroyed:
                session.request_expiration()
            went = await discard_one(context, session, should_discard)
            discarded, since_trim = discarded + went, since_trim + went
            if (time.perf_counter() - slice_started) * 1000 >= slice_ms:
                if memory.trim_step(since_trim):
                    since_trim = 0
                await asyncio.sleep(pause_s)  # requests and callbacks waiting now run, all their turns
                slice_started = time.perf_counter()
    return discarded


async def discard_sessions(pairs: Iterable[tuple[Any, Any]]) -> int:
    """Discard each idle session now (its destroy hooks run), in slices. Returns how many went."""
    return await discard_in_slices(pairs, request_expiration=True)


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
