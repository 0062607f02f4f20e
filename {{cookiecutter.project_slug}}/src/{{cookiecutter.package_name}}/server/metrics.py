"""Prometheus metrics of the server, in a registry of their own (served at ``/metrics``).

Counters are updated by the lifecycle hooks, so they count under any launcher; gauges that need the
running server (live sessions, readiness) are read when scraped, through ``bind_server``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from . import patches
from .memory import process_rss

try:  # prometheus_client >= 0.17: no *_created series, they only add noise here
    from prometheus_client import disable_created_metrics

    disable_created_metrics()
except ImportError:  # pragma: no cover
    pass

registry = CollectorRegistry(auto_describe=True)

sessions_created = Counter("bokeh_sessions_created", "Sessions created", registry=registry)
sessions_destroyed = Counter("bokeh_sessions_destroyed", "Sessions destroyed (discarded)", registry=registry)
cleanup_failures = Counter(
    "bokeh_session_cleanup_failures", "Session cleanups that raised", registry=registry
)
cleanup_seconds = Histogram(
    "bokeh_session_cleanup_seconds",
    "Time to run one session's cleanups",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
    registry=registry,
)
guard_evictions = Counter(
    "bokeh_memory_guard_evictions", "Idle sessions expired by the memory guard", registry=registry
)
memory_releases = Counter("bokeh_memory_releases", "Batched gc.collect + malloc_trim runs", registry=registry)
sessions_live = Gauge("bokeh_sessions_live", "Sessions the server holds now", registry=registry)
ready = Gauge("bokeh_ready", "1 when /readyz answers 200", registry=registry)
loop_lag = Gauge(
    "bokeh_event_loop_lag_seconds", "Largest event-loop lag seen in the last window", registry=registry
)
max_loop_lag = Gauge(
    "bokeh_event_loop_lag_max_seconds", "Largest event-loop lag since start", registry=registry
)
sessions_refused = Counter(
    "bokeh_sessions_refused",
    "New sessions refused by admission control (kind: page, websocket, other)",
    ["kind", "reason"],
    registry=registry,
)
unconnected_discarded = Counter(
    "bokeh_sessions_unconnected_discarded",
    "Page sessions discarded because no websocket claimed them within the grace",
    registry=registry,
)
for _kind in ("page", "websocket"):  # show the series at 0 before the first refusal
    for _reason in ("memory", "max_sessions", "measuring"):
        sessions_refused.labels(kind=_kind, reason=_reason)
admission_limit = Gauge(
    "bokeh_admission_limit_bytes", "RSS above which no new session is admitted", registry=registry
)
admission_pending = Gauge("bokeh_sessions_starting", "Sessions admitted and being built", registry=registry)
session_cost = Gauge(
    "bokeh_session_cost_bytes",
    "Measured memory one more session is expected to take (0: not yet)",
    registry=registry,
)
guard_recovery_seconds = Histogram(
    "bokeh_memory_guard_recovery_seconds",
    "From shedding idle sessions over the soft limit to RSS back below it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=registry,
)
rss = Gauge("bokeh_process_rss_bytes", "Resident set size of this server process", registry=registry)
soft_limit = Gauge("bokeh_memory_soft_limit_bytes", "Memory guard soft limit", registry=registry)

runtime_patch_active = Gauge(
    "bokeh_runtime_patch_active",
    "1 when the runtime piece that uses Bokeh internals is on for this Bokeh (server/patches.py)",
    ["patch"],
    registry=registry,
)

rss.set_function(process_rss)
for _name in patches.NAMES:
    runtime_patch_active.labels(patch=_name).set_function(lambda name=_name: float(patches.is_active(name)))


def bind_server(live_sessions: Callable[[], int], is_ready: Callable[[], bool]) -> None:
    """Read the live-session count and readiness from the running server at scrape time."""
    sessions_live.set_function(live_sessions)
    ready.set_function(lambda: 1.0 if is_ready() else 0.0)


def bind_admission(pending: Callable[[], int], cost: Callable[[], int | None], limit_bytes: int) -> None:
    """Read admission control's state at scrape time."""
    admission_pending.set_function(pending)
    session_cost.set_function(lambda: cost() or 0)
    admission_limit.set(limit_bytes)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return generate_latest(registry), CONTENT_TYPE_LATEST


def count_release(duration: Any) -> None:
    """Hook for ``memory.after_release``."""
    memory_releases.inc()
