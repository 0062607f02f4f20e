"""Cleanups that reach through helpers of this main.py to its globals, as real apps do.

Bokeh clears this module's globals before destroy callbacks run. The project keeps the module whole
until the cleanups ran, so ``release`` -> ``Handle.close`` -> ``record_release`` -> ``probe`` and
``RELEASED`` (globals) all resolve, and so does the document-level callback's helper chain.
"""

from __future__ import annotations

from bokeh.io import curdoc
from bokeh.models import Div

from {{ cookiecutter.package_name }} import on_session_end

import probe

RELEASED = "released"
FINISHED = "finished"
OPEN_HANDLES: set[str] = set()  # a resource registry of this session's module


class Handle:
    """A resource that must be closed when the session ends."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        OPEN_HANDLES.add(session_id)

    def close(self) -> None:
        OPEN_HANDLES.discard(self.session_id)
        record_release(self)


def record_release(handle: Handle) -> None:
    probe.record(RELEASED, handle.session_id)


def release(handle: Handle) -> None:
    """The registered cleanup: two calls deep before a global is read."""
    handle.close()


def finish(session_id: str) -> None:
    probe.record(FINISHED, session_id)


def on_destroyed(session_context) -> None:
    finish(session_context.id)


doc = curdoc()
on_session_end(doc, release, Handle(doc.session_context.id))
doc.on_session_destroyed(on_destroyed)
probe.record("created", doc.session_context.id)
doc.add_root(Div(text="cleanup chain"))
