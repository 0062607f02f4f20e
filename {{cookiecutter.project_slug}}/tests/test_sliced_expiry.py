"""Expiry in slices: every expired session goes exactly once, the event loop gets turns between
slices, a discarded session is freed during the batch, and a session that came back to life before
its turn is not discarded.

The whole suite runs with sliced expiry installed (``conftest.py`` installs the stall-free
patches), so the leak and cleanup tests also prove that sessions expire and are cleaned up.
How we know these tests can fail: each has its control in the same test. The slicing test runs
the same batch as one unbounded slice (Bokeh's own way) and sees no turn of the loop between
discards; the freeing test runs the same discards over a list that holds the batch (the way it
was) and finds every session still alive at the last discard; the revival tests check that the
other sessions of the very same pass, expired by the same rule, were discarded, and that the
revived ones go too once they are idle again.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.server import server_control, sliced_expiry
from {{ cookiecutter.package_name }}.server.cleanup import on_every_session_end, remove_app_cleanup
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import get_settings
from {{ cookiecutter.package_name }}_devtools.testing import RunningServer, open_http_session, running_server

pytestmark = pytest.mark.requires_patch("sliced_expiry")  # conftest installs it where it is on


class _Session:
    """Just what ``discard_in_slices`` reads of a Bokeh ``ServerSession``."""

    def __init__(self) -> None:
        self.destroyed = False
        self.connection_count = 0
        self.expiration_blocked = False


class _Context:
    """A context whose discard never suspends, as on Bokeh 3.8 and 3.9."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def _discard_session(self, session: _Session, should_discard: Any) -> None:
        if should_discard(session):
            session.destroyed = True
            self.events.append("discard")


async def _discards_and_loop_turns(slice_ms: float, sessions: int = 20) -> list[str]:
    events: list[str] = []
    context = _Context(events)
    done = False

    async def ticker() -> None:  # one "turn" per pass of the event loop it gets
        while not done:
            events.append("turn")
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    pairs = [(context, _Session()) for _ in range(sessions)]
    discarded = await server_control.discard_in_slices(pairs, slice_ms=slice_ms)
    done = True
    await task
    assert discarded == sessions
    return events


def _longest_run_of_discards(events: list[str]) -> int:
    longest = run = 0
    for event in events:
        run = run + 1 if event == "discard" else 0
        longest = max(longest, run)
    return longest


def test_discards_in_slices_give_the_loop_a_turn_between_slices() -> None:
    sliced = asyncio.run(_discards_and_loop_turns(slice_ms=0))  # every discard ends a slice
    assert sliced.count("discard") == 20
    assert _longest_run_of_discards(sliced) == 1
    # Control: one unbounded slice runs the whole batch without the loop getting a turn.
    unsliced = asyncio.run(_discards_and_loop_turns(slice_ms=1e9))
    assert _longest_run_of_discards(unsliced) == 20


@pytest.fixture
def every_discard_a_slice() -> Iterator[None]:
    """Sliced expiry with the thinnest slices: one discard each, a loop turn after every one."""
    sliced_expiry.install(slice_ms=0)
    yield
    sliced_expiry.install(get_settings().expiry_slice_ms)


@pytest.fixture
def destroyed() -> Iterator[collections.Counter[str]]:
    """How often each session id was cleaned up (an app-level cleanup counts it)."""
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def count(session_context: Any) -> None:
        with lock:
            counts[str(session_context.id)] += 1

    on_every_session_end(count)
    yield counts
    remove_app_cleanup(count)


def _session_ids(running: RunningServer) -> set[str]:
    return running.call(lambda: {str(session.id) for session in running.server.get_sessions()})


class _ExpiredSession(_Session):
    """Idle for longer than any lifetime."""

    expiration_requested = False
    milliseconds_since_last_unsubscribe = 10_000


class _ContextCountingAlive:
    """Holds its sessions as Bokeh's context does, until their discard; at each discard it counts
    how many of the sessions it has discarded are still alive (this one included)."""

    def __init__(self, sessions: int) -> None:
        self._sessions = {index: _ExpiredSession() for index in range(sessions)}
        self._refs = [weakref.ref(session) for session in self._sessions.values()]
        self.alive_at_discard: list[int] = []

    @property
    def sessions(self) -> list[_Session]:
        return list(self._sessions.values())

    async def _discard_session(self, session: _Session, should_discard: Any) -> None:
        if should_discard(session):
            session.destroyed = True
            del self._sessions[next(key for key, held in self._sessions.items() if held is session)]
            alive = sum(ref() is not None for ref in self._refs)
            self.alive_at_discard.append(alive - len(self._sessions))  # discarded, still alive


def test_a_discarded_session_is_freed_during_the_batch_not_after_it() -> None:
    batch = 50
    context = _ContextCountingAlive(batch)
    asyncio.run(sliced_expiry.sliced_cleanup_sessions(context, 1000, slice_ms=0))
    assert len(context.alive_at_discard) == batch and not context.sessions
    assert max(context.alive_at_discard) <= 2  # the one being discarded, the one before

    # Control: the batch as a list of (context, session) pairs, kept until the batch ends.
    context = _ContextCountingAlive(batch)
    pairs = [(context, session) for session in context.sessions]
    asyncio.run(server_control.discard_in_slices(pairs, sliced_expiry.expiry_rule(1000), slice_ms=0))
    assert context.alive_at_discard[-1] == batch


def test_every_expired_session_is_discarded_exactly_once(
    every_discard_a_slice: None, destroyed: collections.Counter[str]
) -> None:
    """Bokeh's own check, in slices, on the demo app (its periodic callback holds the document lock
    now and then: those sessions are retried)."""
    with running_server(APP_DIR, unused_session_lifetime_ms=600_000, check_unused_sessions_ms=100) as running:
        for _ in range(20):
            open_http_session(running)
        created = _session_ids(running)
        assert len(created) == 20
        for context in server_control.application_contexts(running.server):  # expire them all at once
            running.call(lambda context=context: [s.request_expiration() for s in context.sessions])
        assert running.wait_for_sessions(0, 20) == 0
    assert set(destroyed) == created
    assert set(destroyed.values()) == {1}, destroyed


def _run(running: RunningServer, coroutine: Any, timeout: float = 30.0) -> Any:
    return asyncio.run_coroutine_threadsafe(coroutine, running.loop.asyncio_loop).result(timeout)  # type: ignore[attr-defined]


async def _until_destroyed(sessions: list[Any], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if all(session.destroyed for session in sessions):
            return
        await asyncio.sleep(0.05)


def test_a_session_that_came_back_to_life_is_not_discarded(
    every_discard_a_slice: None, destroyed: collections.Counter[str]
) -> None:
    """Mid-pass, one session gets a connection and another's document lock is taken: both stay
    while the rest of the same pass goes; both go, once each, when they are idle again."""
    with running_server(
        APP_DIR, unused_session_lifetime_ms=600_000, check_unused_sessions_ms=600_000
    ) as running:
        for _ in range(6):
            open_http_session(running)
        context = server_control.application_contexts(running.server)[0]
        sessions = running.call(lambda: list(context.sessions))
        revived, locked = sessions[-1], sessions[-2]  # the last turns of the pass
        connection = object()  # what Bokeh counts in ``connection_count``
        lock_taken, release = asyncio.Event(), asyncio.Event()
        holders: list[asyncio.Future[Any]] = []

        def revive_after_first_discard(session_context: Any) -> None:
            if revived.connection_count == 0 and not lock_taken.is_set():
                revived.subscribe(connection)  # a client reconnected between two slices

                async def hold_lock() -> None:
                    lock_taken.set()
                    await release.wait()

                holders.append(asyncio.ensure_future(locked.with_document_locked(hold_lock)))

        on_every_session_end(revive_after_first_discard)
        try:

            async def first_pass() -> None:
                await sliced_expiry.sliced_cleanup_sessions(context, 0, slice_ms=0)

            _run(running, first_pass())
        finally:
            remove_app_cleanup(revive_after_first_discard)
        # The control: the same pass discarded the others (or retried them moments later, when the
        # demo app's periodic callback held their lock at their turn).
        _run(running, _until_destroyed(sessions[:-2]))
        assert all(session.destroyed for session in sessions[:-2]) and len(destroyed) == 4
        assert running.call(lambda: list(context.sessions)) == [locked, revived]

        async def release_lock() -> None:  # the lock's holder ends: the retry discards the session
            release.set()
            await _until_destroyed([locked])

        _run(running, release_lock())
        assert locked.destroyed and not revived.destroyed

        async def idle_again() -> None:  # the client leaves; the next check discards it
            revived.unsubscribe(connection)
            await sliced_expiry.sliced_cleanup_sessions(context, 0, slice_ms=0)

        _run(running, idle_again())
        assert revived.destroyed
    assert len(destroyed) == 6 and set(destroyed.values()) == {1}, destroyed
