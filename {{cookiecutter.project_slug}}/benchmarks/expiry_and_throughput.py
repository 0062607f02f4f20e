"""Benchmark: this project's server against bare ``bokeh serve``, same app, same run.

1. Mass expiry: each server gets N sessions (HTTP GET of the page, so they start idle), then they
   expire together at one unused-session check. A probe thread GETs a missing URL every 10 ms
   (Tornado answers 404 without touching Bokeh) and records how late each answer is: the largest
   delay is the event loop's largest stall. Time-to-empty runs from the first to the last
   "cleaned up" log line of the app's lifecycle hooks (the same hooks run under both servers).
2. Throughput: websocket sessions opened (page pull) and closed through each server, in
   alternating rounds; sessions per second and the ratio project/bare.

Run from the project root: ``python benchmarks/expiry_and_throughput.py`` (``--help`` for sizes).
It prints a table and writes ``benchmarks/results/expiry_and_throughput.json`` (``--results-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

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


def start(name: str, lifetime_ms: int, check_ms: int) -> ServedProcess:
    """``python -m <package> serve`` (``project``) or bare ``bokeh serve`` of the same app (``bare``)."""
    port = free_port()
    flags = [
        "--address", "127.0.0.1",
        "--unused-session-lifetime", str(lifetime_ms), "--check-unused-sessions", str(check_ms),
        "--log-format", "%(created).3f %(message)s",
    ]  # fmt: skip
    command = project_command(port, *flags) if name == "project" else bokeh_command(APP_DIR, port, *flags)
    return start_server(command, port, env={env_var("log_level"): "info"})


def stop(server: ServedProcess) -> None:
    server.stop()


def get(url: str, timeout: float = 120.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def cleaned_times(server: ServedProcess) -> list[float]:
    return [float(match[1]) for line in server.lines if (match := CLEANED.match(line))]


def mass_expiry(name: str, sessions: int, check_ms: int) -> dict[str, float]:
    """Create ``sessions`` idle sessions, let them expire at one check, measure stall and duration."""
    server = start(name, lifetime_ms=1000, check_ms=check_ms)
    try:
        created_at = time.monotonic()
        for _ in range(sessions):
            get(server.url("/app"))
        creation_s = time.monotonic() - created_at
        if creation_s * 1000 > check_ms - 2000:
            raise RuntimeError(f"creating {sessions} sessions took {creation_s:.1f} s: raise --check-ms")
        probes: list[tuple[float, float]] = []  # (wall time sent, seconds late)
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                sent = time.time()
                get(server.url("/__probe__"))
                probes.append((sent, time.time() - sent))
                time.sleep(0.01)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        wait_until(lambda: len(cleaned_times(server)) >= sessions, check_ms / 1000 + 240, interval=0.1)
        time.sleep(1.0)
        done.set()
        prober.join(timeout=130)
        times = cleaned_times(server)
        if not times:
            raise RuntimeError(f"{name}: no session was cleaned up:\n{''.join(server.lines[-20:])}")
        first, last = min(times), max(times)
        window = [late for sent, late in probes if first - 1.0 <= sent <= last + 1.0]
        return {
            "sessions": sessions,
            "creation_s": round(creation_s, 2),
            "time_to_empty_s": round(last - first, 3) if len(times) == sessions else None,
            "left_at_end": sessions - len(times),
            "max_loop_lag_ms": round(max(window) * 1000, 1),
            "median_probe_ms": round(statistics.median(window) * 1000, 2),
        }
    finally:
        stop(server)


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
            stop(server)
    project, bare = statistics.median(rates["project"]), statistics.median(rates["bare"])
    return {
        "project_sessions_per_s": round(project, 1),
        "bare_sessions_per_s": round(bare, 1),
        "ratio_project_over_bare": round(project / bare, 3),
        "rounds": rounds,
        "sessions_per_round": sessions_per_round,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=200, help="idle sessions expiring together")
    parser.add_argument("--check-ms", type=int, default=20_000, help="unused-session check interval")
    parser.add_argument("--throughput-sessions", type=int, default=40, help="sessions per throughput round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)

    expiry = {name: mass_expiry(name, args.sessions, args.check_ms) for name in ("project", "bare")}
    rates = throughput(args.throughput_sessions, args.rounds)
    print(f"\nMass expiry: {args.sessions} idle sessions expiring at one check")
    print(f"{'server':<10}{'max loop lag':>15}{'time to empty':>16}{'median probe':>15}")
    for name, row in expiry.items():
        empty = (
            f"{row['time_to_empty_s']:.2f} s"
            if row["time_to_empty_s"] is not None
            else f"{row['left_at_end']} left"
        )
        print(f"{name:<10}{row['max_loop_lag_ms']:>12.1f} ms{empty:>16}{row['median_probe_ms']:>12.2f} ms")
    rounds = f"{args.rounds} alternating rounds of {args.throughput_sessions}"
    print(f"\nThroughput: websocket session open+close, {rounds}")
    print(f"project {rates['project_sessions_per_s']:.1f}/s, bare {rates['bare_sessions_per_s']:.1f}/s, "
          f"ratio {rates['ratio_project_over_bare']:.3f}")  # fmt: skip
    import bokeh

    args.results_dir.mkdir(parents=True, exist_ok=True)
    sizes = {key: value for key, value in vars(args).items() if key != "results_dir"}
    report = {"bokeh": bokeh.__version__, "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "expiry": expiry, "throughput": rates, "args": sizes}  # fmt: skip
    (args.results_dir / "expiry_and_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
