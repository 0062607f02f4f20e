"""Benchmark: this project's server against bare ``bokeh serve``, same app, same run.

1. Mass-expiry sweep: for each batch size (``--batches``, default 200 500 1000 2000) each server
   gets that many sessions (HTTP GETs of the page, ``--threads`` at a time, so they start idle),
   which then expire together at one unused-session check: the lifetime is 1 s and the check
   interval is set per run to fall after the last session was created. A probe thread GETs a
   missing URL every 10 ms (Tornado answers 404 without touching Bokeh) and records how late each
   answer is: the largest delay from 1 s before the first discard to 1 s after the last is the
   event loop's worst stall during the expiry; the 5 s before that window give the worst stall of
   the same idle sessions with nothing expiring, for comparison. Time to empty runs from the first
   to the last "cleaned up" log line of the app's lifecycle hooks (the same hooks run under both
   servers). A server not empty ``--empty-timeout-s`` after its first discard is reported as "not
   empty after N s" with the sessions left, and its worst stall then counts a probe still waiting
   as late as it is by then (bare Bokeh collects the whole heap once per discarded session, so
   its batch grows quadratically). Sessions hold the demo app's 2 MB each; the project runs with
   ``<PKG>_MEMORY_LIMIT=64Gi`` and its discard of sessions nobody connects to switched off, so that
   admission control and that discard leave the batch whole: only the expiry is measured.
   A worst stall of a few milliseconds is near the probe's own noise (the idle figure): single
   runs at 2,000 and 200 sessions gave ratios from 0.75 to 2.5 x with the same code, so the
   project runs every size ``--repeats`` times (default 3, in rounds over the sizes, so that a
   slow spell of the machine does not fall on one size) and reports the median of each figure
   with every run's worst stall; bare Bokeh, whose stalls are hundreds of milliseconds, runs once.
2. Throughput: websocket sessions opened (page pull) and closed through each server, in
   alternating rounds; sessions per second and the ratio project/bare.

Run from the project root: ``python benchmarks/expiry_and_throughput.py`` (``--help`` for sizes;
about 25 minutes with the defaults, half of it waiting for bare Bokeh). It prints a table, writes
``benchmarks/results/expiry_and_throughput.json`` (``--results-dir``) and ``expiry_sweep.html``
(worst stall and time to empty against the batch size; ``python benchmarks/snapshot.py
benchmarks/results/expiry_sweep.html docs/benchmark-expiry.png`` makes the README image).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from memory import format_table, write_html

from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.session_gate import WARM_UP_PREFIX
from {{ cookiecutter.package_name }}.server.settings import env_var
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import (
    ServedProcess,
    bokeh_command,
    free_port,
    project_command,
    start_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
CLEANED = re.compile(rf"^(\d+\.\d+) Session (?!{re.escape(WARM_UP_PREFIX)})(\S+) cleaned up")
SERVERS = ("project", "bare")
LIFETIME_MS = 1000
#: The expiry window starts this long before the first discard and ends this long after the last.
WINDOW_MARGIN_S = 1.0
#: The project's settings for the sweep: no admission refusals, no discard of unclaimed pages.
SWEEP_ENV = {env_var("memory_limit"): "64Gi", env_var("unconnected_grace_ms"): str(24 * 3600 * 1000)}


def start(name: str, lifetime_ms: int, check_ms: int, env: dict[str, str] | None = None) -> ServedProcess:
    """``python -m <package> serve`` (``project``) or bare ``bokeh serve`` of the same app (``bare``)."""
    port = free_port()
    flags = [
        "--address", "127.0.0.1",
        "--unused-session-lifetime", str(lifetime_ms), "--check-unused-sessions", str(check_ms),
        "--log-format", "%(created).3f %(message)s",
    ]  # fmt: skip
    command = project_command(port, *flags) if name == "project" else bokeh_command(APP_DIR, port, *flags)
    return start_server(command, port, env={env_var("log_level"): "info", **(env or {})})


def get(url: str, timeout: float = 120.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class CleanedTimes:
    """The times of the "cleaned up" lines a server has logged, read incrementally: the harness
    polls this while the probe measures, in the same process, and rescanning thousands of lines each
    time held the GIL long enough to show up as stalls of the server."""

    def __init__(self, server: ServedProcess) -> None:
        self.server = server
        self._read = 0
        self._times: list[float] = []

    def __call__(self) -> list[float]:
        new = self.server.logged[self._read :]
        self._read += len(new)
        self._times += [float(match[1]) for _, line in new if (match := CLEANED.match(line))]
        return self._times


@contextlib.contextmanager
def harness_collections_paused() -> Iterator[None]:
    """No garbage collection in this process while the probe measures: a full collection of the
    harness's own heap (50 ms at 2,000 sessions' log lines) holds the GIL, and the probe thread,
    and was reported as a stall of the server (seen for both servers alike)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Probe:
    """GETs a missing URL every 10 ms from a thread; records (wall time sent, seconds until answered)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered: list[tuple[float, float]] = []
        self.waiting_since: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.waiting_since = sent = time.time()
            try:
                get(self.url, timeout=600)
            except OSError:
                return  # the server was stopped under a waiting probe
            self.waiting_since = None
            self.answered.append((sent, time.time() - sent))
            time.sleep(0.01)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()

    def worst_ms(self, start: float, end: float) -> tuple[float, float]:
        """Worst and median lateness (ms) of probes sent in [start, end], a probe still waiting
        counting as late as it is now."""
        lates = [late for sent, late in list(self.answered) if start <= sent <= end]
        waiting = self.waiting_since
        if waiting is not None and waiting <= end:
            lates.append(time.time() - waiting)
        if not lates:
            return 0.0, 0.0
        return max(lates) * 1000, statistics.median(lates) * 1000


class CheckTiming:
    """Picks each run's check interval so that the check falls after the last session was made."""

    def __init__(self, seconds_per_session: float = 0.04, margin_s: float = 10.0) -> None:
        self.seconds_per_session = seconds_per_session
        self.margin_s = margin_s

    def check_ms(self, sessions: int) -> int:
        # Making a session gets slower as the server holds more (Bokeh 3.10: 0.05 s each at 1,000,
        # 0.07 s at 2,000), so the estimate from smaller batches gets a wide margin.
        return int((self.margin_s + LIFETIME_MS / 1000 + 2.5 * self.seconds_per_session * sessions) * 1000)

    def observed(self, sessions: int, seconds: float) -> None:
        self.seconds_per_session = max(self.seconds_per_session, seconds / sessions)


def create_sessions(server: ServedProcess, sessions: int, threads: int) -> float:
    """``sessions`` page GETs, ``threads`` at a time after the first (the project's admission
    control admits one at a time until it has measured a session); returns the seconds it took."""
    started = time.monotonic()
    statuses = [get(server.url("/app"))]
    with ThreadPoolExecutor(threads) as pool:
        statuses += pool.map(lambda _: get(server.url("/app")), range(sessions - 1))
    refused = [status for status in statuses if status != 200]
    if refused:
        raise RuntimeError(f"{len(refused)} of {sessions} page GETs failed: statuses {sorted(set(refused))}")
    return time.monotonic() - started


def mass_expiry(
    name: str, sessions: int, timing: CheckTiming, threads: int, empty_timeout_s: float, window_s: float
) -> dict[str, Any]:
    """Create ``sessions`` idle sessions, let them expire at one check, measure stall and duration."""
    check_ms = timing.check_ms(sessions)
    server = start(
        name, lifetime_ms=LIFETIME_MS, check_ms=check_ms, env=SWEEP_ENV if name == "project" else None
    )
    started = time.time()  # Bokeh's unused-session check runs every check_ms from about now
    try:
        creation_s = create_sessions(server, sessions, threads)
        timing.observed(sessions, creation_s)
        cleaned_times = CleanedTimes(server)
        if cleaned_times():
            raise RuntimeError(
                f"{name}: the check ran while {sessions} sessions were still being created "
                f"({creation_s:.0f} s, check every {check_ms / 1000:.0f} s): the batch was split"
            )
        with harness_collections_paused():
            probe = Probe(server.url("/__probe__")).start()
            row = _measure_expiry(
                name, server, sessions, probe, cleaned_times, started, check_ms, empty_timeout_s, window_s
            )
        probe.stop()
        return {"sessions": sessions, "creation_s": round(creation_s, 2), "check_ms": check_ms, **row}
    finally:
        server.kill()


def _measure_expiry(
    name: str,
    server: ServedProcess,
    sessions: int,
    probe: Probe,
    cleaned_times: CleanedTimes,
    started: float,
    check_ms: int,
    empty_timeout_s: float,
    window_s: float,
) -> dict[str, Any]:
    """Wait for the check to discard the batch; the probe's worst delays during it and before.

    The window runs from ``WINDOW_MARGIN_S`` before the first discard to ``window_s`` after it, or
    to ``WINDOW_MARGIN_S`` after the last discard if that is later, so that batches which empty in
    less than ``window_s`` are measured over windows of the same length: the worst of a noisy probe
    grows with how many probes it is taken over. The idle figure comes from a window as long (at
    most ``WINDOW_MARGIN_S + window_s``), just before."""
    wait_until(lambda: bool(cleaned_times()), check_ms / 1000 + 30, interval=0.05)
    first_seen = min(cleaned_times(), default=None)
    if first_seen is None and name == "project":
        raise RuntimeError(f"{name}: no session was cleaned up:\n{''.join(server.lines[-20:])}")
    if first_seen is None:  # bare Bokeh 3.10 with 2,000 sessions: its executor had not finished one
        first_seen = started + check_ms / 1000  # the check was due then
    emptied = wait_until(
        lambda: len(cleaned_times()) >= sessions, first_seen + empty_timeout_s - time.time(), 0.1
    )
    times = cleaned_times()
    first, last = min(times, default=first_seen), max(times, default=first_seen)
    # The collection after the last discard, and its follow-up, fall in the window.
    end = max(last + WINDOW_MARGIN_S, first + window_s) if emptied else time.time()
    time.sleep(max(0.0, end - time.time()))
    start = first - WINDOW_MARGIN_S
    worst_ms, median_ms = probe.worst_ms(start, end)
    idle_ms, _ = probe.worst_ms(start - min(end - start, WINDOW_MARGIN_S + window_s), start)
    return {
        "time_to_empty_s": round(last - first, 3) if emptied else None,
        "left_at_end": sessions - len(times),
        "empty_timeout_s": empty_timeout_s,
        "max_loop_lag_ms": round(worst_ms, 1),
        "idle_max_loop_lag_ms": round(idle_ms, 1),
        "window_s": round(end - start, 2),
        "median_probe_ms": round(median_ms, 2),
    }


def sweep(
    batches: list[int],
    threads: int,
    empty_timeout_s: float,
    check_margin_s: float,
    repeats: int = 1,
    window_s: float = 6.0,
) -> dict[str, list[dict[str, Any]]]:
    """``mass_expiry`` for every batch size, smallest first, in ``repeats`` rounds for the project
    (bare Bokeh in the first round only): one row per size and server, the median of its runs."""
    timing = {name: CheckTiming(margin_s=check_margin_s) for name in SERVERS}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in SERVERS}
    for round_number in range(repeats):
        for sessions in sorted(batches):
            for name in SERVERS if round_number == 0 else ("project",):
                row = mass_expiry(name, sessions, timing[name], threads, empty_timeout_s, window_s)
                print(
                    f"  {name}: {sessions} sessions, {emptied_text(row)}, "
                    f"worst stall {row['max_loop_lag_ms']:.0f} ms (round {round_number + 1})",
                    flush=True,
                )
                runs[name].setdefault(sessions, []).append(row)
    return {name: [median_run(by_size[size]) for size in sorted(by_size)] for name, by_size in runs.items()}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch size's runs as one row: each figure the median of the runs' (the lower middle
    one, a value that was measured), time to empty only if every run emptied; ``runs`` keeps them."""
    row = dict(runs[0])
    for key in ("max_loop_lag_ms", "idle_max_loop_lag_ms", "median_probe_ms", "creation_s"):
        row[key] = statistics.median_low(run[key] for run in runs)
    emptied = [run["time_to_empty_s"] for run in runs]
    row["time_to_empty_s"] = None if None in emptied else statistics.median_low(emptied)
    row["left_at_end"] = max(run["left_at_end"] for run in runs)
    row["runs"] = runs
    return row


def emptied_text(row: dict[str, Any]) -> str:
    if row["time_to_empty_s"] is not None:
        return f"{row['time_to_empty_s']:.2f} s"
    return f"not empty after {row['empty_timeout_s']:g} s ({row['left_at_end']} left)"


def flatness(rows: list[dict[str, Any]]) -> float | None:
    """Worst stall of the largest batch over that of the smallest, medians of their runs (1.0 is flat)."""
    if len(rows) < 2 or not rows[0]["max_loop_lag_ms"]:
        return None
    return round(rows[-1]["max_loop_lag_ms"] / rows[0]["max_loop_lag_ms"], 2)


def sweep_figure(results: dict[str, list[dict[str, Any]]], title: str) -> Any:
    """Worst stall and time to empty against the batch size, one line per server (log scales)."""
    from bokeh.layouts import column, row
    from bokeh.models import Div
    from bokeh.plotting import figure

    colors = {"project": "#1f77b4", "bare": "#d62728"}
    stall = figure(
        title="Worst event-loop stall while the batch expires (median of runs)",
        x_axis_label="sessions expiring in one check",
        y_axis_label="ms (log)", y_axis_type="log", width=520, height=360,
    )  # fmt: skip
    empty = figure(
        title="Time to empty (x: not empty at the timeout)", x_axis_label="sessions expiring in one check",
        y_axis_label="s (log)", y_axis_type="log", width=520, height=360,
    )  # fmt: skip
    for name, rows in results.items():
        sizes = [row["sessions"] for row in rows]
        stall.line(sizes, [max(row["max_loop_lag_ms"], 0.1) for row in rows], color=colors[name],
                   line_width=2.5, legend_label=name)  # fmt: skip
        stall.scatter(sizes, [max(row["max_loop_lag_ms"], 0.1) for row in rows], color=colors[name], size=8)
        each = [(row["sessions"], max(run["max_loop_lag_ms"], 0.1)) for row in rows for run in row["runs"]]
        if any(len(row["runs"]) > 1 for row in rows):
            stall.scatter(*zip(*each, strict=True), color=colors[name], size=5, alpha=0.5,
                          legend_label=f"{name}: each run")  # fmt: skip
        done = [
            (row["sessions"], max(row["time_to_empty_s"], 0.01))
            for row in rows
            if row["time_to_empty_s"] is not None
        ]
        cut = [(row["sessions"], row["empty_timeout_s"]) for row in rows if row["time_to_empty_s"] is None]
        if done:
            empty.line(*zip(*done, strict=True), color=colors[name], line_width=2.5, legend_label=name)
            empty.scatter(*zip(*done, strict=True), color=colors[name], size=8)
        if cut:
            empty.scatter(*zip(*cut, strict=True), color=colors[name], size=14, marker="x", line_width=3,
                          legend_label=f"{name}: not empty at the timeout")  # fmt: skip
    for plot in (stall, empty):
        plot.legend.location = "top_left"
    return column(Div(text=f"<h3>{title}</h3>"), row(stall, empty))


def throughput(sessions_per_round: int, rounds: int) -> dict[str, float]:
    """Open+close websocket sessions through both servers in alternating rounds."""
    from bokeh.client import pull_session

    servers = {name: start(name, lifetime_ms=500, check_ms=500) for name in ("project", "bare")}
    rates: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for server in servers.values():  # warm-up
            pull_session(url=server.url("/app")).close()
        for _ in range(rounds):
            for name, server in servers.items():
                started = time.perf_counter()
                for _ in range(sessions_per_round):
                    pull_session(url=server.url("/app")).close()
                rates[name].append(sessions_per_round / (time.perf_counter() - started))
    finally:
        for server in servers.values():
            server.stop()
    project, bare = statistics.median(rates["project"]), statistics.median(rates["bare"])
    return {
        "project_sessions_per_s": round(project, 1),
        "bare_sessions_per_s": round(bare, 1),
        "ratio_project_over_bare": round(project / bare, 3),
        "rounds": rounds,
        "sessions_per_round": sessions_per_round,
    }


def sweep_rows(results: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for name, sizes in results.items():
        for size in sizes:
            each = ", ".join(f"{run['max_loop_lag_ms']:.1f}" for run in size["runs"])
            rows.append([name, str(size["sessions"]), f"{size['max_loop_lag_ms']:.1f} ms",
                         each if len(size["runs"]) > 1 else "", f"{size['idle_max_loop_lag_ms']:.1f} ms",
                         emptied_text(size), f"{size['median_probe_ms']:.2f} ms",
                         f"{size['creation_s']:.0f} s"])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[200, 500, 1000, 2000],
                        help="idle sessions expiring together, one server at a time")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3,
                        help="project runs per batch size (bare: one); figures are medians")  # fmt: skip
    parser.add_argument("--threads", type=int, default=4, help="page GETs at a time while creating sessions")
    parser.add_argument("--empty-timeout-s", type=float, default=60.0,
                        help="give up on emptying this long after the first discard")  # fmt: skip
    parser.add_argument("--window-s", type=float, default=6.0,
                        help="measure stalls until at least this long after the first discard")  # fmt: skip
    parser.add_argument("--check-margin-s", type=float, default=10.0,
                        help="the check falls this long after the sessions should be created")  # fmt: skip
    parser.add_argument("--throughput-sessions", type=int, default=40, help="sessions per throughput round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON and HTML go")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    print("Mass-expiry sweep")
    results = sweep(
        args.batches, args.threads, args.empty_timeout_s, args.check_margin_s, args.repeats, args.window_s
    )
    rates = throughput(args.throughput_sessions, args.rounds)
    print("\nMass expiry: idle sessions expiring at one check")
    header = ["server", "sessions", "worst stall", "each run (ms)", "idle before", "time to empty",
              "median probe", "creation"]  # fmt: skip
    print(format_table(header, sweep_rows(results), left=1))
    flat = {name: flatness(runs) for name, runs in results.items()}
    for name, ratio in flat.items():
        if ratio is not None:
            print(
                f"{name}: worst stall at {max(args.batches)} sessions = "
                f"{ratio:.2f} x that at {min(args.batches)} ({len(results[name][0]['runs'])} run(s) per size)"
            )
    rounds = f"{args.rounds} alternating rounds of {args.throughput_sessions}"
    print(f"\nThroughput: websocket session open+close, {rounds}")
    print(f"project {rates['project_sessions_per_s']:.1f}/s, bare {rates['bare_sessions_per_s']:.1f}/s, "
          f"ratio {rates['ratio_project_over_bare']:.3f}")  # fmt: skip
    import bokeh

    args.results_dir.mkdir(parents=True, exist_ok=True)
    sizes = {key: value for key, value in vars(args).items() if key != "results_dir"}
    report = {"bokeh": bokeh.__version__, "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "expiry_sweep": results, "stall_ratio_largest_over_smallest": flat, "throughput": rates,
              "args": sizes}  # fmt: skip
    (args.results_dir / "expiry_and_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    title = (
        f"Idle sessions expiring in one check: Bokeh {bokeh.__version__}, Python {report['python']}, "
        f"{report['cpus']} CPUs"
    )
    write_html(sweep_figure(results, title), args.results_dir / "expiry_sweep.html", title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
