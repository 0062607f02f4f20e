"""``python -m <package> serve``: Bokeh's own ``serve`` subcommand with this project's defaults.

Subclassing ``bokeh.command.subcommands.serve.Serve`` keeps every ``bokeh serve`` flag and its
behaviour. Only defaults change: the app directory, address, port, websocket origins and the
session-expiry timings come from ``settings`` (baked answers, overridable by env vars), and any
flag given on the command line wins.
"""

from __future__ import annotations

import argparse

from bokeh.command.subcommands.serve import Serve

from . import APP_DIR
from .settings import get_settings


class ProductionServe(Serve):
    """``bokeh serve`` with the project's app and answered defaults."""

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
        )

    def invoke(self, args: argparse.Namespace) -> None:
        if not args.files:
            args.files = [str(APP_DIR)]
        if args.allow_websocket_origin is None:
            args.allow_websocket_origin = list(get_settings().allowed_origins)
        return super().invoke(args)
