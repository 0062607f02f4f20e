"""Prometheus metrics of the server, in a registry of their own (served at ``/metrics``).

Counters are updated by the lifecycle hooks, so they count under any launcher; gauges that need the
running server (live sessions, readiness) are read when scraped, through ``bind_server``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
rss = Gauge("bokeh_process_rss_bytes", "Resident set size of this server process", registry=registry)
soft_limit = Gauge("bokeh_memory_soft_limit_bytes", "Memory guard soft limit", registry=registry)

# psutil.Process() per read: after a --num-procs fork each child reports its own pid.
rss.set_function(lambda: psutil.Process().memory_info().rss)


def bind_server(live_sessions: Callable[[], int], is_ready: Callable[[], bool]) -> None:
    """Read the live-session count and readiness from the running server at scrape time."""
    sessions_live.set_function(live_sessions)
    ready.set_function(lambda: 1.0 if is_ready() else 0.0)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return generate_latest(registry), CONTENT_TYPE_LATEST


def count_release(duration: Any) -> None:
    """Hook for ``memory.after_release``."""
    memory_releases.inc()
