"""Memory guard: shed idle sessions before the container's memory limit is reached.

Every ``memory_check_interval_ms`` (1 s) it reads the process RSS. Above the soft limit
(``memory_soft_limit_mb``, by default 80 % of ``memory_limit``) it marks the server not ready
(``/readyz`` answers 503, so the load balancer sends new users elsewhere) and expires idle
sessions (no open connection), oldest first: a quarter of them per check, at least one, then
returns their memory to the OS at once (not after the usual batching delay). Sessions with an
open connection are never touched: what keeps the process alive when they fill it is admission
control (``admission.py``). Below the limit again, the server is ready; the time from going over
to coming back is logged and observed (``bokeh_memory_guard_recovery_seconds``). Every step is
logged and counted (``bokeh_memory_guard_evictions_total``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from tornado.ioloop import PeriodicCallback

from . import memory, metrics, server_control
from .memory import process_rss
from .ops import OpsState

log = logging.getLogger(__name__)
MB = 2**20


class MemoryGuard:
    """Checks RSS on a timer and sheds idle sessions over the soft limit."""

    def __init__(self, server: Any, state: OpsState, soft_limit_bytes: int, interval_ms: int) -> None:
        self.server = server
        self.state = state
        self.soft_limit_bytes = soft_limit_bytes
        self.interval_ms = interval_ms
        self.evictions = 0
        self._over_since: float | None = None
        self._busy = False
        self._task: asyncio.Future[int] | None = None
        self._timer = PeriodicCallback(self._schedule_check, interval_ms)
        metrics.soft_limit.set(soft_limit_bytes)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _schedule_check(self) -> None:
        if not self._busy:
            self._busy = True
            self._task = asyncio.ensure_future(self.check())

    async def check(self) -> int:
        """One guard step; returns how many sessions it expired."""
        try:
            rss = process_rss()
            over = rss > self.soft_limit_bytes
            if over != self.state.over_memory_limit:
                self._crossed(rss, over)
            if not over:
                return 0
            idle = server_control.idle_sessions_oldest_first(self.server)
            if not idle:
                log.warning("Memory guard: over the soft limit with no idle session to expire")
                return 0
            step = idle[: max(1, math.ceil(len(idle) / 4))]
            expired = await server_control.discard_sessions(step)
            self.evictions += expired
            metrics.guard_evictions.inc(expired)
            # Give the memory back now, not after the batching delay: the limit is near. What
            # died in reference cycles in the old generation is only found by a full collection.
            memory.release_memory(force_full=True)
            after = process_rss()
            log.warning(
                "Memory guard: RSS %.0f MB > %.0f MB, expired %d of %d idle session(s), oldest first; "
                "RSS now %.0f MB",
                rss / MB, self.soft_limit_bytes / MB, expired, len(idle), after / MB,
            )  # fmt: skip
            if after <= self.soft_limit_bytes:
                self._crossed(after, over=False)
            return expired
        finally:
            self._busy = False

    def _crossed(self, rss: int, over: bool) -> None:
        """RSS went over the soft limit (readiness off) or back below it (on; recovery timed)."""
        now = time.monotonic()
        recovered = ""
        if over:
            self._over_since = now
        elif self._over_since is not None:
            seconds = now - self._over_since
            metrics.guard_recovery_seconds.observe(seconds)
            recovered = f" after {seconds:.2f} s"
            self._over_since = None
        self.state.over_memory_limit = over
        log.warning(
            "Memory guard: RSS %.0f MB is %s the soft limit %.0f MB%s; readiness %s",
            rss / MB, "above" if over else "back below", self.soft_limit_bytes / MB, recovered,
            "off" if over else "on",
        )  # fmt: skip
