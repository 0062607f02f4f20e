"""Run a real Bokeh server in a background thread and drive real sessions against it.

Used by this project's tests and by ``leakcheck``. The server listens on 127.0.0.1 with an
OS-chosen port, runs on its own event loop in a daemon thread, and is inspected through
``RunningServer.call``, which runs a function on that loop and returns its result. Sessions are
opened the three ways production opens them: a ``bokeh.client`` websocket, a plain HTTP GET of the
page (which creates a session with no connection), and a browser-like GET + websocket whose TCP
connection is then reset without a websocket close (a tab killed or a network cut).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import re
import socket
import ssl
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bokeh.application import Application
from bokeh.command.util import build_single_handler_application
from bokeh.server.server import Server
from tornado.ioloop import IOLoop

from {{ cookiecutter.package_name }}.server import runtime
from {{ cookiecutter.package_name }}.server.ops import OpsState, ops_patterns
from {{ cookiecutter.package_name }}.server.runtime import Runtime
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import Settings

from .polling import wait_until

T = TypeVar("T")

_TOKEN = re.compile(r'"token":\s*"([^"]+)"')


@dataclass
class RunningServer:
    """A started Bokeh server plus the loop and thread it runs on."""

    server: Server
    loop: IOLoop
    thread: threading.Thread
    app_path: str

    @property
    def port(self) -> int:
        return int(self.server.port)  # type: ignore[arg-type]

    def url(self, path: str | None = None) -> str:
        """``http://127.0.0.1:<port><path>``; the app's URL by default."""
        return f"http://127.0.0.1:{self.port}{self.app_path if path is None else path}"

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn()`` on the server's event loop thread and return its result."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as error:  # hand any failure back to the caller
                result.set_exception(error)

        self.loop.add_callback(run)
        return result.result(timeout)

    def session_count(self) -> int:
        """How many sessions the server holds now."""
        return self.call(lambda: len(self.server.get_sessions()))

    def wait_for_sessions(self, count: int, timeout: float) -> int:
        """Poll until the server holds ``count`` sessions or ``timeout`` passes; returns the last count."""
        wait_until(lambda: self.session_count() == count, timeout)
        return self.session_count()


def load_application(app: str | os.PathLike[str] | Application) -> Application:
    """An ``Application`` for a directory app or script path (or the application itself)."""
    if isinstance(app, Application):
        return app
    return build_single_handler_application(str(Path(app).resolve()))


def _allow_loopback_origin(server: Server) -> None:
    """Add ``127.0.0.1:<port>`` and ``localhost:<port>`` to the websocket origins ``server`` accepts."""
    # BokehTornado.websocket_origins is the set that WSHandler.check_origin reads on every upgrade.
    origins = server._tornado.websocket_origins
    if not isinstance(origins, set):
        raise RuntimeError(f"cannot extend Bokeh's websocket origins: {type(origins).__name__}, not a set")
    origins.update({f"127.0.0.1:{server.port}", f"localhost:{server.port}"})


@contextlib.contextmanager
def running_server(
    app: str | os.PathLike[str] | Application,
    *,
    app_path: str = "/app",
    unused_session_lifetime_ms: int = 300,
    check_unused_sessions_ms: int = 100,
    allow_own_origin: bool = False,
    **server_kwargs: Any,
) -> Iterator[RunningServer]:
    """Start a Bokeh server for ``app`` on 127.0.0.1, port 0, in a thread; stop it on exit.

    ``allow_own_origin=True`` lets a real browser that loads ``RunningServer.url()`` open the page's
    websocket: Bokeh checks the ``Origin`` header on the upgrade, and by default allows only
    ``localhost:<port>``, while the page is served from ``127.0.0.1:<port>``. The port is only known
    once the server has bound it, so ``127.0.0.1:<port>`` and ``localhost:<port>`` are added to the
    server's allowlist then (next to any ``allow_websocket_origin`` given), before it accepts
    connections. ``BOKEH_ALLOW_WS_ORIGIN``, when set, replaces that allowlist in Bokeh itself.
    """
    application = load_application(app)
    started: concurrent.futures.Future[RunningServer] = concurrent.futures.Future()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            server = Server(
                {app_path: application},
                io_loop=loop,
                address="127.0.0.1",
                port=0,
                unused_session_lifetime_milliseconds=unused_session_lifetime_ms,
                check_unused_sessions_milliseconds=check_unused_sessions_ms,
                **server_kwargs,
            )
            if allow_own_origin:
                _allow_loopback_origin(server)
            server.start()
        except BaseException as error:
            started.set_exception(error)
            loop.close(all_fds=True)
            return
        started.set_result(RunningServer(server, loop, threading.current_thread(), app_path))
        loop.start()
        with contextlib.suppress(Exception):
            server.stop()
        loop.close(all_fds=True)

    thread = threading.Thread(target=serve, name="bokeh-test-server", daemon=True)
    thread.start()
    running = started.result(timeout=30)
    try:
        yield running
    finally:
        running.loop.add_callback(running.loop.stop)
        thread.join(timeout=30)


@contextlib.contextmanager
def running_runtime(settings: Settings, **server_kwargs: Any) -> Iterator[tuple[RunningServer, Runtime]]:
    """The project's app on ``running_server`` with what ``python -m <package> serve`` adds attached
    (operations routes, memory guard, admission control, ...) under ``settings``."""
    state = OpsState()
    patterns = [*server_kwargs.pop("extra_patterns", []), *ops_patterns(state)]
    with running_server(APP_DIR, extra_patterns=patterns, **server_kwargs) as running:
        attached = running.call(lambda: runtime.attach(running.server, state, settings))
        try:
            if settings.warm_up_sessions:  # as `serve` does before it announces the server
                warm_up = attached.warm_up(settings.warm_up_sessions)
                asyncio.run_coroutine_threadsafe(warm_up, running.loop.asyncio_loop).result(60)
            yield running, attached
        finally:
            running.call(attached.stop)


@dataclass
class HttpResponse:
    """Status, headers and body text of an HTTP response (error statuses included)."""

    status: int
    headers: dict[str, str]
    body: str


def http_request(
    url: str | urllib.request.Request,
    timeout: float = 10.0,
    opener: urllib.request.OpenerDirector | None = None,
) -> HttpResponse:
    """Send ``url`` (a URL: GET; or a ``Request``) and return the response, also for error statuses."""
    try:
        # urlopen's opener is built once; build_opener() makes a new SSL context each call (~25 ms).
        with (opener.open if opener else urllib.request.urlopen)(url, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
            return HttpResponse(int(response.status), dict(response.headers.items()), body)
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        return HttpResponse(int(error.code), dict(error.headers.items()), body)


def http_get(
    url: str | urllib.request.Request,
    timeout: float = 10.0,
    opener: urllib.request.OpenerDirector | None = None,
) -> tuple[int, str]:
    """GET ``url``: the status and the body text, also for error statuses."""
    response = http_request(url, timeout, opener)
    return response.status, response.body


def page_token(page: str) -> str:
    """The session token in a Bokeh app page."""
    match = _TOKEN.search(page)
    if match is None:
        raise RuntimeError("the page has no session token: is it a Bokeh app page?")
    return match.group(1)


def open_http_session(running: RunningServer) -> str:
    """GET the app page: Bokeh creates a session that never gets a connection. Returns its token."""
    status, page = http_get(running.url())
    if status != 200:
        raise RuntimeError(f"GET {running.url()} returned {status}")
    return page_token(page)


def open_websocket_session(running: RunningServer) -> Any:
    """A ``bokeh.client`` session (real websocket) that pulled the document. Close it when done."""
    from bokeh.client import pull_session

    return pull_session(url=running.url())


@dataclass
class Websocket:
    """The first line of the server's handshake reply and, on 101, the open socket and the first
    frame the server sent (Bokeh's ACK, or a close frame)."""

    status_line: str
    sock: socket.socket
    first_frame: bytes = b""

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


def websocket_handshake(
    port: int,
    path: str,
    token: str,
    *,
    origin: str | None = None,
    cookie: str | None = None,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    source_address: str | None = None,
) -> Websocket:
    """A browser's websocket handshake for a Bokeh page (``Sec-WebSocket-Protocol: bokeh, <token>``).

    On ``101`` it also waits for the server's first message (Bokeh's ACK), i.e. until the
    connection is attached to a session. ``ssl_context`` speaks TLS (``wss://``);
    ``source_address`` connects from another loopback address (e.g. ``127.0.0.2``). The caller
    closes ``sock``.
    """
    headers = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: bokeh, {token}",
    ]
    if origin is not None:
        headers.append(f"Origin: {origin}")
    if cookie:
        headers.append(f"Cookie: {cookie}")
    source = None if source_address is None else (source_address, 0)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=source)
    if ssl_context is not None:
        sock = ssl_context.wrap_socket(sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        status_line = reply.split(b"\r\n", 1)[0].decode("latin-1") or "HTTP/1.1 000 closed"
        first_frame = reply.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in reply else b""
        if status_line.startswith("HTTP/1.1 101") and not first_frame:
            first_frame = sock.recv(65536)  # Bokeh's ACK: the connection now belongs to a session
    except BaseException:
        sock.close()
        raise
    return Websocket(status_line, sock, first_frame)


def open_dropped_session(running: RunningServer, timeout: float = 10.0) -> None:
    """Browser-like: GET the page, open its websocket, then reset TCP without a websocket close."""
    token = open_http_session(running)
    websocket = websocket_handshake(
        running.port, f"{running.app_path.rstrip('/')}/ws", token, timeout=timeout
    )
    try:
        if websocket.status != 101:
            raise RuntimeError(f"websocket upgrade refused: {websocket.status_line!r}")
    finally:
        # SO_LINGER 0: close() sends RST, like a killed browser tab; no websocket close frame.
        websocket.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        websocket.sock.close()
