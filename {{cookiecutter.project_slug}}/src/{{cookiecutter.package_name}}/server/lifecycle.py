"""The server and session lifecycle, wired into Bokeh by ``app/app_hooks.py``.

Bokeh calls these through the directory app's hooks under every way of starting the server
(``bokeh serve``, ``python -m <package> serve``, an in-process ``Server`` in tests), so the
guarantees hold everywhere:

* ``on_server_loaded``: load what the app declared ``@per_process``, once per process.
* ``on_session_created`` (a worker thread): attach ``session_context.locals`` and keep
  ``main.py`` whole for the cleanups.
* ``on_session_destroyed`` (the event loop): run every cleanup of the session once, in isolation,
  then empty its locals and schedule one batched memory release for the discards of this round.
* ``on_server_unloaded``: drop the per-process data.

The parameter names are the ones Bokeh checks (``server_context``, ``session_context``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from typing import Any

from tornado.ioloop import IOLoop

from . import memory, metrics, patches, per_process
from .cleanup import keep_modules_for_cleanups, run_session_cleanups
from .session_locals import attach_locals, context_document, locals_of_context
from .settings import PACKAGE, get_settings

log = logging.getLogger(__name__)
memory.after_release.append(metrics.count_release)


def on_server_loaded(server_context: Any) -> None:
    """Load the per-process data before the first session; bind memory releases to this loop."""
    with contextlib.suppress(RuntimeError):
        memory.bind_loop(IOLoop.current().asyncio_loop)  # type: ignore[attr-defined]
    if get_settings().release_memory:
        memory.watch_collections()
        memory.enable_step_trims()
        memory.use_mmap_for_large_blocks()
        memory.limit_arenas()
    package_logger = logging.getLogger(PACKAGE)
    if package_logger.level == logging.NOTSET:  # plain `bokeh serve` sets only Bokeh's own logger
        package_logger.setLevel(get_settings().log_level.upper())
    patches.statuses()  # decide which pieces are on (and warn) now, not at the first session
    per_process.load_all()


def on_server_unloaded(server_context: Any) -> None:
    """Release the per-process data when the server stops."""
    per_process.drop_all()


_longest_periodic_callback_ms = 0


def _after_main_ran(context_ref: weakref.ReferenceType[Any]) -> None:
    """Next tick after ``main.py`` ran: note the longest periodic callback period (its cancelled
    timer outlives the session by up to that, so the memory release follows up after it)."""
    global _longest_periodic_callback_ms
    session_context = context_ref()
    if session_context is None:
        return
    document = context_document(session_context)
    periods = [getattr(callback, "period", 0) or 0 for callback in document.session_callbacks]
    _longest_periodic_callback_ms = max([_longest_periodic_callback_ms, *periods])


def on_session_created(session_context: Any) -> None:
    """Attach the session's locals store. Runs in a worker thread, before ``main.py``."""
    store = attach_locals(session_context)
    keep_modules_for_cleanups(session_context, store)
    metrics.sessions_created.inc()
    context_ref = weakref.ref(session_context)
    context_document(session_context).add_next_tick_callback(lambda: _after_main_ran(context_ref))


def on_session_destroyed(session_context: Any) -> None:
    """Run the session's cleanups, empty its locals, and schedule a batched memory release."""
    try:
        store = locals_of_context(session_context)
    except RuntimeError:
        log.error("Session %s was destroyed without a locals store", session_context.id)
        return
    started = time.perf_counter()
    try:
        failures = run_session_cleanups(session_context)
    finally:
        store.close()
        metrics.sessions_destroyed.inc()
    duration = time.perf_counter() - started
    metrics.cleanup_seconds.observe(duration)
    if failures:
        metrics.cleanup_failures.inc(failures)
        log.warning("Session %s ended with %d failed cleanup(s)", session_context.id, failures)
    else:
        log.info("Session %s cleaned up in %.1f ms", session_context.id, duration * 1e3)
    settings = get_settings()
    if settings.release_memory:
        followup_ms = (
            _longest_periodic_callback_ms + settings.release_delay_ms if _longest_periodic_callback_ms else 0
        )
        memory.schedule_release(
            settings.release_delay_ms, followup_ms, min_interval_ms=settings.gc_interval_ms
        )
