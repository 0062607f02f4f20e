"""Soak: 1000 session open/close cycles through 50 concurrent websocket clients, after a warm-up.

The server is the real CLI (``python -m <package> serve``) in its own process, so its RSS is not
mixed with the clients' (every ``bokeh.client`` session leaves threads of its own event loop behind
in the client process). Each cycle opens a session, moves the slider (its callback runs on the
server) and closes it. Afterwards the server must hold no session, every session must have been
cleaned up exactly once (one "cleaned up" log line per session id, no cleanup failure), and the
server's RSS must not trend upwards: the least-squares slope of RSS against completed sessions,
fitted over the checkpoints of the 1000 measured cycles (21 points, not two), must stay at or
below 1 KB per session. The 300 warm-up cycles before them fill Bokeh's and the allocator's caches:
RSS grows by a few MB over the first few hundred sessions and then levels off, growth that a fit
including it would report as a leak of a few KB per session.

RSS is sampled at checkpoints, each time the server is idle (no live session) and its RSS has
settled: a sample taken under load would mostly measure how many sessions happen to be alive.

How we know it can fail: ``test_soak_slope_catches_a_slow_leak`` runs the same harness on the
project's own app plus a leak of 4 KB per session (``apps/slow_leak``), with the same cycles,
clients, warm-up and checkpoints, and asserts that the fitted slope exceeds the bound.
Marked ``soak`` (deselected by default): ``pytest -m soak``.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from bokeh.client import pull_session

from {{ cookiecutter.package_name }}.server.session_gate import WARM_UP_PREFIX
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import ServedProcess, project_server

pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]

APPS = Path(__file__).resolve().parent / "apps"
SLOPE_BOUND_BYTES = 1024
CLEANED = re.compile(rf"Session (?!{re.escape(WARM_UP_PREFIX)})(\S+) cleaned up in")  # users' sessions
EXPIRY = ("--unused-session-lifetime", "500", "--check-unused-sessions", "200")
WARMUP = 300
CYCLES = 1000
CLIENTS = 50
CHECKPOINT_EVERY = 50


@dataclass
class SoakRun:
    """What one soak run did and the server RSS at each idle checkpoint."""

    opened: list[str] = field(default_factory=list)
    warmup: int = 0
    checkpoints: list[tuple[int, float]] = field(default_factory=list)  # (sessions done, RSS bytes)
    seconds: float = 0.0

    def measured(self) -> list[tuple[int, float]]:
        """The checkpoints from the end of the warm-up on: the points of the fit."""
        return [(done, rss) for done, rss in self.checkpoints if done >= self.warmup]

    def slope(self) -> float:
        """Least-squares slope of RSS over completed sessions, in bytes per session."""
        done, rss = zip(*self.measured(), strict=True)
        return statistics.linear_regression(done, rss).slope

    def summary(self, name: str) -> str:
        cycles = len(self.opened)
        curve = " ".join(f"{done}:{rss / 2**20:.2f}" for done, rss in self.checkpoints)
        return (
            f"soak {name}: {self.warmup} warm-up + {cycles - self.warmup} measured cycles in "
            f"{self.seconds:.0f} s ({cycles / self.seconds:.1f}/s); RSS slope {self.slope():+.0f} "
            f"B/session fitted over {len(self.measured())} checkpoints; sessions:RSS MB {curve}"
        )


def live_sessions(server: ServedProcess) -> float:
    """``bokeh_sessions_live`` from the server's /metrics (a route that creates no session)."""
    import urllib.request

    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as response:
        text = response.read().decode()
    return float(re.search(r"^bokeh_sessions_live (\S+)$", text, re.MULTILINE)[1])


def idle_rss(server: ServedProcess, timeout: float = 30.0) -> float:
    """The server's RSS once it holds no session and its RSS stayed within 0.25 MB for 1.5 s."""
    process = psutil.Process(server.process.pid)
    deadline = time.monotonic() + timeout
    history: list[tuple[float, float]] = []
    while time.monotonic() < deadline:
        now = time.monotonic()
        history.append((now, float(process.memory_info().rss)))
        window = [rss for at, rss in history if at >= now - 1.5]
        settled = history[0][0] <= now - 1.5 and max(window) - min(window) <= 2**18
        if settled and live_sessions(server) == 0:
            return statistics.median(window)
        time.sleep(0.1)
    raise AssertionError(f"server not idle and settled within {timeout} s:\n{server.log[-3000:]}")


def soak(server: ServedProcess, app_path: str, limit_s: float = 420) -> SoakRun:
    """``WARMUP`` + ``CYCLES`` open/use/close cycles from ``CLIENTS`` threads, with an idle
    checkpoint every ``CHECKPOINT_EVERY`` cycles (every 100 during the warm-up)."""
    run = SoakRun(warmup=WARMUP)
    total = WARMUP + CYCLES
    lock = threading.Lock()
    deadline = time.monotonic() + limit_s

    def cycle(index: int) -> None:
        if time.monotonic() > deadline:
            return
        with pull_session(url=server.url(app_path)) as session:
            session.document.get_model_by_name("window").value = 2 + index % 58
            session.force_roundtrip()  # the slider callback has run on the server
            with lock:
                run.opened.append(session.id)

    started = time.monotonic()
    # Bokeh 3.10 fills each model class's property info on first use, not thread-safely: 50 clients
    # decoding their first document at once can fail (AttributeError '_overridden_defaults'). The
    # first cycle runs alone.
    cycle(0)
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        done = len(run.opened)
        while done < total and time.monotonic() < deadline:
            batch = min(100 if done < WARMUP else CHECKPOINT_EVERY, total - done)
            list(pool.map(cycle, range(done, done + batch)))
            done = len(run.opened)
            run.checkpoints.append((done, idle_rss(server)))
    run.seconds = time.monotonic() - started
    assert len(run.opened) == total, f"{len(run.opened)} of {total} cycles within {limit_s} s"
    return run


def cleanups(server: ServedProcess, expected: int, timeout: float = 30.0) -> Counter[str]:
    """Session id -> how many "cleaned up" lines the server logged for it."""

    def cleaned() -> Counter[str]:
        return Counter(match[1] for line in server.lines if (match := CLEANED.search(line)))

    wait_until(lambda: sum(cleaned().values()) >= expected, timeout, interval=0.2)
    return cleaned()


def test_soak_1000_sessions_50_clients() -> None:
    with project_server(*EXPIRY) as server:
        run = soak(server, "/app")
        cleaned = cleanups(server, expected=WARMUP + CYCLES)
        assert live_sessions(server) == 0
    print("\n" + run.summary("app"))
    assert len(set(run.opened)) == WARMUP + CYCLES
    assert cleaned == Counter(set(run.opened)), "every session cleaned up exactly once"
    assert "failed for session" not in server.log
    assert run.slope() <= SLOPE_BOUND_BYTES, run.summary("app")


def test_soak_slope_catches_a_slow_leak() -> None:
    """Negative control: the project's app plus 4 KB kept per session must break the bound."""
    env = {"SLOW_LEAK_BYTES": str(4 * 1024)}
    with project_server(str(APPS / "slow_leak"), *EXPIRY, env=env) as server:
        run = soak(server, "/slow_leak")
    print("\n" + run.summary("slow leak"))
    assert run.slope() > SLOPE_BOUND_BYTES, run.summary("slow leak")
