"""``python -m <package> serve``: Bokeh's own ``serve`` subcommand with this project's defaults.

Subclassing ``bokeh.command.subcommands.serve.Serve`` keeps every ``bokeh serve`` flag and its
behaviour. Defaults change: the app directory, address, port, websocket origins and the
session-expiry timings come from ``settings`` (baked answers, overridable by env vars), and any
flag given on the command line wins. It also adds what production needs and ``bokeh serve`` lacks:
``/healthz``, ``/readyz`` and ``/metrics`` (under ``--prefix``, creating no session; the last two on
their own port when ``METRICS_PORT`` is set), stall-free mass expiry, the memory guard, admission
control, the discard of sessions nobody connects to, request limits (HTTP body, websocket
message), a draining SIGTERM, ``--use-xheaders`` from ``USE_XHEADERS``, and with ``AUTH=oidc`` a
login through Bokeh's auth hooks (``login.py``). The
pieces that use Bokeh internals run only where ``patches.py`` says this Bokeh allows them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bokeh.command.subcommands.serve import Serve
from bokeh.settings import settings as bokeh_settings
from bokeh.util.logconfig import basicConfig

from . import patches, runtime, stall_free
from .cleanup import on_every_session_end
from .ops import OpsState, ops_patterns, start_metrics_server
from .session_users import SESSION_USERS
from .settings import PACKAGE, SettingsError, check_origins, default_origins, env_var, get_settings
from .shutdown import GracefulServer

#: Logged when the server is set up and warmed up, after Bokeh's own "Bokeh app running at" line.
READY_MESSAGE = "Ready for users"
#: The Bokeh directory app this command serves: the app's folder, found by path, never imported.
APP_DIR = Path(__file__).resolve().parent.parent / "app"


class ProductionServe(Serve):
    """``bokeh serve`` with the project's app, answered defaults and operations features."""

    name = "serve"
    help = "Run the Bokeh server with this project's app and production defaults"

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser=parser)
        settings = get_settings()
        parser.set_defaults(
            files=[str(APP_DIR)],
            address=settings.address,
            port=settings.port,
            unused_session_lifetime=settings.unused_session_lifetime_ms,
            check_unused_sessions=settings.check_unused_sessions_ms,
            log_level=settings.log_level,
            websocket_max_message_size=settings.websocket_max_message_mb * 2**20,
            use_xheaders=settings.use_xheaders,
        )
        self.ops_state = OpsState()
        self.login: Any = None
        self.listen_address: str | None = None
        self.metrics_server: Any = None

    def invoke(self, args: argparse.Namespace) -> None:
        if not args.files:
            args.files = [str(APP_DIR)]
        if args.allow_websocket_origin is None:
            args.allow_websocket_origin = list(default_origins(get_settings(), args.port))
        check_origins(args.allow_websocket_origin, "--allow-websocket-origin")
        check_origins(bokeh_settings.allowed_ws_origin(), "BOKEH_ALLOW_WS_ORIGIN")
        # Bokeh sets the level of its own logger only; ours follows --log-level too, and is set up
        # now (Bokeh's invoke does the same later) so that what is decided before it is logged.
        basicConfig(format=args.log_format, filename=args.log_file)
        logging.getLogger(PACKAGE).setLevel(bokeh_settings.py_log_level(args.log_level) or logging.INFO)
        patches.require_active()  # decides which pieces are on (one WARNING if some are off)
        stall_free.install()
        return super().invoke(args)

    def customize_kwargs(self, args: argparse.Namespace, server_kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = super().customize_kwargs(args, server_kwargs)
        settings = get_settings()
        patterns = ops_patterns(self.ops_state, internal=not settings.metrics_port)
        if settings.auth == "oidc":
            self.login = self.make_login(kwargs)
            kwargs["auth_provider"] = self.login
            patterns += self.login.extra_patterns()
            if not kwargs.get("include_cookies"):  # the login cookie never goes into a session token
                kwargs["exclude_cookies"] = [*(kwargs.get("exclude_cookies") or []), *self.login.cookie_names]
        kwargs["extra_patterns"] = [*kwargs.get("extra_patterns", []), *patterns]
        self.listen_address = kwargs.get("address")
        # Tornado buffers a request body up to 100 MB by default; Bokeh's pages need none. A larger
        # Content-Length is answered 400 before a byte of the body is read.
        body_limit = get_settings().max_body_kb * 1024
        http = {**kwargs.get("http_server_kwargs", {}), "max_body_size": body_limit}
        http["max_buffer_size"] = body_limit + 64 * 1024  # headers on top of the largest body
        kwargs["http_server_kwargs"] = http
        return kwargs

    def customize_server(self, server: Any) -> Any:
        server = super().customize_server(server)
        settings = get_settings()
        attached = runtime.attach(server, self.ops_state, settings, self.login)
        if settings.metrics_port:
            self.metrics_server = start_metrics_server(
                self.ops_state, self.listen_address, settings.metrics_port
            )
            logging.getLogger(__name__).info("Metrics and readiness on port %d", settings.metrics_port)
        if settings.warm_up_sessions:
            # The app's load hooks first (run_until_shutdown sees the server started), then the
            # warm-up, all before Bokeh announces the server: users meet a measured server.
            server.start()
            server.io_loop.run_sync(lambda: attached.warm_up(settings.warm_up_sessions))
        log = logging.getLogger(__name__)
        if settings.coalesce_gc:
            frozen = stall_free.freeze_startup_heap()
            log.info("Froze %d startup objects out of later collections", frozen)
        cost = None if attached.gate is None else attached.gate.admission.cost.estimate()
        log.info(
            "%s: new sessions admitted below %.0f MB RSS (memory limit %s), idle ones shed above %.0f MB, "
            "a session measured at %s",
            READY_MESSAGE, settings.admission_limit_bytes / 2**20, settings.memory_limit,
            settings.memory_soft_limit_bytes / 2**20, "-" if cost is None else f"{cost / 2**20:.1f} MB",
        )  # fmt: skip
        return GracefulServer(attached, settings.drain_seconds)

    @staticmethod
    def make_login(kwargs: dict[str, Any]) -> Any:
        """The OpenID Connect login; it needs signed session ids and a cookie secret."""
        try:
            from . import login  # imports Authlib: only when login is on
        except ImportError as error:
            raise SettingsError(
                f"{env_var('auth')}=oidc needs Authlib: pip install authlib ({error})"
            ) from None

        if not kwargs.get("sign_sessions"):
            raise SettingsError(
                f"{env_var('auth')}=oidc needs signed session ids: set BOKEH_SIGN_SESSIONS=true and "
                "BOKEH_SECRET_KEY (or --session-ids signed), so that a session cannot be claimed by id"
            )
        if not kwargs.get("cookie_secret"):
            raise SettingsError(f"{env_var('auth')}=oidc needs BOKEH_COOKIE_SECRET (signs the login cookie)")
        on_every_session_end(lambda context: SESSION_USERS.forget(str(context.id)))
        return login.OidcLogin(get_settings(), kwargs["cookie_secret"])
