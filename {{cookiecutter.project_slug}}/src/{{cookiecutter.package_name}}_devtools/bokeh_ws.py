"""Bokeh sessions driven over their websocket directly, hundreds on one event loop: for load tests.

``bokeh.client`` runs its event loop only inside its own calls and, while it waits for a reply,
drops the PATCH-DOC messages that arrive (``bokeh/client/connection.py``), so it cannot see a
server's change come back after a widget moved. ``BokehUser`` does what a browser tab does, with
Tornado's websocket client and Bokeh's own message parser (``bokeh.protocol.receiver``):

1. GET the app page (the server builds the session; cookies, e.g. nginx's route, are kept);
2. open the page's websocket with the session token from the page, wait for Bokeh's ACK;
3. pull the document (PULL-DOC-REQ -> PULL-DOC-REPLY): the "first document" a page renders;
4. then ``set_and_wait``: send a PATCH-DOC that sets a model property, exactly as BokehJS does when
   a slider moves, and wait for the server's PATCH-DOC that changes a property of another model
   (the plot's data, recomputed by the server-side callback). Every message is read as it arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .testing import page_token

_message_ids = itertools.count()
#: Largest message a user accepts (the pulled document, a data patch).
MAX_MESSAGE_BYTES = 64 * 2**20


def models(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialized model (``{"type": "object", "id": ..., "attributes": ...}``) in ``node``."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "id" in node:
            yield node
        for value in node.values():
            yield from models(value)
    elif isinstance(node, list):
        for value in node:
            yield from models(value)


def model_id(document: dict[str, Any], name: str) -> str:
    """The id of the model called ``name`` (its ``name`` property) in a pulled document."""
    for model in models(document):
        if model.get("attributes", {}).get("name") == name:
            return str(model["id"])
    raise LookupError(f"no model named {name!r} in the document")


class BokehUser:
    """One browser tab's session, over its websocket. ``join`` makes one; ``close`` ends it."""

    def __init__(self, socket: WebSocketClientConnection) -> None:
        self.socket = socket
        self.document: dict[str, Any] = {}
        self._receiver = Receiver(Protocol())
        self._reader: asyncio.Future[None] | None = None
        self._waiting: tuple[str, asyncio.Future[None]] | None = None

    @classmethod
    async def join(
        cls, page_url: str, websocket_url: str, timeout: float = 30.0, ca_certs: str | None = None
    ) -> tuple[BokehUser, float]:
        """Open the page and its session (``ca_certs``: the certificate to trust for https/wss);
        returns the user and the seconds from the page request to the pulled document."""
        started = time.perf_counter()
        page = await AsyncHTTPClient().fetch(page_url, request_timeout=timeout, ca_certs=ca_certs)
        token = page_token(page.body.decode("utf-8", "replace"))
        cookies = "; ".join(cookie.split(";", 1)[0] for cookie in page.headers.get_list("Set-Cookie"))
        request = HTTPRequest(
            websocket_url,
            headers={"Cookie": cookies} if cookies else {},
            request_timeout=timeout,
            ca_certs=ca_certs,
        )
        socket = await websocket_connect(
            request, subprotocols=["bokeh", token], max_message_size=MAX_MESSAGE_BYTES
        )
        # As browsers do: a Bokeh message is several small frames, which Nagle's algorithm would
        # hold back until the server's delayed ACK (40 ms).
        socket.protocol.set_nodelay(True)
        user = cls(socket)
        try:
            await asyncio.wait_for(user._expect("ACK"), timeout)
            await user.send("PULL-DOC-REQ", {})
            reply = await asyncio.wait_for(user._expect("PULL-DOC-REPLY"), timeout)
        except BaseException:
            socket.close()
            raise
        user.document = reply.content["doc"]
        first_document_s = time.perf_counter() - started
        user._reader = asyncio.ensure_future(user._read_all())
        return user, first_document_s

    async def send(self, msgtype: str, content: dict[str, Any]) -> None:
        header = {"msgid": f"u{next(_message_ids)}", "msgtype": msgtype}
        for part in (header, {}, content):
            await self.socket.write_message(json.dumps(part))

    async def _receive(self) -> Any:
        while True:
            fragment = await self.socket.read_message()
            if fragment is None:
                raise ConnectionError("the server closed the websocket")
            message = await self._receiver.consume(fragment)
            if message is not None:
                return message

    async def _expect(self, msgtype: str) -> Any:
        while True:
            message = await self._receive()
            if message.header["msgtype"] == msgtype:
                return message

    async def _read_all(self) -> None:
        """After the document was pulled: read every message; resolve a waiting ``set_and_wait``."""
        try:
            while True:
                message = await self._receive()
                if self._waiting is None or message.header["msgtype"] != "PATCH-DOC":
                    continue
                attr, done = self._waiting
                if any(event.get("attr") == attr for event in message.content.get("events", [])):
                    self._waiting = None
                    if not done.done():
                        done.set_result(None)
        except ConnectionError:
            pass

    async def set_and_wait(self, model: str, attr: str, value: Any, changed: str, timeout: float) -> float:
        """Set ``model``'s ``attr`` to ``value``; wait for the server to change ``changed`` on any
        model. Returns the seconds from sending to the whole change having arrived."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting = (changed, done)
        started = time.perf_counter()
        event = {"kind": "ModelChanged", "model": {"id": model}, "attr": attr, "new": value}
        await self.send("PATCH-DOC", {"events": [event]})
        await asyncio.wait_for(done, timeout)
        return time.perf_counter() - started

    def close(self) -> None:
        self.socket.close()
        if self._reader is not None:
            self._reader.cancel()
