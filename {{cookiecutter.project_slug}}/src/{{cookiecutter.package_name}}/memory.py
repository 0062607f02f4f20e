"""Give freed memory back to the operating system, batched with session discards.

Freeing per-session arrays is not enough: glibc raises its mmap threshold after the first large
free, so later blocks come from the heap and stay mapped after ``free`` (BOKEH_FACTS: +202 MB kept
of 202 MB). ``malloc_trim(0)`` returns those pages. Every discarded session asks for a release; the
requests of one batch share a single ``gc.collect()`` + ``malloc_trim(0)`` on the server's event
loop, run ``delay_ms`` after the first request and never more often than ``min_interval_ms``, plus
one follow-up once the longest periodic-callback period has passed. Requests may come from worker
threads (Bokeh 3.10 destroys documents in its executor); they are handed to the bound loop. On
non-glibc platforms only the collection runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_MALLOC_TRIM = _load_malloc_trim()


@dataclass
class ReleaseStats:
    """Counters for tests and metrics."""

    releases: int = 0
    requests: int = 0
    last_duration_s: float = 0.0
    total_duration_s: float = 0.0


stats = ReleaseStats()
#: Hooks called with the seconds each release took (metrics, diagnostics).
after_release: list[Callable[[float], None]] = []


def release_memory() -> float:
    """Collect garbage and trim the C heap now. Returns the seconds it took."""
    started = time.perf_counter()
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    duration = time.perf_counter() - started
    stats.releases += 1
    stats.last_duration_s = duration
    stats.total_duration_s += duration
    log.debug(
        "Released memory to the OS in %.1f ms (malloc_trim=%s)", duration * 1e3, _MALLOC_TRIM is not None
    )
    for hook in list(after_release):
        hook(duration)
    return duration


class _Scheduler:
    """Coalesces release requests onto one event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False
        self._last_release = 0.0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loop = loop
            self._pending = False

    def _target_loop(self) -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop
            return loop if loop is not None and loop.is_running() else None

    def request(self, delay_ms: int, followup_ms: int, min_interval_ms: int) -> None:
        stats.requests += 1
        loop = self._target_loop()
        if loop is None:
            release_memory()
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
            wait = max(delay_ms / 1000, self._last_release + min_interval_ms / 1000 - time.monotonic())
        loop.call_soon_threadsafe(loop.call_later, wait, self._run, loop, followup_ms)

    def _run(self, loop: asyncio.AbstractEventLoop, followup_ms: int) -> None:
        with self._lock:
            self._pending = followup_ms > 0
            self._last_release = time.monotonic()
        release_memory()
        if followup_ms > 0:
            loop.call_later(followup_ms / 1000, self._run, loop, 0)


_scheduler = _Scheduler()


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Send releases requested from threads without a running loop to ``loop`` (the server's)."""
    _scheduler.bind(loop)


def schedule_release(delay_ms: int, followup_ms: int = 0, min_interval_ms: int = 0) -> None:
    """Ask for a release ``delay_ms`` from now (and one more ``followup_ms`` after it).

    Requests made while one is pending share it. A release never starts sooner than
    ``min_interval_ms`` after the previous one. The follow-up catches documents that stay reachable
    a little longer: a removed periodic callback's cancelled timer keeps its wrapper (and through it
    the Document) on the event loop until the timer's due time.
    """
    _scheduler.request(delay_ms, followup_ms, min_interval_ms)


def trim_supported() -> bool:
    """Whether this platform's C library has ``malloc_trim``."""
    return _MALLOC_TRIM is not None
