"""Stall-free mass expiry: no full-heap walk per discarded session.

When a session is discarded, Bokeh (3.8-3.10) runs ``gc.collect()`` in ``Document.destroy`` and
``gc.get_referrers(module)`` in ``DocumentModuleManager.destroy``. Each walks the whole heap, so
when 200 sessions expire together the server does 400 heap walks: the event loop is blocked for
seconds (22 s measured on Bokeh 3.9.2) or, on 3.10, the executor is busy for as long.

``install()`` replaces both with constant-time work per session:

* ``Document.destroy``'s ``gc.collect()`` becomes a request for the batched release in
  ``memory`` (one ``gc.collect()`` + ``malloc_trim`` per batch, at most one per interval);
* the per-module referrer check becomes a weak reference that is checked after that collection:
  a discarded session's module still alive then is logged as a leak with its referrers (the
  same diagnostic as Bokeh's "extra unexpected referrers", only batched);
* the cycles a discarded document is left in are broken, so reference counting frees it during
  the discard and the batched collection has almost nothing left to do (demo app, 3.8-3.10: 280
  objects per discarded session left for the collector before, 8-30 after): ``Model.destroy``
  also clears the model's callbacks and cached default/themed values; ``Document.destroy`` also
  drops its session callbacks (closures over the document), destroys its config models (not in
  ``document.models``) and empties ``models._new_models``; a removed session callback drops its
  wrapper (a one-shot callback's wrapper refers back to it and holds the document); a stopped
  periodic callback runner (``_AsyncPeriodic``) drops the session's callback (its loop closure or
  cancelled task is a cycle of its own) and, on 3.10, its task once the task is done (the
  cancelled task's traceback holds the runner: 16 objects per session for a full collection);
* ``freeze_startup_heap`` moves everything alive once the server has loaded (imports, the shared
  dataset) into the permanent generation, and ``full_collections`` turns CPython's automatic full
  collections off and runs them itself when they are due, so that the live sessions are walked
  only as often as discards pay for it (see there); discarded documents are watched;
* ``default_orphans`` frees the default models Bokeh makes and drops while it builds a document
  (in cycles with their own property containers, they waited for a full collection);
* ``websocket_cycles`` breaks the cycles a closed websocket connection's handler objects form,
  and ``next_tick_cycles`` the one a next-tick callback that has run left its document in (3.8, 3.9);
* ``sliced_expiry`` runs Bokeh's unused-session expiry in slices that yield to the event loop,
  and ``unwatched_callbacks`` parks the periodic callbacks of sessions nobody is connected to (the
  idle load that sessions waiting to expire put on the loop).

Measured with ``benchmarks/expiry_and_throughput.py``: see the project README.

These patches depend on Bokeh internals: ``install`` applies them only where ``patches.py`` (the
registry of such pieces, with the Bokeh versions and code they were verified on) says
``stall_free`` is on; elsewhere the server runs Bokeh's own expiry and says so once.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import weakref
from types import ModuleType
from typing import Any

import bokeh
import bokeh.document.document as bokeh_document
import bokeh.document.modules as bokeh_modules
from bokeh.model import Model

try:  # Bokeh 3.10 moved its periodic-callback runner from ``util.tornado`` to ``util.asyncio``
    from bokeh.util.asyncio import _AsyncPeriodic  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    try:
        from bokeh.util.tornado import _AsyncPeriodic  # type: ignore[attr-defined,no-redef,unused-ignore]
    except ImportError:  # neither: ``patches.py`` reports stall_free off, and nothing here uses it
        _AsyncPeriodic = None  # type: ignore[assignment,misc,unused-ignore]

from . import (
    default_orphans,
    full_collections,
    memory,
    next_tick_cycles,
    patches,
    sliced_expiry,
    unwatched_callbacks,
    websocket_cycles,
)
from .settings import get_settings

log = logging.getLogger(__name__)

#: Per-model containers that ``Model.destroy`` leaves filled; clearing them breaks document cycles.
_MODEL_CONTAINERS = (
    "_unstable_default_values",
    "_unstable_themed_values",
    "_callbacks",
    "_event_callbacks",
    "_js_callbacks",
    "_js_event_callbacks",
)

_installed = False
_install_lock = threading.Lock()
# (module name, weak reference) of discarded session modules: since the last release, and before it
_discarded_modules: list[tuple[str, weakref.ref[ModuleType]]] = []
_previous_batch: list[tuple[str, weakref.ref[ModuleType]]] = []
_discarded_lock = threading.Lock()


class _CoalescedGC:
    """Stands in for the ``gc`` module inside ``bokeh.document.document``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(gc, name)

    def collect(self, generation: int = 2) -> int:
        settings = get_settings()
        memory.schedule_release(settings.release_delay_ms, min_interval_ms=settings.gc_interval_ms)
        return 0


def _destroy_modules(self: Any) -> None:
    """``DocumentModuleManager.destroy`` without a heap walk per module (see module docstring)."""
    with _discarded_lock:
        for module in self._modules:
            if module.__name__ in sys.modules:
                del sys.modules[module.__name__]
            _discarded_modules.append((module.__name__, weakref.ref(module)))
            module.__dict__.clear()
    self._modules = []


def _destroy_model_and_break_cycles(original: Any) -> Any:
    def destroy(self: Any) -> None:
        original(self)
        for name in _MODEL_CONTAINERS:
            container = self.__dict__.get(name)
            if container is not None and hasattr(container, "clear"):
                container.clear()

    destroy.__wrapped__ = original  # type: ignore[attr-defined]
    return destroy


def _destroy_document_and_break_cycles(original: Any) -> Any:
    def destroy(self: Any, session: Any) -> None:
        full_collections.watch_discarded(self)
        original(self, session)
        # Periodic and timeout callbacks close over their document (``_wrap_with_curdoc``):
        # document -> callback manager -> callback -> closure -> document.
        self.callbacks._session_callbacks.clear()
        # The document's config models are not in ``document.models``, so Bokeh does not destroy
        # them, and their property containers point back at them.
        for model in self.config.references():
            model.destroy()
        # Whatever still holds the document (a stopped periodic callback's own cycle, on every
        # Bokeh) then holds no model through it.
        self.models._new_models.clear()

    destroy.__wrapped__ = original  # type: ignore[attr-defined]
    return destroy


def _remove_session_callback_and_drop_it(original: Any) -> Any:
    def remove_session_callback(self: Any, callback_obj: Any) -> None:
        original(self, callback_obj)
        # A one-shot (next-tick, timeout) callback's wrapper refers back to the callback object and
        # holds the document (``add_session_callback``): that cycle would keep a discarded
        # document for a full collection. Removed, the object is never invoked again.
        callback_obj._callback = _stopped_callback

    remove_session_callback.__wrapped__ = original  # type: ignore[attr-defined]
    return remove_session_callback


def _stop_periodic_and_drop_callback(original: Any) -> Any:
    def stop(self: Any) -> None:
        original(self)
        # A stopped periodic callback never calls ``_func`` again, but its loop closure (3.8, 3.9)
        # or cancelled task (3.10) is a reference cycle that would keep the session's callback, and
        # through it the session and document, alive until a full collection.
        self._func = _stopped_callback
        # 3.10: the cancelled task keeps its CancelledError, whose traceback's frames hold the
        # runner, which holds the task: about 16 objects per session for a full collection (the
        # most of what an HTTP-only demo session left). Once the task is done, the runner lets go
        # of it (``stop`` and ``wait`` read a missing task as a finished one).
        task = getattr(self, "_task", None)
        if task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(task.add_done_callback, _forget_task(self))

    stop.__wrapped__ = original  # type: ignore[attr-defined]
    return stop


def _forget_task(runner: Any) -> Any:
    """A done callback for a stopped runner's task: the runner drops it (the task drops this)."""

    def forget(task: Any) -> None:
        if runner._task is task:
            runner._task = None

    return forget


def _stopped_callback() -> None:
    """What a stopped periodic callback holds instead of the session's callback."""


def freeze_startup_heap() -> int:
    """Collect once, then exclude every object alive now from later collections (``gc.freeze``).

    Call when the server has loaded and before it serves: those objects live as long as the
    process, and the batched collection after a mass expiry then walks only session objects.
    Automatic full collections are off from then on (``full_collections``). Returns how many
    objects were frozen.
    """
    return full_collections.freeze_startup()


def report_leaked_modules(duration: float = 0.0) -> int:
    """After a collection: log session modules discarded before the previous release that are still
    alive after a full collection (one release of grace, so a module still on a worker thread's
    stack is not reported). Returns how many."""
    global _discarded_modules, _previous_batch
    with _discarded_lock:
        alive = [(name, ref) for name, ref in _previous_batch if ref() is not None]
        _previous_batch, _discarded_modules = _discarded_modules, []
    if (
        alive
        and full_collections.enabled()
        and not full_collections.collect_in_full_if_allowed(f"{len(alive)} discarded module(s) held")
    ):
        with _discarded_lock:  # over the time budget of full collections: look again next release
            _previous_batch.extend(alive)
        return 0
    leaked = [(name, module) for name, ref in alive if (module := ref()) is not None]
    if leaked and gc.get_freeze_count():
        # get_referrers does not see frozen objects (a registry in an imported module). The startup
        # heap stays in the old generation from now on: full collections walk it too.
        gc.unfreeze()
    for name, module in leaked:
        referrers = [  # the (name, module) bookkeeping tuples above are not the leak
            r for r in gc.get_referrers(module) if not (type(r) is tuple and len(r) == 2 and r[1] is module)
        ]
        log.error(
            "Module %s of a discarded session is still referenced after collection; this could indicate "
            "a memory leak. Referrers: %r",
            name,
            referrers,
        )
    return len(leaked)


def install() -> bool:
    """Patch Bokeh once per process: expiry in slices where ``patches.py`` says ``sliced_expiry`` is on,
    periodic callbacks parked while unwatched where ``pause_unwatched`` is, the rest where
    ``stall_free`` is. Returns False when ``stall_free`` is off (``patches.py`` says why)."""
    global _installed
    if patches.is_active("sliced_expiry"):
        sliced_expiry.install(get_settings().expiry_slice_ms)
    if patches.is_active("pause_unwatched"):
        unwatched_callbacks.install()
    if not patches.is_active("stall_free"):
        return False
    with _install_lock:
        if _installed:
            return True
        bokeh_document.gc = _CoalescedGC()  # type: ignore[assignment]
        bokeh_modules.DocumentModuleManager.destroy = _destroy_modules  # type: ignore[method-assign]
        Model.destroy = _destroy_model_and_break_cycles(Model.destroy)  # type: ignore[method-assign]
        bokeh_document.Document.destroy = _destroy_document_and_break_cycles(  # type: ignore[method-assign]
            bokeh_document.Document.destroy
        )
        _AsyncPeriodic.stop = _stop_periodic_and_drop_callback(_AsyncPeriodic.stop)
        callbacks = bokeh_document.DocumentCallbackManager
        callbacks.remove_session_callback = _remove_session_callback_and_drop_it(  # type: ignore[method-assign]
            callbacks.remove_session_callback
        )
        default_orphans.install()
        websocket_cycles.install()
        next_tick_cycles.install()
        memory.after_release.append(report_leaked_modules)
        full_collections.enable()
        _installed = True
    log.info(
        "Stall-free expiry on: one collection per batch of discarded sessions (Bokeh %s)", bokeh.__version__
    )
    return True
