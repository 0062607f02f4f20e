"""Full garbage collections on the server's schedule, and never through the startup heap.

CPython runs a full collection (generation 2) by itself whenever the objects that survived into
the old generation since the last one reach a quarter of it, and a full collection walks every
tracked object. A Bokeh session is about 1,400 such objects, so on a server that holds 1,000
idle sessions one full collection walks 1.4 million objects: measured on 2 cores, Bokeh 3.10,
0.9-1.6 s of stalled event loop every 6-10 s, whether or not anything expires.

* ``freeze_startup`` (once the server has loaded): one full collection, then ``gc.freeze()``:
  imports, Bokeh and the shared data (about 120,000 objects) move to the permanent generation,
  which no collection walks. They live as long as the process. Automatic full collections are
  turned off from then on; the young generations (0 and 1) are still collected as CPython does,
  so short-lived cycles are freed as before.
* ``collect`` is the collection of the batched memory release (``memory.release_memory``): the
  young generations, then a full collection when one is due. A full collection walks the old
  generation only: the live sessions and what died in reference cycles there. ``stall_free``
  breaks the cycles a discarded document is left in, but a discarded demo session still leaves
  about 70 objects in cycles (its websocket's Tornado and Bokeh handler objects, a cancelled task),
  about 4.7 KB. A full collection is due when
  - a document discarded before the previous release is still alive (its data must not wait), or
  - the sessions discarded since the last one have paid for it: its expected CPU time spread
    over them is at most ``COST_PER_DISCARD_S``. A full collection walks the live sessions, so it
    is expected to cost what the last one cost per live session (plus one), times the sessions
    live now: one measured with 2 sessions live is no estimate for one with 2,000 (measured:
    1 ms, then 2.6 s of stalled loop when 17 discards had "paid" for it). CPU time of this thread,
    not wall time: on a busy machine the same collection took 5-56 ms of wall time (soak, 50
    clients, 2 cores), and a slow reading put the next one off for hundreds of discards while
    their garbage waited (a soak failed in CI at +2 KB per session). With 50 live sessions that
    is one full collection every few dozen discards; with 1,000 live sessions (a walk of 1-1.6 s,
    estimated, not measured) one per 1,000-1,600 discards, with 5-8 MB of such garbage waiting;
  - and in any case no more than 1/``TIME_FACTOR`` of the time (after one of d seconds the next
    waits d times that factor).
  A document still alive after a full collection is a real leak (``stall_free`` logs its module's
  referrers) and no longer asks for one. The memory guard asks for one whenever it sheds sessions.

Only ``stall_free.install`` (the project's server, the test suite) turns this on; bare ``bokeh
serve`` of the app keeps CPython's behaviour.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import memory

log = logging.getLogger(__name__)

#: The CPU time of full collections each discarded session may carry: one is due once the discards
#: since the last one reach its CPU time divided by this. 1 ms is under 1 % of what opening a demo
#: session costs (the throughput benchmark opens about 7 per second on 2 cores).
COST_PER_DISCARD_S = 1e-3
#: After a full collection of d seconds, the next waits at least d times this (<= 5 % of the time).
TIME_FACTOR = 20
#: Generation 2's threshold while automatic full collections are off: out of reach (it counts
#: young collections).
_NEVER = 2**31 - 1

_lock = threading.Lock()
_enabled = False
_automatic_threshold: int | None = None  # generation 2's threshold before ``freeze_startup``
_cost_per_session_s = 0.0  # CPU time of the last full collection per live session (plus one)
_live_sessions: Callable[[], int] = int  # no server bound: 0 sessions
_next_allowed_at = 0.0
_discards = 0  # since the last full collection
#: Full collections run by this module in this process (tests, diagnostics).
full_collections = 0
# Weak references to documents discarded since the last release, and before it. Kept in lists
# that go at the release: dropping each entry as its document died (a WeakValueDictionary, tried)
# left the free lists full of small tuples that pinned hundreds of memory arenas, and the full
# collection after 2,000 discards, which empties the free lists, took 13-22 ms instead of 4.
_discarded: list[weakref.ref[Any]] = []
_previous: list[weakref.ref[Any]] = []


def enable() -> None:
    """Turn scheduled full collections on for this process (``stall_free.install``)."""
    global _enabled
    _enabled = True
    memory.collection_steps = steps


def enabled() -> bool:
    return _enabled


def freeze_startup() -> int:
    """One full collection, then freeze everything alive; turn automatic full collections off
    where this module runs them instead (``enable``: not where ``stall_free`` is off).

    Call once the server has loaded, before it serves. Returns how many objects were frozen.
    """
    global _automatic_threshold
    with _lock:
        gc.collect()
        gc.freeze()
        if _enabled and _automatic_threshold is None:
            young, middle, _automatic_threshold = gc.get_threshold()
            gc.set_threshold(young, middle, _NEVER)
        return gc.get_freeze_count()


def restore_automatic() -> None:
    """Give generation 2 its automatic threshold back (tests; a process that stops serving)."""
    global _automatic_threshold
    with _lock:
        if _automatic_threshold is not None:
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, _automatic_threshold)
            _automatic_threshold = None


def bind_live_sessions(live_sessions: Callable[[], int]) -> None:
    """How many sessions the server holds now (``runtime.attach``): what a full collection walks."""
    global _live_sessions
    _live_sessions = live_sessions


def expected_cost_s() -> float:
    """The CPU time a full collection is expected to take now (see the module docstring)."""
    return _cost_per_session_s * (_live_sessions() + 1)


def watch_discarded(document: Any) -> None:
    """Note a document being discarded: if a cycle keeps it, a release collects in full."""
    global _discards
    if _enabled:
        with _lock:
            _discarded.append(weakref.ref(document))
            _discards += 1


def _full_collection_due() -> str:
    """At a release, why a full collection is due ("" if not): see the module docstring."""
    global _discarded, _previous
    expected = expected_cost_s()
    with _lock:
        held = [ref for ref in _previous if ref() is not None]
        _previous, _discarded = _discarded, []
        paid = _discards > 0 and _discards * COST_PER_DISCARD_S >= expected
    if not (held or paid):
        return ""
    if time.monotonic() < _next_allowed_at:
        with _lock:
            _previous.extend(held)  # still due: ask again at the next release
        return ""
    if held:
        return f"{len(held)} discarded document(s) held"
    return f"{_discards} discards since the last full collection"


def collect_in_full(reason: str = "asked") -> int:
    """Collect every generation but the permanent one now. Returns how many objects were collected."""
    global _cost_per_session_s, _next_allowed_at, full_collections, _discards
    live = _live_sessions()
    with _lock:
        started, cpu_started = time.perf_counter(), time.thread_time()
        collected = gc.collect()
        duration, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
        _cost_per_session_s = cpu / (live + 1)
        _next_allowed_at = time.monotonic() + TIME_FACTOR * duration
        full_collections += 1
        discards, _discards = _discards, 0
    log.info(
        "Full collection: %d objects collected in %.0f ms (%.0f ms CPU; %d sessions live, %d discards "
        "since the last): %s",
        collected, duration * 1e3, cpu * 1e3, live, discards, reason,
    )  # fmt: skip
    return collected


def collect_in_full_if_allowed(reason: str) -> bool:
    """A full collection now unless the time budget forbids it. Returns whether it ran."""
    if time.monotonic() < _next_allowed_at:
        return False
    collect_in_full(reason)
    return True


def collect_young() -> int:
    """The young generations (0 and 1)."""
    return gc.collect(1)


def collect_old_if_due() -> int:
    """A full collection if one is due now (see the module docstring), else nothing."""
    reason = _full_collection_due()
    return collect_in_full(reason) if reason else 0


def steps(force_full: bool = False) -> tuple[Callable[[], int], ...]:
    """``memory.collection_steps``: the young generations, then the old one if due (or forced)."""
    if force_full:
        return collect_young, functools.partial(collect_in_full, "forced")
    return collect_young, collect_old_if_due


def collect(force_full: bool = False) -> int:
    """The steps in one go: the young generations, then the old one if due (or forced)."""
    return sum(step() for step in steps(force_full))
