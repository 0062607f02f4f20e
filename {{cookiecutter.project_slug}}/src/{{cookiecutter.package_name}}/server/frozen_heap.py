"""Keep long-lived objects out of full garbage collections: a full collection walks every object.

CPython's full collection (generation 2) walks every tracked object, and it runs by itself
whenever a quarter of the heap's worth of objects has survived into the old generation. A Bokeh
session is about 1,400 such objects, so with 1,000 live sessions every full collection walks 1.4
million objects: measured on 2 cores, Bokeh 3.10, 1,000 idle sessions of the demo app, one full
collection of 0.9-1.6 s every 6-10 s, whether or not anything expires. ``gc.freeze()`` moves every
tracked object into a permanent generation that no collection walks, in constant time.

* ``freeze_survivors`` (a timer on the event loop, once per ``gc_interval_ms``, and after each
  batched memory release): a young collection (``gc.collect(1)``, only what was allocated since the
  last one), then ``gc.freeze()``: what survived is frozen, so full collections walk only objects
  made since. A frozen object that dies is still freed at once by reference counting.
* A frozen object that dies in a reference cycle is not freed until ``reclaim`` (unfreeze, one
  full collection, freeze again: a full walk, as CPython's own). ``stall_free`` breaks the cycles
  of a discarded session that hold its document (and most others: about 10-30 objects of a
  discarded demo session are left in cycles, none holding its document), so this is rare. A
  release reclaims when a document discarded before the previous release is still alive (its
  data must not wait), and when the garbage estimated in the frozen heap reaches what was alive
  after the last full collection (``RECLAIM_SHARE``: discards since the last reclaim times the
  objects one leaves, which each reclaim measures). Reclaims take at most 1/``RECLAIM_TIME_FACTOR``
  of the time (after a reclaim of d seconds the next waits d times that factor). A document
  still alive after a reclaim is a real leak (``stall_free`` logs its module's referrers) and no
  longer asks for one. The memory guard reclaims whenever it sheds sessions.

Only ``stall_free.install`` (the project's server, the test suite) turns it on; bare ``bokeh
serve`` of the app keeps CPython's behaviour.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from typing import Any

from tornado.ioloop import IOLoop, PeriodicCallback

log = logging.getLogger(__name__)

#: Reclaim (one full walk) once the garbage estimated in the frozen heap is this share of what was
#: alive after the last full collection (``gc.get_freeze_count`` walks the frozen list itself: 21 ms
#: for 160,000 objects, so the hot path never calls it).
RECLAIM_SHARE = 1.0
#: Objects a discarded session leaves in reference cycles, until a reclaim has measured it
#: (demo app: 10-30, depending on the Bokeh version).
GARBAGE_PER_DISCARD = 30.0
#: After a reclaim of d seconds, the next one waits at least d times this (reclaims <= 5 % of the time).
RECLAIM_TIME_FACTOR = 20

_lock = threading.Lock()
_enabled = False
_baseline = 0
_next_reclaim_at = 0.0
_discards = 0  # since the last reclaim
_garbage_per_discard = GARBAGE_PER_DISCARD
#: Reclaims done by this process (tests, diagnostics).
reclaims = 0
_timers: dict[int, PeriodicCallback] = {}
# Weak references to documents discarded since the last release, and before it.
_discarded: list[weakref.ref[Any]] = []
_previous: list[weakref.ref[Any]] = []


def enable() -> None:
    """Turn freezing on for this process (``stall_free.install``)."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def freeze_all() -> int:
    """One full collection, then freeze everything alive; the new baseline. Returns the frozen count."""
    global _baseline
    with _lock:
        gc.collect()
        gc.freeze()
        _baseline = gc.get_freeze_count()
        return _baseline


def watch_discarded(document: Any) -> None:
    """Note a document being discarded: if a cycle keeps it frozen, a release reclaims it."""
    global _discards
    if _enabled:
        with _lock:
            _discarded.append(weakref.ref(document))
            _discards += 1


def freeze_survivors() -> None:
    """Collect the young generations, then freeze what survived."""
    if not _enabled:
        return
    with _lock:
        gc.collect(1)
        gc.freeze()


def _reclaim_due() -> str:
    """After a release, why a reclaim is due ("" if not): a document discarded before the previous
    release is alive, or the garbage estimated in the frozen heap (discards since the last reclaim
    times what one leaves, as the last reclaim measured) is ``RECLAIM_SHARE`` of what was alive
    after the last full collection; and the time budget allows."""
    global _discarded, _previous
    with _lock:
        held = [ref for ref in _previous if ref() is not None]
        _previous, _discarded = _discarded, []
        garbage = _discards * _garbage_per_discard
        grown = garbage > RECLAIM_SHARE * _baseline
    if not (held or grown):
        return ""
    if time.monotonic() < _next_reclaim_at:
        with _lock:
            _previous.extend(held)  # still due: ask again at the next release
        return ""
    if held:
        return f"{len(held)} discarded document(s) held"
    return f"{_discards} discards since the last reclaim, about {garbage:.0f} objects in cycles"


def reclaim(reason: str = "asked") -> int:
    """Unfreeze, collect everything once, freeze again. Returns how many objects were collected."""
    global _baseline, _next_reclaim_at, reclaims, _discards, _garbage_per_discard
    if not _enabled:
        return 0
    with _lock:
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        _baseline = gc.get_freeze_count()
        duration = time.perf_counter() - started
        _next_reclaim_at = time.monotonic() + RECLAIM_TIME_FACTOR * duration
        reclaims += 1
        if _discards >= 100:  # enough to measure what a discard leaves
            _garbage_per_discard = max(collected / _discards, 1.0)
        _discards = 0
    log.info(
        "Reclaimed %d objects from the frozen heap (%d left) in %.0f ms: %s",
        collected, _baseline, duration * 1e3, reason,
    )  # fmt: skip
    return collected


def after_release(duration: float) -> None:
    """``memory.after_release`` hook: freeze what the release left alive; reclaim if due."""
    freeze_survivors()
    if reason := _reclaim_due():
        reclaim(reason)


def start(loop: IOLoop, interval_ms: int) -> None:
    """Freeze survivors every ``interval_ms`` on ``loop`` (the server's), until ``stop``."""
    if not _enabled or id(loop) in _timers:
        return
    timer = PeriodicCallback(freeze_survivors, interval_ms)
    _timers[id(loop)] = timer
    loop.add_callback(timer.start)


def stop(loop: Any) -> None:
    timer = _timers.pop(id(loop), None)
    if timer is not None:
        timer.stop()
