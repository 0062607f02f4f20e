"""Bokeh 3.8/3.9: a next-tick callback that has run does not keep what it refers to in a cycle.

How we know this can fail: the control runs Bokeh's own ``add_next_tick_callback`` the same way
and finds the callback's document stand-in still alive until a full collection.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.server import next_tick_cycles, patches

pytestmark = [
    pytest.mark.requires_patch("stall_free"),
    pytest.mark.skipif(
        not patches.code_found(next_tick_cycles.SELF_REFERENCING_WRAPPER),
        reason="this Bokeh (3.10+) has no self-referencing next-tick wrapper",
    ),
]


class _Document:
    """Stands in for the document a session callback closes over."""

    def touch(self) -> None:
        """The callback: a bound method, so it holds the document."""


def _alive_after_running(add_next_tick_callback: Any) -> bool:
    """Run one next-tick callback closing over a document through ``add_next_tick_callback``; is
    the document alive once everything else has let go of it (no collection run)?"""
    from bokeh.util.tornado import _CallbackGroup
    from tornado.ioloop import IOLoop

    document_ref: list[weakref.ref[_Document]] = []

    async def run() -> None:
        group = _CallbackGroup(IOLoop.current())
        document = _Document()
        document_ref.append(weakref.ref(document))
        add_next_tick_callback(group, document.touch, "the-id")
        del document
        await asyncio.sleep(0.01)  # the callback runs and removes itself

    gc.collect()
    gc.disable()
    try:
        asyncio.run(run())
        return document_ref[0]() is not None
    finally:
        gc.enable()
        gc.collect()


def test_a_next_tick_callback_that_ran_lets_its_document_go() -> None:
    assert _alive_after_running(next_tick_cycles.add_next_tick_callback.__wrapped__)  # control: Bokeh's
    assert not _alive_after_running(next_tick_cycles.add_next_tick_callback)


def test_the_server_uses_it() -> None:
    from bokeh.util.tornado import _CallbackGroup

    assert _CallbackGroup.add_next_tick_callback is next_tick_cycles.add_next_tick_callback
