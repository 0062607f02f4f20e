"""Give freed memory back to the operating system, batched with session discards.

Freeing per-session arrays is not enough: glibc raises its mmap threshold after the first large
free, so later blocks come from the heap and stay mapped after ``free`` (BOKEH_FACTS: +202 MB kept
of 202 MB). ``malloc_trim(0)`` returns those pages. The server calls ``schedule_release`` once per
discarded session; the release itself runs once per batch, ``release_delay_ms`` after the first
discard of the batch, on the event loop, plus one follow-up once the longest periodic
callback period has passed. On non-glibc platforms only ``gc.collect()`` runs.
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
import weakref
from dataclasses import dataclass

log = logging.getLogger(__name__)


def _load_malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


@dataclass
class ReleaseStats:
    """Counters for tests and metrics."""

    releases: int = 0
    requests: int = 0
    last_duration_s: float = 0.0


stats = ReleaseStats()
_loops_with_pending_release: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_pending_lock = threading.Lock()


def release_memory() -> float:
    """Collect garbage and trim the C heap now. Returns the seconds it took."""
    started = time.perf_counter()
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    duration = time.perf_counter() - started
    stats.releases += 1
    stats.last_duration_s = duration
    log.debug(
        "Released memory to the OS in %.1f ms (malloc_trim=%s)", duration * 1e3, _MALLOC_TRIM is not None
    )
    return duration


def _run_pending_release(loop: asyncio.AbstractEventLoop, followup_ms: int) -> None:
    if followup_ms > 0:
        release_memory()
        loop.call_later(followup_ms / 1000, _run_pending_release, loop, 0)
        return
    with _pending_lock:
        _loops_with_pending_release.discard(loop)
    release_memory()


def schedule_release(delay_ms: int, followup_ms: int = 0) -> None:
    """Ask for a release ``delay_ms`` from now, and one more ``followup_ms`` after it.

    Requests made before the batch finished share it. The follow-up catches documents that stay
    reachable a little longer: a removed periodic callback's cancelled timer keeps its wrapper
    (and through it the Document) on the event loop until the timer's due time.
    """
    stats.requests += 1
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        release_memory()
        return
    with _pending_lock:
        if loop in _loops_with_pending_release:
            return
        _loops_with_pending_release.add(loop)
    loop.call_later(delay_ms / 1000, _run_pending_release, loop, followup_ms)


def trim_supported() -> bool:
    """Whether this platform's C library has ``malloc_trim``."""
    return _MALLOC_TRIM is not None
