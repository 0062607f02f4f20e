"""Periodic callbacks run only while someone watches the session: parked while no browser is connected.

Bokeh starts a session's periodic callbacks when it creates the session and stops them when it
discards it. A session nobody is connected to (a page GET whose browser has not opened its
websocket yet, or one whose last tab closed and which now waits for the idle lifetime) still runs
every one of them, updating a document no one sees. With the demo app's one-second callback,
2,000 such sessions run 2,000 callbacks a second: the event loop is kept busy by sessions that only
wait to expire, and requests wait behind them.

``WatchedCallbackGroup`` replaces Bokeh's ``DocumentCallbackGroup`` (one per ``ServerSession``):
while the session has no subscribed connection a periodic callback added to it is *parked* (kept,
not scheduled); the first connection starts the parked ones, the last one to go stops and parks
them again. Timeout and next-tick callbacks run as Bokeh runs them (they are one-shot work the app
asked for). A callback removed while parked is dropped and never runs.

An app whose periodic callback must run with nobody watching (writing to a database, say) turns
this off with ``<PKG>_PAUSE_UNWATCHED_CALLBACKS=false``, or better runs that work outside the
session (``app_hooks.on_server_loaded``, a server-wide callback). ``patches.py`` switches the piece
off where Bokeh's code differs from what it relies on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from bokeh.server import session as bokeh_session
from bokeh.server.callbacks import DocumentCallbackGroup, PeriodicCallback, SessionCallback

_install_lock = threading.Lock()
_installed = False


class WatchedCallbackGroup(DocumentCallbackGroup):
    """A session's callbacks, whose periodic ones are scheduled only while the session is watched."""

    def __init__(self, io_loop: Any) -> None:
        super().__init__(io_loop)
        self._lock = threading.Lock()
        self._watched = False
        #: Periodic callbacks kept but not scheduled (no one is connected), by callback id.
        self._parked: dict[str, PeriodicCallback] = {}
        #: Periodic callbacks scheduled on the loop now, by callback id (to park them again).
        self._started: dict[str, PeriodicCallback] = {}

    @property
    def parked(self) -> int:
        """How many periodic callbacks wait for a connection."""
        return len(self._parked)

    def add_session_callback(self, callback_obj: SessionCallback) -> None:
        if not isinstance(callback_obj, PeriodicCallback):
            super().add_session_callback(callback_obj)
            return
        with self._lock:
            if not self._watched:
                self._parked[callback_obj.id] = callback_obj
                return
            self._started[callback_obj.id] = callback_obj
        super().add_session_callback(callback_obj)

    def remove_session_callback(self, callback_obj: SessionCallback) -> None:
        if isinstance(callback_obj, PeriodicCallback):
            with self._lock:
                if self._parked.pop(callback_obj.id, None) is not None:
                    return
                self._started.pop(callback_obj.id, None)
        super().remove_session_callback(callback_obj)

    def remove_all_callbacks(self) -> None:
        with self._lock:
            self._parked.clear()
            self._started.clear()
        super().remove_all_callbacks()

    def set_watched(self, watched: bool) -> None:
        """Start the parked periodic callbacks (``True``) or stop and park the running ones."""
        with self._lock:
            if watched == self._watched:
                return
            self._watched = watched
            if watched:
                moving, self._parked = self._parked, {}
                self._started.update(moving)
            else:
                moving, self._started = self._started, {}
                self._parked.update(moving)
        for callback_obj in moving.values():
            if watched:
                super().add_session_callback(callback_obj)
            else:
                super().remove_session_callback(callback_obj)


def _follow_connections(method: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``ServerSession.subscribe``/``unsubscribe``: the session is watched while it has a connection."""

    @functools.wraps(method)
    def changed_connections(session: Any, connection: Any) -> None:
        method(session, connection)
        group = getattr(session, "_callbacks", None)  # gone once the session is destroyed
        if isinstance(group, WatchedCallbackGroup):
            group.set_watched(session.connection_count > 0)

    return changed_connections


def install() -> None:
    """Give every ``ServerSession`` created from now on a ``WatchedCallbackGroup`` (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        bokeh_session.DocumentCallbackGroup = WatchedCallbackGroup  # type: ignore[misc]
        server_session = bokeh_session.ServerSession
        server_session.subscribe = _follow_connections(server_session.subscribe)  # type: ignore[method-assign]
        server_session.unsubscribe = _follow_connections(server_session.unsubscribe)  # type: ignore[method-assign]
        _installed = True
