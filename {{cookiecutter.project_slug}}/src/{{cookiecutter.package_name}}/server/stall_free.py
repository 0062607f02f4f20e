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
* ``Model.destroy`` also clears the model's callbacks and cached default/themed values, which
  breaks most reference cycles of a discarded document, so reference counting frees it during
  the discard and the batched collection has little left to do (measured: 253k objects for 200
  sessions of the demo app without it, 53k with it);
* ``freeze_startup_heap`` moves everything alive once the server has loaded (imports, the shared
  dataset) into the permanent generation, so that collection does not walk it again.

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

from . import memory, patches
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


def freeze_startup_heap() -> int:
    """Collect once, then exclude every object alive now from later collections (``gc.freeze``).

    Call when the server has loaded and before it serves: those objects live as long as the
    process, and the batched collection after a mass expiry then walks only session objects.
    Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def report_leaked_modules(duration: float = 0.0) -> int:
    """After a collection: log session modules discarded before the previous release that are still
    alive (one release of grace, so a module still on a worker thread's stack is not reported).
    Returns how many."""
    global _discarded_modules, _previous_batch
    with _discarded_lock:
        alive = [(name, ref()) for name, ref in _previous_batch]
        _previous_batch, _discarded_modules = _discarded_modules, []
    leaked = [(name, module) for name, module in alive if module is not None]
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
    """Patch Bokeh once per process. Returns False when ``stall_free`` is off (``patches.py`` says why)."""
    global _installed
    if not patches.is_active("stall_free"):
        return False
    with _install_lock:
        if _installed:
            return True
        bokeh_document.gc = _CoalescedGC()  # type: ignore[assignment]
        bokeh_modules.DocumentModuleManager.destroy = _destroy_modules  # type: ignore[method-assign]
        Model.destroy = _destroy_model_and_break_cycles(Model.destroy)  # type: ignore[method-assign]
        memory.after_release.append(report_leaked_modules)
        _installed = True
    log.info(
        "Stall-free expiry on: one collection per batch of discarded sessions (Bokeh %s)", bokeh.__version__
    )
    return True
