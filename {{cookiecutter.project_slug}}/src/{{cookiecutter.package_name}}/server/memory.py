"""Give freed memory back to the operating system, batched with session discards.

Freeing per-session arrays is not enough: glibc raises its mmap threshold after the first large
free, so later blocks come from the heap and stay mapped after ``free`` (BOKEH_FACTS: +202 MB kept
of 202 MB). ``malloc_trim(0)`` returns those pages. Every discarded session asks for a release; the
requests of one batch share a single ``gc.collect()`` + ``malloc_trim(0)`` on the server's event
loop (in steps, ``release_in_steps``), run ``delay_ms`` after the first request and never more
often than ``min_interval_ms``, plus one follow-up once the longest periodic-callback period has
passed; while sessions are being discarded in slices, releases wait for the last slice
(``releases_held``). Requests may come from worker threads (Bokeh 3.10 destroys documents in its
executor); they are handed to the bound loop. On non-glibc platforms only the collection runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)
_process: psutil.Process | None = None


def process_rss() -> int:
    """This process's resident set size in bytes (after a ``--num-procs`` fork, the child's own)."""
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
    return int(_process.memory_info().rss)


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


def _mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt(parameter, value)``; False where this is not glibc or it refused."""
    if _MALLOC_TRIM is None:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)))
    except (OSError, AttributeError):
        return False


#: glibc ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (malloc.h).
_M_MMAP_THRESHOLD = -3
#: Blocks at least this large get their own mapping, which ``free`` returns to the OS at once.
MMAP_THRESHOLD_BYTES = 1 << 20


def use_mmap_for_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold so large per-session blocks are returned to the OS on free.

    glibc raises its mmap threshold to the size of the largest block freed so far (up to 32 MB);
    after that, per-session arrays come from the heap, where live small objects allocated in
    between can keep their pages resident even after ``malloc_trim``. A fixed threshold (what
    ``MALLOC_MMAP_THRESHOLD_`` does from the environment) keeps every block of ``threshold`` bytes
    or more in its own mapping. Returns False where this is not glibc.
    """
    return _mallopt(_M_MMAP_THRESHOLD, threshold)


#: glibc ``mallopt`` parameter number of ``M_ARENA_MAX`` (malloc.h).
_M_ARENA_MAX = -8
#: Arenas for the whole process: the event loop's and one shared by Bokeh's worker threads.
MAX_ARENAS = 2


def limit_arenas(max_arenas: int = MAX_ARENAS) -> bool:
    """Cap glibc's malloc arenas, unless ``MALLOC_ARENA_MAX`` is set in the environment.

    glibc gives threads their own arenas (up to 8 per core). Bokeh 3.10 builds each session's
    document in an executor thread and frees it on the event loop, so small blocks are scattered
    over several arenas that ``malloc_trim`` can only partly return: the soak test measured about
    twice the RSS creep per session with glibc's default as with one arena. Call it before worker
    threads start (``on_server_loaded``): threads that already have an arena keep it. Returns
    False where this is not glibc or the environment decides.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return _mallopt(_M_ARENA_MAX, max_arenas)


@dataclass
class ReleaseStats:
    """Counters for tests and metrics."""

    releases: int = 0
    requests: int = 0
    last_duration_s: float = 0.0
    total_duration_s: float = 0.0
    trims_after_gc: int = 0


stats = ReleaseStats()
#: Hooks called with the seconds each release took (metrics, diagnostics).
after_release: list[Callable[[float], None]] = []


_releasing = threading.local()


#: While sessions are discarded in slices, the C heap is trimmed after every this many: one trim
#: after 1,000 demo sessions walked it for 9 ms (2,000: 45 ms), one after each 50 for at most 3 ms.
TRIM_EVERY_DISCARDS = 50
_step_trims = False


def enable_step_trims() -> None:
    """Let ``trim_step`` trim (``lifecycle`` calls it when memory is to be given back)."""
    global _step_trims
    _step_trims = True


def trim_step(discarded_since_last: int) -> bool:
    """Between two slices of discards: trim the C heap if ``TRIM_EVERY_DISCARDS`` sessions went
    since the last step trim, so the release after the batch is left with little to trim."""
    if not _step_trims or _MALLOC_TRIM is None or discarded_since_last < TRIM_EVERY_DISCARDS:
        return False
    _MALLOC_TRIM(0)
    return True


def _every_generation_at_once(force_full: bool = False) -> tuple[Callable[[], int], ...]:
    return (gc.collect,)


#: The collections of a release, in the parts a release run in steps (``release_in_steps``) gives
#: a turn of the event loop each: every generation at once, unless ``full_collections`` schedules
#: the full ones (then the young generations, and the old one when due or ``force_full``).
collection_steps: Callable[[bool], tuple[Callable[[], int], ...]] = _every_generation_at_once


def _collecting(collection: Callable[[], int]) -> int:
    """Run one of the release's collections, marked as such for ``_after_collection``."""
    _releasing.active = True
    try:
        return collection()
    finally:
        _releasing.active = False


def _trim_heap() -> int:
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    return 0


def _released(duration: float) -> None:
    stats.releases += 1
    stats.last_duration_s = duration
    stats.total_duration_s += duration
    log.debug(
        "Released memory to the OS in %.1f ms (malloc_trim=%s)", duration * 1e3, _MALLOC_TRIM is not None
    )
    for hook in list(after_release):
        hook(duration)


def release_memory(force_full: bool = False) -> float:
    """Collect garbage and trim the C heap now. Returns the seconds it took."""
    started = time.perf_counter()
    for step in collection_steps(force_full):
        _collecting(step)
    _trim_heap()
    duration = time.perf_counter() - started
    _released(duration)
    return duration


#: The pause between two parts of a scheduled release (s): the loop polls its sockets in it.
STEP_PAUSE_S = 0.001


def release_in_steps(loop: asyncio.AbstractEventLoop) -> None:
    """``release_memory`` on ``loop``, in parts (the young collection, the old one when due, the
    trim, then the hooks) ``STEP_PAUSE_S`` apart: requests that arrived during a part are served
    before the next one (a part merely queued with ``call_soon`` would run ahead of them). After
    2,000 discarded sessions the parts took 1, 4 and 2 ms; in one callback, 8 ms (Bokeh 3.10.2)."""
    steps = [*(functools.partial(_collecting, step) for step in collection_steps(False)), _trim_heap]
    _run_release_step(loop, steps, 0, 0.0)


def _run_release_step(
    loop: asyncio.AbstractEventLoop, steps: list[Callable[[], int]], index: int, busy_s: float
) -> None:
    """Part ``index`` of ``release_in_steps``, then the next one scheduled (a function of the module,
    not a closure that schedules itself: that closure's cycle was left to each full collection)."""
    started = time.perf_counter()
    steps[index]()
    busy_s += time.perf_counter() - started
    if index + 1 < len(steps):
        loop.call_later(STEP_PAUSE_S, _run_release_step, loop, steps, index + 1, busy_s)
    else:
        loop.call_later(STEP_PAUSE_S, _released, busy_s)


class _Scheduler:
    """Coalesces release requests onto one event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False
        self._last_release = 0.0
        self._trim_pending = False
        self._last_trim = 0.0
        self._followup_due = 0.0
        self._followup_scheduled = False
        self._holds = 0
        self._deferred = False
        self._epoch = 0  # holds taken on an earlier loop (its tasks never finished) do not count

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._loop = loop
            self._pending = False
            self._followup_due = 0.0
            self._followup_scheduled = False
            self._epoch += 1
            self._holds = 0
            self._deferred = False

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
        now = time.monotonic()
        with self._lock:
            if followup_ms > 0:  # the follow-up comes after the *last* request's timers are due
                self._followup_due = max(self._followup_due, now + (delay_ms + followup_ms) / 1000)
            if self._pending:
                return
            self._pending = True
            wait = max(delay_ms / 1000, self._last_release + min_interval_ms / 1000 - now)
        loop.call_soon_threadsafe(loop.call_later, wait, self._run, loop)

    def request_trim(self, min_interval_ms: int) -> None:
        """Trim (no collection) soon on the bound loop, at most once per ``min_interval_ms``."""
        loop = self._target_loop()
        if loop is None or _MALLOC_TRIM is None:
            return
        with self._lock:
            if self._pending or self._trim_pending:
                return
            self._trim_pending = True
            wait = max(0.0, self._last_trim + min_interval_ms / 1000 - time.monotonic())
        loop.call_soon_threadsafe(loop.call_later, wait, self._trim)

    def _trim(self) -> None:
        with self._lock:
            self._trim_pending = False
            self._last_trim = time.monotonic()
        if _MALLOC_TRIM is not None:
            _MALLOC_TRIM(0)
        stats.trims_after_gc += 1

    def hold(self) -> int:
        with self._lock:
            self._holds += 1
            return self._epoch

    def resume(self, epoch: int) -> None:
        with self._lock:
            if epoch != self._epoch:
                return
            self._holds -= 1
            run = self._holds == 0 and self._deferred
            self._deferred = False if run else self._deferred
        loop = self._target_loop()
        if run and loop is not None:
            loop.call_soon(self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._holds:  # discards are under way: run once they are done (``resume``)
                self._deferred = True
                return
            self._pending = False
            self._last_release = time.monotonic()
            followup_in = self._followup_due - self._last_release
            if followup_in > 0 and not self._followup_scheduled:
                self._followup_scheduled = True
                loop.call_later(followup_in, self._followup, loop)
        release_in_steps(loop)

    def _followup(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._followup_scheduled = False
            remaining = self._followup_due - time.monotonic()
            if self._holds:
                remaining = max(remaining, _HELD_FOLLOWUP_RETRY_S)
            if remaining > 0.001:  # a later request moved the follow-up: wait for it
                self._followup_scheduled = True
                loop.call_later(remaining, self._followup, loop)
                return
            self._followup_due = 0.0
        release_in_steps(loop)


#: How long a follow-up release that found discards under way waits before it looks again (s).
_HELD_FOLLOWUP_RETRY_S = 0.1
_scheduler = _Scheduler()


@contextlib.contextmanager
def releases_held() -> Iterator[None]:
    """Hold back scheduled releases while the block runs (on the event loop), then run one if due.

    A collection walks every live object. Sessions discarded in slices are still alive, most of
    them, while the first slices are done; a release in between would walk them all and stall the
    loop for as long. Held, the one release runs after the last discard and walks what is left.
    """
    resume = hold_releases()
    try:
        yield
    finally:
        resume()


def hold_releases() -> Callable[[], None]:
    """Hold back scheduled releases until the returned function is called (for work, such as a
    task, that outlives a block); calling it again does nothing."""
    epoch = _scheduler.hold()
    resumed = False

    def resume() -> None:
        nonlocal resumed
        if not resumed:
            resumed = True
            _scheduler.resume(epoch)

    return resume


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Send releases requested from threads without a running loop to ``loop`` (the server's)."""
    _scheduler.bind(loop)


def schedule_release(delay_ms: int, followup_ms: int = 0, min_interval_ms: int = 0) -> None:
    """Ask for a release ``delay_ms`` from now, and a follow-up ``followup_ms`` after the last request.

    Requests made while one is pending share it. A release never starts sooner than
    ``min_interval_ms`` after the previous one. The follow-up, pushed back by every later request,
    catches documents that stay reachable a little longer: a removed periodic callback's cancelled
    timer keeps its wrapper (and through it the Document) on the event loop until its due time.
    """
    _scheduler.request(delay_ms, followup_ms, min_interval_ms)


#: Objects a collection must free before the heap is trimmed after it.
TRIM_AFTER_COLLECTED = 1000


def _after_collection(phase: str, info: dict[str, int]) -> None:
    """``gc.callbacks`` hook: trim after Python's own full collections that freed much.

    Session data in reference cycles is freed by whichever collection finds it first, often an
    automatic one between our batched releases; without a trim its pages would stay mapped.
    """
    if phase != "stop" or info.get("generation") != 2 or getattr(_releasing, "active", False):
        return
    if info.get("collected", 0) >= TRIM_AFTER_COLLECTED:
        _scheduler.request_trim(min_interval_ms=1000)


def watch_collections() -> None:
    """Install the ``gc.callbacks`` hook once."""
    if _after_collection not in gc.callbacks:
        gc.callbacks.append(_after_collection)


def trim_supported() -> bool:
    """Whether this platform's C library has ``malloc_trim``."""
    return _MALLOC_TRIM is not None
