"""Login with OpenID Connect through Bokeh's own auth hooks (``AUTH=oidc``).

``OidcLogin`` is a ``bokeh.server.auth_provider.AuthProvider``: Bokeh asks its ``get_user`` on every
page, websocket and metadata request, redirects a browser without a user to ``login_url`` and
mounts ``login_handler`` / ``logout_handler``; ``serve.py`` passes it as ``auth_provider`` and adds the
callback route. The flow (``oidc.py``): ``/auth/login`` sends the browser to the provider with
state, nonce and PKCE kept in a short-lived signed cookie; ``/auth/callback`` checks the state,
trades the code, verifies the ID token and sets the login cookie: signed with Bokeh's cookie secret
(``BOKEH_COOKIE_SECRET``), HttpOnly, SameSite=Lax, Secure under HTTPS, valid ``LOGIN_MAX_AGE_S``.
The login cookie is kept out of Bokeh's session token (which the page's JavaScript can read).

The session gate asks ``is_authenticated`` before admission control, so a login redirect never
takes a ticket or builds a session, and calls ``remember`` before a session is built, so the app
sees its user: ``current_user(curdoc())``. ``/auth/logout`` clears the cookie and ends every
session of that user (websockets closed, sessions discarded, cleanups run). The operations routes
are plain handlers and never ask for a login.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import time
from dataclasses import asdict
from typing import Any

from bokeh.server.auth_provider import AuthProvider
from tornado.web import RequestHandler, decode_signed_value

from . import oidc, server_control
from .session_users import SESSION_USERS, User
from .settings import PACKAGE, Settings

log = logging.getLogger(__name__)

LOGIN_COOKIE = f"{PACKAGE}_login"
FLOW_COOKIE = f"{PACKAGE}_login_flow"
LOGIN_PATH, CALLBACK_PATH, LOGOUT_PATH = "/auth/login", "/auth/callback", "/auth/logout"
#: How long the browser may take at the provider between /auth/login and /auth/callback (s).
FLOW_MAX_AGE_S = 600
#: Discovery and the provider's signing keys are read again after this (keys rotate) (s).
PROVIDER_TTL_S = 3600
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto"><h1>{title}</h1>
<p>{text}</p><p><a href="{link}">Sign in</a></p></body></html>
"""


def safe_next(path: str | None, default: str) -> str:
    """A local path to return to after login; anything else (``//host``, ``http:``) gives ``default``."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path


class OidcLogin(AuthProvider):
    """Bokeh's auth hooks backed by an OpenID provider."""

    def __init__(self, settings: Settings, cookie_secret: str) -> None:
        self.settings = settings
        self.cookie_secret = cookie_secret
        self._provider: oidc.Provider | None = None
        self._provider_read_at = 0.0
        #: Kept out of Bokeh's session tokens (the page's JavaScript can read a token).
        self.cookie_names = [LOGIN_COOKIE, FLOW_COOKIE]
        handlers = {"login": LoginHandler, "callback": CallbackHandler, "logout": LogoutHandler}
        # Bokeh mounts handler classes without arguments: bind this provider to subclasses.
        self.handlers = {key: type(cls.__name__, (cls,), {"login": self}) for key, cls in handlers.items()}
        super().__init__()

    # --- Bokeh's AuthProvider interface ------------------------------------------------------

    @property
    def get_user(self) -> Any:
        return lambda handler: self.user_from_cookie(handler.get_cookie(LOGIN_COOKIE))

    @property
    def login_url(self) -> str:
        return LOGIN_PATH

    @property
    def login_handler(self) -> type[RequestHandler]:
        return self.handlers["login"]

    @property
    def logout_url(self) -> str:
        return LOGOUT_PATH

    @property
    def logout_handler(self) -> type[RequestHandler]:
        return self.handlers["logout"]

    # --- what serve.py and the session gate use ------------------------------------------------

    def extra_patterns(self) -> list[tuple[str, type[RequestHandler]]]:
        return [(CALLBACK_PATH, self.handlers["callback"])]

    def user_from_cookie(self, value: str | bytes | None) -> User | None:
        """The user of a login cookie that this server signed and that has not expired."""
        if not value:
            return None
        days = self.settings.login_max_age_s / 86400
        decoded = decode_signed_value(self.cookie_secret, LOGIN_COOKIE, value, max_age_days=days)
        if decoded is None:
            return None
        try:
            user = User(**json.loads(decoded))
        except (TypeError, ValueError):
            return None
        return user if user.expires_at > time.time() else None

    def request_user(self, request: Any) -> User | None:
        morsel = request.cookies.get(LOGIN_COOKIE)
        return None if morsel is None else self.user_from_cookie(morsel.value)

    def is_authenticated(self, request: Any) -> bool:
        return self.request_user(request) is not None

    def remember(self, session_id: str, request: Any) -> None:
        user = None if request is None else self.request_user(request)
        if user is not None:
            SESSION_USERS.set(str(session_id), user)

    async def provider(self) -> oidc.Provider:
        """The provider's endpoints and keys, discovered on first use and every ``PROVIDER_TTL_S``."""
        if self._provider is None or time.monotonic() - self._provider_read_at > PROVIDER_TTL_S:
            self._provider = await oidc.discover(self.settings.oidc_issuer)
            self._provider_read_at = time.monotonic()
        return self._provider


class _LoginRoute(RequestHandler):
    login: OidcLogin

    def prefix(self) -> str:
        return str(getattr(self.application, "prefix", "") or "")

    def cookie_options(self) -> dict[str, Any]:
        return {
            "httponly": True,
            "secure": self.request.protocol == "https",
            "samesite": "Lax",
            "path": self.prefix() or "/",
        }

    def page(self, status: int, title: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        link = html.escape(self.prefix() + LOGIN_PATH)
        self.finish(_PAGE.format(title=html.escape(title), text=html.escape(text), link=link))


class LoginHandler(_LoginRoute):
    """Start a login: remember state, nonce and PKCE verifier, send the browser to the provider."""

    async def get(self) -> None:
        flow = oidc.Flow.new(safe_next(self.get_argument("next", None), self.prefix() + "/"))
        try:
            provider = await self.login.provider()
        except oidc.LoginError as error:
            log.error("Login unavailable: %s", error)
            self.page(503, "Login unavailable", "The identity provider cannot be reached; try again later.")
            return
        self.set_signed_cookie(
            FLOW_COOKIE, flow.dumps(), expires_days=FLOW_MAX_AGE_S / 86400, **self.cookie_options()
        )
        settings = self.login.settings
        redirect_uri = f"{self.request.protocol}://{self.request.host}{self.prefix()}{CALLBACK_PATH}"
        self.redirect(
            oidc.authorization_url(
                provider, settings.oidc_client_id, redirect_uri, settings.oidc_scopes, flow
            )
        )


class CallbackHandler(_LoginRoute):
    """The provider sends the browser back here: check everything, then set the login cookie."""

    async def get(self) -> None:
        try:
            user, next_path = await self.complete_login()
        except oidc.LoginError as error:
            log.warning("Login refused from %s: %s", self.request.remote_ip, error)
            self.clear_cookie(FLOW_COOKIE, path=self.prefix() or "/")
            self.page(401, "Login failed", "The login could not be completed. Please sign in again.")
            return
        options = self.cookie_options()
        max_age_s = self.login.settings.login_max_age_s
        self.set_signed_cookie(
            LOGIN_COOKIE, json.dumps(asdict(user)), expires_days=max_age_s / 86400, **options
        )
        self.clear_cookie(FLOW_COOKIE, path=options["path"])
        log.info("User %r logged in", user.sub)
        self.redirect(next_path)

    async def complete_login(self) -> tuple[User, str]:
        if self.get_argument("error", None):
            raise oidc.LoginError(f"the provider answered error={self.get_argument('error')!r}")
        raw_flow = self.get_signed_cookie(FLOW_COOKIE, max_age_days=FLOW_MAX_AGE_S / 86400)
        if raw_flow is None:
            raise oidc.LoginError("no valid login-flow cookie (expired, forged, or another browser)")
        flow = oidc.Flow.loads(raw_flow)
        if not hmac.compare_digest(flow.state, self.get_argument("state", "")):
            raise oidc.LoginError("state does not match")
        login, settings = self.login, self.login.settings
        provider = await login.provider()
        redirect_uri = f"{self.request.protocol}://{self.request.host}{self.prefix()}{CALLBACK_PATH}"
        tokens = await oidc.exchange_code(
            provider,
            settings.oidc_client_id,
            settings.oidc_client_secret,
            self.get_argument("code", ""),
            redirect_uri,
            flow,
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise oidc.LoginError("the token response has no id_token")
        claims = oidc.verify_id_token(
            id_token, provider.keys, provider.issuer, settings.oidc_client_id, flow.nonce
        )
        return User.from_claims(claims, settings.login_max_age_s), flow.next_path


class LogoutHandler(_LoginRoute):
    """Clear the login cookie and end every session of that user."""

    async def get(self) -> None:
        user = self.login.user_from_cookie(self.get_cookie(LOGIN_COOKIE))
        self.clear_cookie(LOGIN_COOKIE, path=self.prefix() or "/")
        if user is not None:
            ended = await server_control.end_sessions(
                self.application, SESSION_USERS.sessions_of(user.sub), "logged out"
            )
            log.info("User %r logged out; %d session(s) ended", user.sub, ended)
        self.page(200, "Signed out", "Your sessions on this dashboard have ended.")
