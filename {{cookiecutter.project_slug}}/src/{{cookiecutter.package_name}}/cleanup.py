"""Per-session cleanups that run once, in isolation, and survive Bokeh clearing ``main.py``.

Two kinds of cleanup exist:

* document-level: ``on_session_end(doc, fn, *args)`` (ours) or ``doc.on_session_destroyed(fn)``
  (Bokeh's, as the guide writes it). Both run for that session only.
* app-level: ``on_every_session_end(fn)`` runs ``fn(session_context)`` for every session.

``run_session_cleanups`` runs all of them when the session is destroyed: each in its own
``try``, so one that raises does not stop the others, and a failure is logged with the session id
and the traceback. Bokeh clears the globals of a session's ``main.py`` module before destroy
callbacks run, so a cleanup defined in ``main.py`` that reads a module global would raise
``NameError``. ``remember_module_globals`` snapshots those globals while the session is alive and
the cleanup is re-bound to the snapshot when it runs.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .session_locals import context_document, locals_of_context, session_locals

if TYPE_CHECKING:
    from bokeh.document import Document

log = logging.getLogger(__name__)

#: Bokeh names the module of each session's main.py ``bokeh_app_<uuid>`` (code_runner.py).
SESSION_MODULE_PREFIX = "bokeh_app_"
_SNAPSHOT_ATTRIBUTE = "_session_globals_snapshot"

_app_cleanups: list[Callable[[Any], None]] = []
_app_cleanups_lock = threading.Lock()


@dataclass
class CleanupStats:
    """Process-wide counters, read by tests and metrics."""

    ran: int = 0
    failed: int = 0
    sessions: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


stats = CleanupStats()


def _is_session_module_function(fn: object) -> bool:
    return isinstance(fn, types.FunctionType) and str(fn.__globals__.get("__name__", "")).startswith(
        SESSION_MODULE_PREFIX
    )


def _rebind_to_snapshot(fn: Callable[..., Any], snapshot: dict[str, Any] | None) -> Callable[..., Any]:
    """Return ``fn`` re-bound to ``snapshot`` if Bokeh has cleared its module globals."""
    if snapshot is None or not isinstance(fn, types.FunctionType) or fn.__globals__:
        return fn
    rebound = types.FunctionType(fn.__code__, snapshot, fn.__name__, fn.__defaults__, fn.__closure__)
    rebound.__kwdefaults__ = fn.__kwdefaults__
    return rebound


def remember_module_globals(session_context: Any, callables: list[Callable[..., Any]]) -> None:
    """Snapshot the ``main.py`` globals that ``callables`` use, while the module is still intact."""
    snapshots: dict[int, dict[str, Any]] = getattr(session_context, _SNAPSHOT_ATTRIBUTE, None) or {}
    for fn in callables:
        target = fn.func if isinstance(fn, functools.partial) else fn
        if _is_session_module_function(target):
            module_globals = target.__globals__  # type: ignore[union-attr]
            snapshots[id(module_globals)] = dict(module_globals)
    setattr(session_context, _SNAPSHOT_ATTRIBUTE, snapshots)


def _snapshot_for(session_context: Any, fn: Callable[..., Any]) -> dict[str, Any] | None:
    target = fn.func if isinstance(fn, functools.partial) else fn
    if not isinstance(target, types.FunctionType):
        return None
    snapshots: dict[int, dict[str, Any]] = getattr(session_context, _SNAPSHOT_ATTRIBUTE, None) or {}
    return snapshots.get(id(target.__globals__))


def _restore(fn: Callable[..., Any], snapshot: dict[str, Any] | None) -> Callable[..., Any]:
    if isinstance(fn, functools.partial):
        return functools.partial(_rebind_to_snapshot(fn.func, snapshot), *fn.args, **fn.keywords)
    return _rebind_to_snapshot(fn, snapshot)


def on_session_end(doc: Document, cleanup: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``cleanup(*args, **kwargs)`` once when ``doc``'s session is destroyed.

    Cleanups run last-registered first, before the session's locals are emptied. A cleanup defined
    in ``main.py`` may use ``main.py``'s globals.
    """
    bound = functools.partial(cleanup, *args, **kwargs)
    store = session_locals(doc)
    store.add_cleanup(bound)
    remember_module_globals(doc.session_context, [bound])


def on_every_session_end(cleanup: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``cleanup(session_context)`` for every session of this process (usable as decorator)."""
    with _app_cleanups_lock:
        _app_cleanups.append(cleanup)
    return cleanup


def remove_app_cleanup(cleanup: Callable[[Any], None]) -> None:
    """Unregister an app-level cleanup (for tests and reloads)."""
    with _app_cleanups_lock:
        if cleanup in _app_cleanups:
            _app_cleanups.remove(cleanup)


def _describe(fn: Callable[..., Any]) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(target, "__qualname__", None) or repr(target)


def _run_isolated(session_id: str, fn: Callable[..., Any], *args: Any) -> bool:
    name = _describe(fn)
    try:
        fn(*args)
    except Exception:
        stats.failed += 1
        stats.failures.append((session_id, name))
        del stats.failures[:-100]
        log.exception("Session cleanup %s failed for session %s", name, session_id)
        return False
    stats.ran += 1
    return True


def run_session_cleanups(session_context: Any) -> int:
    """Run every cleanup of ``session_context`` once, each isolated. Returns how many failed.

    Order: ``on_session_end`` cleanups (last first), then ``doc.on_session_destroyed`` callbacks
    (taken off the document so Bokeh does not run them a second time), then app-level cleanups.
    """
    started = time.perf_counter()
    session_id = str(session_context.id)
    store = locals_of_context(session_context)
    failures = 0
    for cleanup in store.take_cleanups():
        failures += not _run_isolated(session_id, _restore(cleanup, _snapshot_for(session_context, cleanup)))

    document = context_document(session_context)
    doc_callbacks = list(document.session_destroyed_callbacks)
    document.session_destroyed_callbacks = set()
    for callback in doc_callbacks:
        restored = _restore(callback, _snapshot_for(session_context, callback))
        failures += not _run_isolated(session_id, restored, session_context)

    with _app_cleanups_lock:
        app_cleanups = list(_app_cleanups)
    for cleanup in app_cleanups:
        failures += not _run_isolated(session_id, cleanup, session_context)

    if hasattr(session_context, _SNAPSHOT_ATTRIBUTE):
        delattr(session_context, _SNAPSHOT_ATTRIBUTE)
    stats.sessions += 1
    stats.seconds += time.perf_counter() - started
    return failures
