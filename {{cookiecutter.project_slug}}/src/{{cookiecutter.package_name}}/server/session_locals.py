"""``session_context.locals``: the per-session store the popular guide assumes Bokeh has.

Bokeh's ``BokehSessionContext`` has no ``locals``. The lifecycle hooks attach a ``SessionLocals`` to
every session context when the session is created and empty it after the session's cleanups ran,
so ``doc.session_context.locals['data_cache'] = df`` works as the guide writes it and the data is
released with the session. The store also keeps the session's registered cleanups.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bokeh.document import Document

LOCALS_ATTRIBUTE = "locals"

_attach_lock = threading.Lock()


class OutsideSessionError(RuntimeError):
    """Raised when session locals are used where there is no Bokeh server session."""


class SessionLocals(MutableMapping[str, Any]):
    """A thread-safe dict of one session's data plus the cleanups to run when it ends."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._cleanups: list[Callable[[], None]] = []
        self._module_contents: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.closed = False

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            if self.closed:
                raise OutsideSessionError(f"session {self.session_id} has ended; its locals are closed")
            self._data[key] = value

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        return f"SessionLocals(session_id={self.session_id!r}, keys={sorted(self._data)!r})"

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Remember ``cleanup`` (no arguments) to run when the session ends."""
        with self._lock:
            if self.closed:
                raise OutsideSessionError(f"session {self.session_id} has ended; cannot add a cleanup")
            self._cleanups.append(cleanup)

    def keep_module_contents(self, contents: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Hold (module namespace, its contents) pairs for the cleanups (see ``cleanup.py``)."""
        with self._lock:
            self._module_contents = contents

    def take_module_contents(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Hand over the kept module contents and forget them."""
        with self._lock:
            contents, self._module_contents = self._module_contents, []
        return contents

    def take_cleanups(self) -> list[Callable[[], None]]:
        """Hand over the registered cleanups, last registered first, and forget them."""
        with self._lock:
            cleanups, self._cleanups = self._cleanups, []
        return cleanups[::-1]

    def close(self) -> None:
        """Drop every reference the store holds; later writes raise."""
        with self._lock:
            self.closed = True
            self._data.clear()
            self._cleanups.clear()
            self._module_contents = []


def context_document(session_context: Any) -> Document:
    """The Document of a server session context.

    Bokeh 3.10 has a public ``document`` property; 3.8 and 3.9 only ``_document``, which their own
    ``DocumentLifecycleHandler`` reads. Both hold the Document strongly until the session is gone.
    """
    document = getattr(session_context, "_document", None)
    return document if document is not None else session_context.document


def attach_locals(session_context: Any) -> SessionLocals:
    """Give ``session_context`` its ``locals`` store (idempotent, safe from worker threads)."""
    with _attach_lock:
        store = getattr(session_context, LOCALS_ATTRIBUTE, None)
        if not isinstance(store, SessionLocals):
            store = SessionLocals(str(session_context.id))
            setattr(session_context, LOCALS_ATTRIBUTE, store)
        return store


def locals_of_context(session_context: Any) -> SessionLocals:
    """The store of ``session_context``, with a clear error when the hooks are missing."""
    store = getattr(session_context, LOCALS_ATTRIBUTE, None)
    if not isinstance(store, SessionLocals):
        raise OutsideSessionError(
            "this session has no locals store: serve the app directory whose app_hooks.py calls "
            "the runtime's lifecycle hooks (see app/app_hooks.py)"
        )
    return store


def session_locals(doc: Document) -> SessionLocals:
    """Typed accessor for ``doc.session_context.locals``.

    Raises ``OutsideSessionError`` when ``doc`` is not served by a Bokeh server (for example in a
    notebook or ``bokeh.io.show``), where there is no session to tie the data to.
    """
    session_context = doc.session_context
    if session_context is None:
        raise OutsideSessionError(
            "session locals exist only inside a Bokeh server session; run the app with "
            "`bokeh serve` or `python -m <package> serve`"
        )
    return locals_of_context(session_context)
