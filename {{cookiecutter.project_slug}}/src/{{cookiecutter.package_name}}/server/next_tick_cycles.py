"""Bokeh 3.8 and 3.9: a next-tick callback that has run no longer holds its document in a cycle.

Their ``_CallbackGroup.add_next_tick_callback`` (``bokeh.util.tornado``) marks a removed callback
with an attribute on its own wrapper function (``wrapper.removed``): the wrapper refers to itself
through its closure, and to the session's callback, which holds the document. Every session that
ever ran a next-tick callback therefore left its whole document in a reference cycle after its
discard: measured on Bokeh 3.9.2, 50 objects per HTTP-only demo session, and a full collection of
117 ms after 2,000 sessions expired together. Bokeh 3.10 keeps the flag in a ``nonlocal`` variable
instead; ``install`` does the same, and only where the self-referencing code is found
(``patches.code_found``), so on 3.10 Bokeh's own method stays.
"""

from __future__ import annotations

from typing import Any

from . import patches

#: What the replaced method is (``patches.code_found``): Bokeh 3.8 and 3.9 only.
SELF_REFERENCING_WRAPPER = "next_tick_self_cycle"


def install() -> bool:
    """Replace the method where Bokeh's self-referencing version is found. Returns whether it did."""
    if not patches.code_found(SELF_REFERENCING_WRAPPER):
        return False
    from bokeh.util.tornado import _CallbackGroup

    if not hasattr(_CallbackGroup.add_next_tick_callback, "__wrapped__"):
        add_next_tick_callback.__wrapped__ = _CallbackGroup.add_next_tick_callback  # type: ignore[attr-defined]
        _CallbackGroup.add_next_tick_callback = add_next_tick_callback  # type: ignore[method-assign]
    return True


def add_next_tick_callback(self: Any, callback: Any, callback_id: Any) -> Any:
    """Bokeh 3.9's method with its removed flag in a ``nonlocal`` variable (as Bokeh 3.10 has it)."""
    removed = False

    def wrapper() -> Any:
        if removed:  # Tornado cannot unschedule a next-tick callback: a removed one does nothing
            return None
        self.remove_next_tick_callback(callback_id)
        return callback()

    def remover() -> None:
        nonlocal removed
        removed = True

    self._assign_remover(callback, callback_id, self._next_tick_callback_removers, remover)
    self._loop.add_callback(wrapper)
    return callback_id
