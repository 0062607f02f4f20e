"""Graceful stop: drain on SIGTERM, then discard every session so that every cleanup runs.

``GracefulServer`` replaces Bokeh's ``run_until_shutdown``: on SIGTERM (or SIGINT) readiness turns
off at once, the server keeps serving for ``drain_seconds`` (so the load balancer can move new users
away), then every connection is closed and every session discarded, and the process exits 0. A
second signal skips the rest of the drain. Where ``server_control`` is off on this Bokeh
(``patches.py``), the drain still happens and the server then stops as Bokeh does, without
discarding the sessions itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from . import patches, server_control
from .runtime import Runtime

log = logging.getLogger(__name__)


class GracefulServer:
    """Wraps a Bokeh ``Server``; ``run_until_shutdown`` drains on SIGTERM instead of dropping sessions."""

    def __init__(self, runtime: Runtime, drain_seconds: float) -> None:
        self.runtime = runtime
        self.drain_seconds = drain_seconds
        self._shutdown_task: asyncio.Task[None] | None = None
        self._skip_drain: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime.server, name)

    def _on_signal(self, signum: int) -> None:
        if self._shutdown_task is None:
            log.warning(
                "Received %s: readiness off, draining for %.1f s, then discarding every session",
                signal.Signals(signum).name, self.drain_seconds,
            )  # fmt: skip
            self.runtime.state.draining = True
            self._skip_drain = asyncio.Event()
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        elif self._skip_drain is not None:
            log.warning("Received %s again: ending the drain now", signal.Signals(signum).name)
            self._skip_drain.set()

    async def _shutdown(self) -> None:
        assert self._skip_drain is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._skip_drain.wait(), timeout=self.drain_seconds)
        server = self.runtime.server
        self.runtime.stop()
        try:
            if patches.is_active("server_control"):
                discarded = await server_control.discard_all_sessions(server)
                log.warning("Drained: %d session(s) discarded, all cleanups run; stopping", discarded)
            else:
                log.warning("Drained; server_control is off on this Bokeh: stopping as Bokeh does")
        finally:
            server.io_loop.stop()

    def run_until_shutdown(self) -> None:
        server = self.runtime.server
        if not getattr(server, "_started", False):
            server.start()
        loop = server.io_loop.asyncio_loop
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            server.io_loop.start()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            server.stop()
            log.info("Server stopped")
