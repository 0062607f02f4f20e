"""A closed websocket connection's Bokeh objects are freed by reference counting, not left in cycles.

How we know this can fail: the control runs the same closed connection without ``break_cycles``
and finds every one of its objects still alive until a full collection.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver
from bokeh.server.connection import ServerConnection
from bokeh.server.protocol_handler import ProtocolHandler

from {{ cookiecutter.package_name }}.server import websocket_cycles

pytestmark = pytest.mark.requires_patch("stall_free")


class _Session:
    """Stands in for Bokeh's ``ServerSession``: what a ``ServerConnection`` subscribes to."""

    def subscribe(self, connection: Any) -> None:
        pass

    def unsubscribe(self, connection: Any) -> None:
        pass


class _Handler:
    """Stands in for Tornado's side of ``WSHandler``: the attributes Bokeh's ``open`` sets."""

    receiver: Receiver | None = None
    handler: ProtocolHandler | None = None
    connection: ServerConnection | None = None


def _objects_alive_after_closing(break_cycles: bool) -> int:
    """Open a connection's objects as ``WSHandler.open`` does, close it as ``on_close`` leaves it
    (the session detached), drop it, and count its objects alive with no collection run."""
    protocol = Protocol()
    handler = _Handler()
    handler.receiver = Receiver(protocol)
    handler.handler = ProtocolHandler()
    handler.connection = ServerConnection(protocol, handler, None, _Session())  # type: ignore[arg-type]
    handler.connection.detach_session()
    if break_cycles:
        websocket_cycles.break_cycles(handler)
    refs = [weakref.ref(o) for o in (handler, handler.receiver, handler.handler, handler.connection)]
    del handler
    return sum(ref() is not None for ref in refs)


def test_a_closed_connection_is_freed_by_reference_counting() -> None:
    gc.collect()
    gc.disable()
    try:
        assert _objects_alive_after_closing(break_cycles=False) == 4  # control: all in cycles
        assert _objects_alive_after_closing(break_cycles=True) == 0
    finally:
        gc.enable()
        gc.collect()


def test_the_server_breaks_them_when_a_websocket_closes() -> None:
    from bokeh.server.views.ws import WSHandler

    assert WSHandler.on_close.__wrapped__ is not None  # installed by stall_free (conftest)
