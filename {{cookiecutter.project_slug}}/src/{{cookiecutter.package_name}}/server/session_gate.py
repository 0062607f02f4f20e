"""The gate every new session passes: admission control at the door, and session births observed.

Two places of a running Bokeh server are wrapped, on this server's objects only:

* the Tornado application's ``find_handler`` (Tornado's public router interface), which sees each
  request before any Bokeh handler runs. A page GET of an app URL (Bokeh's ``DocHandler`` or
  ``AutoloadJsHandler``) or a websocket upgrade whose token names no live session (a new session
  through ``bokeh.client``) asks ``Admission`` for a ticket. Refused, the request goes to a handler
  of ours instead: the page gets **503 with Retry-After** and a short human page; the websocket is
  accepted and at once closed with code 1013 ("try again later") and the reason. No session is
  created, nothing half-made.
* each application context's ``create_session_if_needed`` (the one coroutine both Bokeh handlers
  call, Bokeh 3.8-3.10): a new session built there closes its ticket (its memory is now in RSS) and,
  when a page built it, is watched for a websocket (``UnconnectedSessions``); a call for an existing
  session is its websocket arriving. A new session that reached it without a ticket (another route)
  is admitted there, or refused with a plain 503.

With login on (``login.py``), a page or websocket without a logged-in user passes the door
untouched (Bokeh then redirects it to the login or refuses it: no ticket, no session), and a new
session's user is remembered before the session is built, so the app can ask who it serves.

Sessions already admitted are never affected. Every refusal is counted in ``/metrics``
(``bokeh_sessions_refused_total{kind,reason}``) and logged, at most once per ``LOG_EVERY_S`` with a
count.
"""

from __future__ import annotations

import functools
import html
import logging
import secrets
import time
from typing import Any

from bokeh.server.views.autoload_js_handler import AutoloadJsHandler
from bokeh.server.views.doc_handler import DocHandler
from bokeh.server.views.ws import WSHandler
from bokeh.util.token import get_session_id
from tornado.web import HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler

from . import metrics, server_control
from .admission import Admission, Refusal, Ticket
from .unconnected import UnconnectedSessions

log = logging.getLogger(__name__)
#: The request attribute that carries an admitted request's ticket to the session's creation.
TICKET_ATTRIBUTE = "_admission_ticket"
#: Websocket close code 1013, "Try Again Later" (RFC 6455 registry).
TRY_AGAIN_LATER = 1013
LOG_EVERY_S = 10.0
#: Session ids of the warm-up sessions start with this (logs, metrics and tests can tell them apart).
WARM_UP_PREFIX = "warm-up-"

_FULL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Busy - please try again shortly</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto; line-height: 1.5">
<h1>This dashboard is busy right now</h1>
<p>It is serving as many people as it can hold. Please try again in {retry} seconds.</p>
<p><a href="">Try again</a></p>
</body></html>
"""


class ServerFullPage(RequestHandler):
    """A refused page: 503, ``Retry-After``, a short page; no session behind it."""

    def initialize(self, refusal: Refusal, retry_after_s: int) -> None:
        self.refusal = refusal
        self.retry_after_s = retry_after_s

    def get(self, *args: Any, **kwargs: Any) -> None:
        self.set_status(503)
        self.set_header("Retry-After", str(self.retry_after_s))
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_FULL_PAGE.format(retry=html.escape(str(self.retry_after_s))))


class RefusedWebSocket(WebSocketHandler):
    """A refused new-session websocket: opened, then closed at once with 1013 and the reason."""

    def initialize(self, refusal: Refusal, retry_after_s: int) -> None:
        self.refusal = refusal
        self.retry_after_s = retry_after_s

    def check_origin(self, origin: str) -> bool:
        return True  # it only says "full" and closes: nothing to protect from other origins

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return subprotocols[0] if subprotocols else None  # "bokeh", or the client fails the handshake

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.close(TRY_AGAIN_LATER, f"server full ({self.refusal.reason}), retry in {self.retry_after_s} s")

    def on_message(self, message: str | bytes) -> None:
        """Nothing is read from a refused connection."""


def _token_session_id(request: Any) -> str | None:
    """The session id of a Bokeh websocket's token (``Sec-WebSocket-Protocol: bokeh, <token>``)."""
    protocols = [part.strip() for part in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(protocols) != 2:
        return None
    try:
        return str(get_session_id(protocols[1]))
    except Exception:  # a malformed token: Bokeh's own handler refuses it
        return None


def _page_session_id(request: Any) -> str | None:
    """The existing session a page GET asks for (``bokeh-session-id``/``bokeh-token``), if any."""
    header = request.headers.get("Bokeh-Session-Id")
    if header:
        return str(header)
    arguments = request.query_arguments
    if arguments.get("bokeh-session-id"):
        return arguments["bokeh-session-id"][0].decode("utf-8", "replace")
    if arguments.get("bokeh-token"):
        try:
            return str(get_session_id(arguments["bokeh-token"][0].decode("utf-8", "replace")))
        except Exception:
            return None
    return None


class SessionGate:
    """Installs the admission check and the session-birth observer on one Bokeh server."""

    def __init__(
        self,
        server: Any,
        admission: Admission,
        unconnected: UnconnectedSessions,
        retry_after_s: int,
        login: Any = None,
    ) -> None:
        self.server = server
        #: ``login.OidcLogin`` (``is_authenticated(request)``, ``remember(session_id, request)``) or None.
        self.login = login
        self.admission = admission
        self.unconnected = unconnected
        self.retry_after_s = retry_after_s
        self.refused = 0
        self._unlogged = 0
        self._last_log = 0.0
        self._originals: list[tuple[Any, str, Any]] = []
        self._creators: list[tuple[Any, Any]] = []  # (context, its unwrapped create_session_if_needed)

    # --- installation ---------------------------------------------------------------------------

    def install(self) -> SessionGate:
        tornado_app = self.server._tornado
        self._wrap(
            tornado_app, "find_handler", functools.partial(self._find_handler, tornado_app.find_handler)
        )
        for context in server_control.application_contexts(self.server):
            original = context.create_session_if_needed
            self._creators.append((context, original))
            self._wrap(
                context, "create_session_if_needed", functools.partial(self._create, context, original)
            )
        return self

    def _wrap(self, target: Any, name: str, replacement: Any) -> None:
        self._originals.append((target, name, target.__dict__.get(name)))
        setattr(target, name, replacement)

    def uninstall(self) -> None:
        for target, name, previous in reversed(self._originals):
            if previous is None:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, previous)
        self._originals.clear()

    # --- warm-up -----------------------------------------------------------------------------------

    async def warm_up(self, sessions: int) -> None:
        """Build and discard ``sessions`` throwaway sessions of each app before users come.

        The first pays for the app's first imports; the RSS growth of the last is admission's first
        measured session cost, so a crowd at start is judged by a measurement, not admitted one at a
        time. Their ids start with ``WARM_UP_PREFIX``; their cleanups run as for any session.
        """
        for context, create in self._creators:
            for number in range(sessions):
                before = self.admission.rss()
                session = await create(f"{WARM_UP_PREFIX}{secrets.token_urlsafe(12)}")
                after = self.admission.rss()
                await server_control.discard_sessions([(context, session)])
                if number == sessions - 1:
                    self.admission.cost.note_created(before, after, alone=True)
                    log.info("Warm-up: a session takes %.1f MB", (after - before) / 2**20)

    # --- the door -------------------------------------------------------------------------------

    def _find_handler(self, original: Any, request: Any, **kwargs: Any) -> Any:
        delegate = original(request, **kwargs)
        context = (getattr(delegate, "handler_kwargs", None) or {}).get("application_context")
        handler_class = getattr(delegate, "handler_class", None)
        if context is None or not isinstance(handler_class, type) or request.method != "GET":
            return delegate
        if issubclass(handler_class, WSHandler):
            kind, session_id = "websocket", _token_session_id(request)
        elif issubclass(handler_class, (DocHandler, AutoloadJsHandler)):
            kind, session_id = "page", _page_session_id(request)
        else:
            return delegate
        if session_id is not None and server_control.has_session(context, session_id):
            return delegate  # attaching to a live session: never refused
        if self.login is not None and not self.login.is_authenticated(request):
            return delegate  # Bokeh redirects it to the login (or refuses it): nothing is built
        decision = self.admission.admit()
        if isinstance(decision, Ticket):
            setattr(request, TICKET_ATTRIBUTE, decision)
            return delegate
        self._count_refusal(kind, decision)
        handler = RefusedWebSocket if kind == "websocket" else ServerFullPage
        target_kwargs = {"refusal": decision, "retry_after_s": self.retry_after_s}
        return self.server._tornado.get_handler_delegate(request, handler, target_kwargs)

    def _count_refusal(self, kind: str, refusal: Refusal) -> None:
        self.refused += 1
        self._unlogged += 1
        metrics.sessions_refused.labels(kind=kind, reason=refusal.reason).inc()
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            log.warning(
                "Refused %d new session(s) since the last report (latest: %s %s)",
                self._unlogged, kind, refusal.detail,
            )  # fmt: skip
            self._unlogged, self._last_log = 0, now

    # --- births -----------------------------------------------------------------------------------

    async def _create(
        self, context: Any, original: Any, session_id: str, request: Any = None, token: str | None = None
    ) -> Any:
        if server_control.has_session(context, session_id):
            self.unconnected.attached(str(session_id))
            return await original(session_id, request, token)
        ticket = getattr(request, TICKET_ATTRIBUTE, None)
        if ticket is None:  # a route the door did not see
            decision = self.admission.admit()
            if isinstance(decision, Refusal):
                self._count_refusal("other", decision)
                raise HTTPError(503, reason="Server full, retry later")
            ticket = decision
        if self.login is not None:
            self.login.remember(session_id, request)
        try:
            session = await original(session_id, request, token)
        except BaseException:
            self.admission.built(ticket, succeeded=False)
            raise
        self.admission.built(ticket, succeeded=True)
        if request is None or request.headers.get("Upgrade", "").lower() != "websocket":
            self.unconnected.watch(context, session)
        return session
