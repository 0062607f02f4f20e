"""Admission control: refuse a new session that would push the process past its memory limit.

Under a container memory limit the kernel kills the whole process, every user's session with it,
the moment one allocation too many is made. Shedding idle sessions (``guard.py``) cannot save a
server whose sessions are connected, and readiness 503 does not stop traffic that already reaches
the pod. So every new session asks first (``session_gate.py``):

* above ``max_sessions`` (live plus being created), refuse;
* RSS at or above the hard limit, refuse;
* RSS plus the expected cost of every session admitted but not yet built, plus this one, above the
  hard limit: refuse.

The expected cost of one session is measured from the sessions this process has served, never
assumed: the larger of (a) the RSS growth while a session was being created alone, averaged
(EWMA), and (b) the RSS above the idle baseline divided by the live sessions. Until the first
session has been measured, sessions are admitted one at a time.

Admitted sessions hold a ``Ticket`` until Bokeh has built them (their memory is then in RSS);
a ticket whose session never gets built (the client went away) lapses after ``TICKET_TTL_S``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MB = 2**20
#: Seconds after which a ticket whose session was never built stops counting as pending.
TICKET_TTL_S = 30.0
#: Weight of the newest creation in the running average of creation costs.
EWMA_WEIGHT = 0.3


@dataclass(frozen=True)
class Refusal:
    """Why a new session was refused: ``reason`` is a short label (metrics), ``detail`` a sentence."""

    reason: str
    detail: str


@dataclass
class Ticket:
    """An admitted session that is being built; ``close`` when it is (or when it never will be)."""

    number: int
    admitted_at: float
    rss_at_admission: int
    overlapped: bool = False
    closed: bool = False


class SessionCost:
    """The memory one more session is expected to take, learned from the sessions served."""

    def __init__(self) -> None:
        self.baseline_rss: int | None = None
        self.creation_ewma: float | None = None
        self.footprint: float | None = None

    def note_idle(self, rss: int) -> None:
        """RSS with no live or starting session: the baseline (the latest such reading)."""
        self.baseline_rss = rss

    def note_created(self, rss_before: int, rss_after: int, alone: bool) -> None:
        """A session was built; ``alone`` when no other creation overlapped it."""
        if alone:
            delta = float(max(rss_after - rss_before, 0))
            previous = self.creation_ewma
            self.creation_ewma = delta if previous is None else previous + EWMA_WEIGHT * (delta - previous)

    def note_live(self, rss: int, live: int) -> None:
        """The average footprint of the ``live`` sessions held at ``rss``."""
        if live > 0 and self.baseline_rss is not None:
            self.footprint = max(rss - self.baseline_rss, 0) / live

    def estimate(self) -> int | None:
        """Bytes one more session is expected to take; None until a session was measured."""
        known = [value for value in (self.creation_ewma, self.footprint) if value is not None]
        return int(max(known)) if known else None


class Admission:
    """Decides, on the server's event loop, whether a new session may be created."""

    def __init__(
        self,
        limit_bytes: int,
        *,
        max_sessions: int,
        rss: Callable[[], int],
        live_sessions: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_bytes = limit_bytes
        self.max_sessions = max_sessions
        self.rss = rss
        self.live_sessions = live_sessions
        self.clock = clock
        self.cost = SessionCost()
        self._tickets: dict[int, Ticket] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Sessions admitted and not yet built (lapsed tickets no longer count)."""
        now = self.clock()
        with self._lock:
            for number, ticket in list(self._tickets.items()):
                if now - ticket.admitted_at > TICKET_TTL_S:
                    ticket.closed = True
                    del self._tickets[number]
            return len(self._tickets)

    def refusal(self) -> Refusal | None:
        """Why one more session must not be created now, or None if it fits."""
        pending, live = self.pending, self.live_sessions()
        if self.max_sessions and live + pending >= self.max_sessions:
            detail = f"{live} live + {pending} starting sessions reach the cap of {self.max_sessions}"
            return Refusal("max_sessions", detail)
        rss = self.rss()
        if live == 0 and pending == 0:
            self.cost.note_idle(rss)
        else:
            self.cost.note_live(rss, live)
        if rss >= self.limit_bytes:
            detail = f"RSS {rss / MB:.0f} MB is at the admission limit {self.limit_bytes / MB:.0f} MB"
            return Refusal("memory", detail)
        cost = self.cost.estimate()
        if cost is None:
            if pending:
                return Refusal("measuring", "the first session's memory is still being measured")
            return None
        projected = rss + (pending + 1) * cost
        if projected > self.limit_bytes:
            return Refusal(
                "memory",
                f"RSS {rss / MB:.0f} MB + {pending + 1} session(s) x {cost / MB:.1f} MB would pass the "
                f"admission limit {self.limit_bytes / MB:.0f} MB",
            )
        return None

    def admit(self) -> Ticket | Refusal:
        """A ticket for one new session, or the refusal."""
        refused = self.refusal()
        if refused is not None:
            return refused
        ticket = Ticket(next(self._numbers), self.clock(), self.rss())
        with self._lock:
            for other in self._tickets.values():
                other.overlapped = ticket.overlapped = True
            self._tickets[ticket.number] = ticket
        return ticket

    def built(self, ticket: Ticket, succeeded: bool) -> None:
        """The ticket's session was built (or failed): it stops counting as pending; learn its cost."""
        with self._lock:
            if ticket.closed:
                return
            ticket.closed = True
            self._tickets.pop(ticket.number, None)
        if succeeded:
            rss = self.rss()
            self.cost.note_created(ticket.rss_at_admission, rss, alone=not ticket.overlapped)
            self.cost.note_live(rss, self.live_sessions())
