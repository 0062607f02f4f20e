"""Per-session cleanups that run once, in isolation, with ``main.py`` still whole.

Two kinds of cleanup exist:

* document-level: ``on_session_end(doc, fn, *args)`` (ours) or ``doc.on_session_destroyed(fn)``
  (Bokeh's, as the guide writes it). Both run for that session only.
* app-level: ``on_every_session_end(fn)`` runs ``fn(session_context)`` for every session.

``run_session_cleanups`` runs all of them when the session is destroyed: each in its own
``try``, so one that raises does not stop the others, and a failure is logged with the session id
and the traceback.

Bokeh clears the globals of a session's ``main.py`` module (``DocumentModuleManager.destroy``)
before any destroy callback runs, so a cleanup defined in ``main.py`` that reads a global, or calls
another function of ``main.py`` that does, would raise ``NameError``. ``keep_modules_for_cleanups``
records the session's modules as Bokeh adds them and, at the moment Bokeh clears them, keeps a
copy of their contents; ``run_session_cleanups`` puts the contents back for the cleanups and
clears the modules again once they ran. Every function, class and global of ``main.py`` is then
there for a cleanup however deep the call, and the module is empty afterwards as Bokeh intends.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import patches
from .session_locals import SessionLocals, context_document, locals_of_context, session_locals

if TYPE_CHECKING:
    from bokeh.document import Document

log = logging.getLogger(__name__)

_app_cleanups: list[Callable[[Any], None]] = []
_app_cleanups_lock = threading.Lock()


def on_session_end(doc: Document, cleanup: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``cleanup(*args, **kwargs)`` once when ``doc``'s session is destroyed.

    Cleanups run last-registered first, before the session's locals are emptied. A cleanup defined
    in ``main.py`` may use anything ``main.py`` defines.
    """
    session_locals(doc).add_cleanup(functools.partial(cleanup, *args, **kwargs))


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


def keep_modules_for_cleanups(session_context: Any, store: SessionLocals) -> None:
    """Let the cleanups of ``session_context`` see its ``main.py`` module whole (module docstring).

    Call before ``main.py`` runs (``on_session_created``). Only this document's module manager is
    wrapped, through its ``add`` and ``destroy`` methods; the modules are referenced weakly, so
    Bokeh's own referrer check does not see an extra referrer. Nothing is wrapped where the piece
    ``keep_modules`` is off on this Bokeh (``patches.py``).
    """
    if not patches.is_active("keep_modules"):
        return
    manager = context_document(session_context).modules
    added: list[weakref.ref[ModuleType]] = []
    add, destroy = manager.add, manager.destroy

    def add_and_remember(module: ModuleType) -> None:
        add(module)
        added.append(weakref.ref(module))

    def destroy_keeping_contents() -> None:
        modules = [module for ref in added if (module := ref()) is not None]
        store.keep_module_contents([(module.__dict__, dict(module.__dict__)) for module in modules])
        destroy()
        # The wrappers hold the manager's own bound methods: drop them, or manager and wrappers form
        # a reference cycle that only a full collection frees.
        del manager.add, manager.destroy

    manager.add = add_and_remember
    manager.destroy = destroy_keeping_contents


def _describe(fn: Callable[..., Any]) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(target, "__qualname__", None) or repr(target)


def _run_isolated(session_id: str, fn: Callable[..., Any], *args: Any) -> bool:
    try:
        fn(*args)
    except Exception:
        log.exception("Session cleanup %s failed for session %s", _describe(fn), session_id)
        return False
    return True


def run_session_cleanups(session_context: Any) -> int:
    """Run every cleanup of ``session_context`` once, each isolated. Returns how many failed.

    Order: ``on_session_end`` cleanups (last first), then ``doc.on_session_destroyed`` callbacks
    (taken off the document so Bokeh does not run them a second time), then app-level cleanups.
    """
    session_id = str(session_context.id)
    store = locals_of_context(session_context)
    kept = store.take_module_contents()
    for namespace, contents in kept:
        namespace.update(contents)
    failures = 0
    try:
        for cleanup in store.take_cleanups():
            failures += not _run_isolated(session_id, cleanup)
        document = context_document(session_context)
        doc_callbacks = list(document.session_destroyed_callbacks)
        document.session_destroyed_callbacks = set()
        for callback in doc_callbacks:
            failures += not _run_isolated(session_id, callback, session_context)
        with _app_cleanups_lock:
            app_cleanups = list(_app_cleanups)
        for cleanup in app_cleanups:
            failures += not _run_isolated(session_id, cleanup, session_context)
    finally:
        for namespace, _contents in kept:
            namespace.clear()
    return failures
