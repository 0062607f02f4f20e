"""A leak check to point at any Bokeh app: do closed sessions leave memory or objects behind?

It starts the app on a real in-process server with short expiry timings, warms it up, opens
sessions the three ways production does (``bokeh.client`` websockets, plain page GETs, and
websockets dropped by a TCP reset), closes them, waits for Bokeh to expire them, then reports:

* sessions still held by the server;
* documents, session contexts and ``session_context.locals`` values still alive (weak references);
* process RSS: baseline (after warm-up), peak (all sessions open) and after expiry.

The server must free what the sessions held *and* return it to the OS by itself: the check never
calls ``gc.collect`` or ``malloc_trim``, it only waits. Use it from pytest::

    report = check_app_for_leaks("src/mypkg/app")
    assert report.ok, report.summary()
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .polling import wait_until
from .testing import (
    RunningServer,
    open_dropped_session,
    open_http_session,
    open_websocket_session,
    running_server,
)

MB = 2**20


@dataclass
class LeakReport:
    """What a leak check measured, and the problems it found."""

    app: str
    sessions_opened: dict[str, int]
    sessions_left: int
    documents_alive: int
    contexts_alive: int
    locals_values_alive: int
    locals_values_tracked: int
    rss_baseline_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    rss_budget_mb: float
    session_ids: list[str] = field(default_factory=list)

    @property
    def retained_mb(self) -> float:
        return self.rss_after_mb - self.rss_baseline_mb

    @property
    def problems(self) -> list[str]:
        found = []
        if self.sessions_left:
            found.append(f"{self.sessions_left} session(s) were never discarded")
        if self.documents_alive:
            found.append(f"{self.documents_alive} document(s) of discarded sessions are still alive")
        if self.contexts_alive:
            found.append(f"{self.contexts_alive} session context(s) of discarded sessions are still alive")
        if self.locals_values_alive:
            found.append(
                f"{self.locals_values_alive} of {self.locals_values_tracked} session_context.locals values "
                "are still alive after their sessions ended"
            )
        if self.retained_mb > self.rss_budget_mb:
            found.append(
                f"RSS is {self.retained_mb:.1f} MB above the baseline after every session expired "
                f"(budget {self.rss_budget_mb:.1f} MB)"
            )
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        opened = ", ".join(f"{count} {kind}" for kind, count in self.sessions_opened.items())
        lines = [
            f"leak check of {self.app}: {opened} sessions",
            f"RSS baseline {self.rss_baseline_mb:.1f} MB, peak {self.rss_peak_mb:.1f} MB, "
            f"after expiry {self.rss_after_mb:.1f} MB (retained {self.retained_mb:+.1f} MB, "
            f"budget {self.rss_budget_mb:.1f} MB)",
        ]
        lines += [f"LEAK: {problem}" for problem in self.problems] or ["no leak found"]
        return "\n".join(lines)


def rss_mb() -> float:
    """This process's resident set size in MB."""
    return psutil.Process(os.getpid()).memory_info().rss / MB


def _track(
    running: RunningServer,
) -> tuple[list[weakref.ref[Any]], list[weakref.ref[Any]], list[weakref.ref[Any]], list[str]]:
    """Weak references to every live session's document, context and weak-referenceable locals."""

    def collect() -> tuple[list[weakref.ref[Any]], list[weakref.ref[Any]], list[weakref.ref[Any]], list[str]]:
        documents, contexts, values, ids = [], [], [], []
        for session in running.server.get_sessions():
            document = session.document
            context = document.session_context
            documents.append(weakref.ref(document))
            ids.append(str(session.id))
            if context is None:
                continue
            contexts.append(weakref.ref(context))
            for value in dict(getattr(context, "locals", None) or {}).values():
                # numpy views keep their base array alive: track the base too
                for tracked in (value, getattr(value, "base", None)):
                    # dicts, ints, ...: not weak-referenceable; RSS covers them
                    if tracked is not None:
                        with contextlib.suppress(TypeError):
                            values.append(weakref.ref(tracked))
        return documents, contexts, values, ids

    return running.call(collect)


def _open_round(running: RunningServer, websocket: int, http: int, dropped: int) -> list[Any]:
    clients = [open_websocket_session(running) for _ in range(websocket)]
    for _ in range(http):
        open_http_session(running)
    for _ in range(dropped):
        open_dropped_session(running)
    return clients


def _close_round(running: RunningServer, clients: list[Any], timeout: float) -> int:
    for client in clients:
        client.close()
    return running.wait_for_sessions(0, timeout)


def _settled_rss(timeout: float, window_s: float = 2.0, tolerance_mb: float = 0.5) -> float:
    """RSS once it has stayed within ``tolerance_mb`` for ``window_s`` (bounded by ``timeout``).

    The server releases memory in batches after discards, with a follow-up once removed periodic
    callbacks' timers are due, so one quiet sample is not enough.
    """
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        samples.append((now, rss_mb()))
        recent = [value for at, value in samples if at >= now - window_s]
        if samples[0][0] <= now - window_s and max(recent) - min(recent) <= tolerance_mb:
            return recent[-1]
        if now >= deadline:
            return samples[-1][1]
        time.sleep(0.25)


def check_app_for_leaks(
    app: str | os.PathLike[str],
    *,
    websocket_sessions: int = 10,
    http_sessions: int = 10,
    dropped_sessions: int = 10,
    rss_budget_mb: float = 5.0,
    unused_session_lifetime_ms: int = 1500,
    check_unused_sessions_ms: int = 200,
    expire_timeout_s: float = 20.0,
    warmup_rounds: int = 1,
    release_timeout_s: float = 5.0,
) -> LeakReport:
    """Run the leak check on the Bokeh app at ``app`` (directory or script) and report.

    The idle lifetime must outlast opening the idle sessions (HTTP-only and dropped ones, opened
    after the connected ones), so that the peak really holds every session at once. After the
    last discard, the tracked objects get ``release_timeout_s`` to be freed before they count as
    alive.
    """
    with running_server(
        app,
        unused_session_lifetime_ms=unused_session_lifetime_ms,
        check_unused_sessions_ms=check_unused_sessions_ms,
    ) as running:
        # Warm-up: a round of the same shape pays for imports, caches and the allocator's high-water
        # mark (arenas grown for that many live documents); a leak grows again in the measured round.
        for _ in range(warmup_rounds):
            _close_round(
                running,
                _open_round(running, websocket_sessions, http_sessions, dropped_sessions),
                expire_timeout_s,
            )
        baseline = _settled_rss(timeout=10.0)

        clients = _open_round(running, websocket_sessions, http_sessions, dropped_sessions)
        running.wait_for_sessions(websocket_sessions + http_sessions + dropped_sessions, expire_timeout_s)
        documents, contexts, values, ids = _track(running)
        peak = rss_mb()

        left = _close_round(running, clients, expire_timeout_s)
        del clients

        def all_dead() -> bool:
            return not any(ref() is not None for ref in (*documents, *contexts, *values))

        wait_until(all_dead, timeout=release_timeout_s)
        after = _settled_rss(timeout=10.0)
        return LeakReport(
            app=str(Path(app)),
            sessions_opened={
                "websocket": websocket_sessions,
                "http-only": http_sessions,
                "dropped": dropped_sessions,
            },
            sessions_left=left,
            documents_alive=sum(ref() is not None for ref in documents),
            contexts_alive=sum(ref() is not None for ref in contexts),
            locals_values_alive=sum(ref() is not None for ref in values),
            locals_values_tracked=len(values),
            rss_baseline_mb=baseline,
            rss_peak_mb=peak,
            rss_after_mb=after,
            rss_budget_mb=rss_budget_mb,
            session_ids=ids,
        )
