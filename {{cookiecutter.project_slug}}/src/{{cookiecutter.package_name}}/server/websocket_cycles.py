"""Break the reference cycles a closed Bokeh websocket connection leaves behind.

A closed connection's objects point at each other: Tornado's handler (Bokeh's ``WSHandler``) and
Bokeh's ``ServerConnection`` hold each other, and Bokeh's ``Receiver`` and ``ProtocolHandler``
each hold a bound method of themselves. Reference counting cannot free such cycles; only a full
collection does, and on this server those run when discarded sessions have paid for them
(``full_collections``). Measured on the demo (Bokeh 3.10.2): about 70 objects per websocket
session waited for one. Once Bokeh has let the session go (``WSHandler.on_close``), these links
are dropped, so reference counting frees the connection's objects when Tornado lets go of them.

Nothing reads the dropped links after ``on_close``: Tornado delivers no message to a closed
handler, and Bokeh has detached the connection from its session. ``install`` applies this where
``patches.py`` says ``stall_free`` is on (it fingerprints the code each link comes from).
"""

from __future__ import annotations

from typing import Any

from bokeh.server.views.ws import WSHandler


def install() -> None:
    """Wrap ``WSHandler.on_close`` once per process."""
    if not hasattr(WSHandler.on_close, "__wrapped__"):
        WSHandler.on_close = _close_and_break_cycles(WSHandler.on_close)  # type: ignore[method-assign]


def _close_and_break_cycles(original: Any) -> Any:
    def on_close(self: Any) -> None:
        try:
            original(self)
        finally:
            break_cycles(self)

    on_close.__wrapped__ = original  # type: ignore[attr-defined]
    return on_close


def break_cycles(handler: Any) -> None:
    """Drop the links by which a closed ``WSHandler``'s Bokeh objects hold each other."""
    connection = handler.connection
    if connection is not None:
        connection._socket = None  # ServerConnection -> WSHandler -> ServerConnection
    receiver = handler.receiver
    if receiver is not None:
        receiver._current_consumer = _closed  # a bound method of the receiver
    protocol_handler = handler.handler
    if protocol_handler is not None:
        protocol_handler._handlers = {}  # holds a bound method of the protocol handler


def _closed(fragment: Any) -> None:
    """What a closed connection's receiver holds instead of its next-fragment method."""
    raise RuntimeError("a message fragment arrived on a closed websocket connection")
