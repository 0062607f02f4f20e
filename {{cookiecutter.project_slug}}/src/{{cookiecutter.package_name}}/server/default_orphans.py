"""Free the default models Bokeh makes and drops while it builds a session's document.

To set a property whose default is a model (``figure(title=...)``, its ranges and scales, a box
annotation's edges), Bokeh first makes the default, a new ``Title``, ``DataRange1d``,
``LinearScale`` or ``Node``, then replaces it. Each such model is in a reference cycle with its own
property containers (their ``_owners`` point back at it), so only the garbage collector frees it:
the demo app's document leaves 9 (Bokeh 3.8-3.10). Young collections free most of them; those a
young collection meets mid-build, still referenced, move to the old generation and wait there for
a full collection: about 3,000 objects after 2,000 demo sessions had expired. Measured over 200
demo builds with the collector off (tracemalloc): 243 objects, 39 KiB per build only a collection
could free, 32 objects and 0.1 KiB with this module (Bokeh 3.10.2; 3.8.2: 49 KiB, 16 KiB, its
``Selection`` and ``UnionRenderers`` defaults stay). That is memory given back at once instead of
at the next full collection; it did not make that collection measurably shorter (4.0-4.4 ms of CPU
after 2,000 sessions expired, 4.2 ms with it: the collection's cost there is the memory arenas it
gives back, not the objects it frees). The cost is one context-variable lookup per model created.

``install`` notes every model created while ``Application.initialize_document`` runs (the build,
on the event loop or, Bokeh 3.10, on a worker thread: a context variable keeps builds apart). When
the build ends, each of those models that is in no document and that nothing refers to but its own
property containers (its reference count says so, exactly) is destroyed as a discarded document's
models are (``stall_free``): reference counting frees it at once. A model the app keeps, in a
global or a cache, has other references and is left alone.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import weakref
from typing import Any

from bokeh.application.application import Application
from bokeh.model import Model

# Weak references, so that the build's temporary models die as they would without this.
_created: contextvars.ContextVar[list[weakref.ref[Any]] | None] = contextvars.ContextVar(
    "models_created_by_this_build", default=None
)
#: The references ``free_orphans`` holds itself when it counts a model's: its local name and the
#: argument of ``sys.getrefcount``.
_OWN_REFERENCES = 2
#: Where a model keeps property containers, whose ``_owners`` refer back to it. ``destroy`` empties
#: the two ``_unstable_*`` dicts only with ``stall_free``'s patch (its ``_MODEL_CONTAINERS``), which
#: ``stall_free.install`` applies before it installs this module: without it a destroyed orphan
#: would stay in its cycle.
_CONTAINER_DICTS = ("_property_values", "_unstable_default_values", "_unstable_themed_values")


def references_from_own_containers(model: Any) -> int:
    """How many references to ``model`` its own property containers hold ((owner, descriptor) pairs)."""
    count = 0
    for name in _CONTAINER_DICTS:
        for value in getattr(model, name, {}).values():
            count += sum(1 for owner, _ in getattr(value, "_owners", ()) if owner is model)
    return count


def free_orphans(created: list[weakref.ref[Any]]) -> int:
    """Destroy the models of ``created`` (emptied) that are alive, in no document, and referred to
    by nothing but their own containers. Returns how many it destroyed."""
    destroyed = 0
    while created:
        model = created.pop()()
        if model is not None and model.document is None:
            own = references_from_own_containers(model)
            if sys.getrefcount(model) - _OWN_REFERENCES == own > 0:
                model.destroy()
                destroyed += 1
        del model
    return destroyed


def _noting_creation(original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        created = _created.get()
        if created is not None:
            created.append(weakref.ref(self))
        original(self, *args, **kwargs)

    return __init__


def _freeing_orphans(original: Any) -> Any:
    @functools.wraps(original)
    def initialize_document(self: Any, doc: Any) -> None:
        created: list[weakref.ref[Any]] = []
        token = _created.set(created)
        try:
            original(self, doc)
        finally:
            _created.reset(token)
            free_orphans(created)

    return initialize_document


def install() -> None:
    """Note the models each document build creates, and free its orphans when it ends (idempotent)."""
    if not hasattr(Model.__init__, "__wrapped__"):
        Model.__init__ = _noting_creation(Model.__init__)  # type: ignore[method-assign]
    if not hasattr(Application.initialize_document, "__wrapped__"):
        Application.initialize_document = _freeing_orphans(  # type: ignore[method-assign]
            Application.initialize_document
        )
