"""Bokeh's unused-session expiry, in slices that yield to the event loop, with retries of busy sessions.

Bokeh's check (``ApplicationContext._cleanup_sessions``, the coroutine its periodic job awaits
with the unused-session lifetime) discards every expired session in one loop. On Bokeh 3.8 and
3.9 nothing in it suspends, so the whole batch runs inside one event-loop callback: 1000 idle
sessions expiring in one check blocked the loop for 0.8 s. ``sliced_cleanup_sessions`` replaces it
for every application context (``install``):

* the same rule, Bokeh's own: a session goes when it has no connection and has been idle longer
  than the lifetime (or its expiry was requested), and no callback holds its document lock; the
  rule is checked again when the session's turn comes and, by Bokeh, under the lock, so a session
  that came back to life (a client connected, a callback took the lock) is not discarded;
* the discards run in slices (``server_control.discard_in_slices``): after each slice of
  ``slice_ms`` the loop serves whatever waits, and memory releases wait for the last discard,
  retries included, so the one collection after the batch walks the survivors, not the batch
  (measured on Bokeh 3.10 with 2,000 sessions: a release between the slices and the retries ran
  a full collection through the 135 sessions still waiting, 168 ms);
* an expired session that Bokeh would skip because its document lock is held (on Bokeh 3.10 an
  idle session's periodic callback is often mid-run or queued for the executor) is discarded by
  a task of its own that waits for the lock (Bokeh's discard does), instead of outliving the
  batch by a whole check interval (measured before: 200 sessions took 20-80 s to go instead of
  0.2 s). If a callback queued behind that wait takes the lock next, Bokeh logs "came back to
  life" and keeps the session; the task tries again, up to ``RETRY_ATTEMPTS`` times.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bokeh.server.contexts import ApplicationContext

from . import memory, server_control

log = logging.getLogger(__name__)

#: Wait before each try at an expired session whose document lock was held (s).
RETRY_DELAY_S = 0.1
#: Tries at such a session (each waits for the lock) before it is left to the next check.
RETRY_ATTEMPTS = 20

#: Sessions tested against the expiry rule per turn of the event loop.
SCAN_CHUNK = 200

_retries: set[asyncio.Future[None]] = set()
# Sessions a task is waiting to discard: one task each, however many checks find them.
_waiting: weakref.WeakSet[Any] = weakref.WeakSet()
_original: Any = None


def expiry_rule(lifetime_ms: float) -> Callable[[Any], bool]:
    """Bokeh's test of an expired session, ignoring the document lock (``_cleanup_sessions``)."""

    def expired(session: Any) -> bool:
        return bool(
            session.connection_count == 0
            and (session.milliseconds_since_last_unsubscribe > lifetime_ms or session.expiration_requested)
        )

    return expired


@dataclass(frozen=True)
class _Expiry:
    """One check's expiry of one application context."""

    context: Any
    expired: Callable[[Any], bool]
    slice_ms: float

    async def discard(self, due: list[Any]) -> list[Any]:
        """Discard ``due`` in slices, emptying the list; returns the sessions that stayed."""
        stayed: list[Any] = []
        await server_control.discard_in_slices(
            self._one_at_a_time(due, stayed), self.expired, skip_blocked=True, slice_ms=self.slice_ms
        )
        return stayed

    def _one_at_a_time(self, due: list[Any], stayed: list[Any]) -> Iterator[tuple[Any, Any]]:
        """(context, session) for each of ``due``, taken out of the list as its turn comes, so
        that what is left of a discarded session is freed right after its discard. Kept in a list
        until the batch ended, 2,000 sessions' remains were freed at once: 10 ms of stalled loop
        (Bokeh 3.10.2). A session still there after its turn goes to ``stayed``."""
        due.reverse()
        while due:
            session = due.pop()
            yield self.context, session
            if not session.destroyed:
                stayed.append(session)

    def discard_when_unlocked(self, session: Any) -> None:
        """Discard ``session`` once its document lock is free, in a task of its own."""
        if session in _waiting:
            return
        _waiting.add(session)
        resume_releases = memory.hold_releases()  # the batch's release waits for this task too
        task = asyncio.ensure_future(self._wait_and_discard(session))
        _retries.add(task)
        task.add_done_callback(_retries.discard)
        task.add_done_callback(lambda _task: resume_releases())

    async def _wait_and_discard(self, session: Any) -> None:
        try:
            for _ in range(RETRY_ATTEMPTS):
                await asyncio.sleep(RETRY_DELAY_S)
                if session.destroyed or not self.expired(session):
                    return  # gone already, or a client came back
                if await server_control.discard_one(self.context, session, self.expired):
                    return
        finally:
            _waiting.discard(session)


async def _expired_sessions(sessions: list[Any], expired: Callable[[Any], bool]) -> list[Any]:
    """The sessions ``expired`` holds for, tested ``SCAN_CHUNK`` at a time with a turn of the event
    loop between: the test takes two locks per session, and scanning 2,000 at once held the loop
    for several milliseconds before the first discard."""
    due = []
    for start in range(0, len(sessions), SCAN_CHUNK):
        if start:
            await asyncio.sleep(0)
        due += [session for session in sessions[start : start + SCAN_CHUNK] if expired(session)]
    return due


async def sliced_cleanup_sessions(
    context: Any, unused_session_linger_milliseconds: int, slice_ms: float
) -> None:
    """Discard ``context``'s expired sessions in slices; retry the ones whose lock was held."""
    expiry = _Expiry(context, expiry_rule(unused_session_linger_milliseconds), slice_ms)
    due = await _expired_sessions(list(context.sessions), expiry.expired)
    if not due:
        return
    log.debug("Expiring %d session(s) in slices of %g ms", len(due), slice_ms)
    with memory.releases_held():  # until the retries below have taken their own holds
        for session in await expiry.discard(due):
            if not session.destroyed and expiry.expired(session):
                expiry.discard_when_unlocked(session)


def install(slice_ms: float) -> None:
    """Make every application context of this process expire its sessions in slices."""
    global _original
    if _original is None:
        _original = ApplicationContext._cleanup_sessions

    async def _cleanup_sessions(self: Any, unused_session_linger_milliseconds: int) -> None:
        await sliced_cleanup_sessions(self, unused_session_linger_milliseconds, slice_ms)

    functools.update_wrapper(_cleanup_sessions, _original)
    _cleanup_sessions.__wrapped__ = _original  # type: ignore[attr-defined]
    ApplicationContext._cleanup_sessions = _cleanup_sessions  # type: ignore[method-assign]
