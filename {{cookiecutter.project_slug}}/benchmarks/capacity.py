"""Benchmark: users per server process before interactions lag; project vs bare Bokeh; 2 processes vs 1.

A user is a browser tab of the demo app without the browser (``<package>_devtools/bokeh_ws.py``):
it GETs the app page, opens the page's websocket, pulls the document, then every 2-4 s (at
random) moves the smoothing slider to a new value and waits for the plot's new data.

**The round trip** is measured from sending the PATCH-DOC that sets ``Slider.value`` (the message
BokehJS sends when the slider moves) until the server's PATCH-DOC that replaces the plot's
``ColumnDataSource.data`` has fully arrived: the server applying the change, running the app's
Python callback (re-smoothing the session's series, cached per window), serializing and sending
the new data, both ways over loopback, and the load generator's own event loop. The browser's
rendering is not in it.

Users are added in steps (``--steps``). After each step has settled, the round trips of one
window (``--window-s``) give p50 and p95, and ``--probes`` extra users join during the window and
leave: their **time to first plot** is the page GET to the pulled document (what a browser needs
before it can draw; its own rendering not included), under that load. A configuration's **users
per process** is the largest step whose p95 stays within ``--p95-ms``; its ramp stops at the first
step past it (or at the last step: then it is "at least" that).

Configurations, in one run (``--configs``): ``project`` (``python -m <package> serve``), ``bare``
(``bokeh serve`` of the same app, its own hooks included), ``nginx-1`` and ``nginx-2`` (one or two
project processes behind ``deploy/nginx.conf``, rendered with their ports and its page rate limit
raised: the load generator is one client address, the limit is per address). All servers expire
unused sessions after 15 s, checked every 5 s. The project runs with a memory limit its admission
control does not reach: this measures CPU and latency; the RSS per step gives memory per user.
The load generator runs on the same cores as the servers: its CPU share, and the lag of its own
event loop, are reported per step next to the servers' CPU.

Run from the project root: ``python benchmarks/capacity.py`` (about 15 minutes with the defaults).
It prints a table per configuration and a summary, writes ``benchmarks/results/capacity.json``
and ``capacity.html`` (p95 and CPU against users); ``python benchmarks/snapshot.py
benchmarks/results/capacity.html docs/benchmark-capacity.png`` makes the README image. To size
your own app, change the slider and data names (``--slider``, ``--changed``) to a widget of
yours whose server-side callback changes a property, and run it against your app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from memory import format_table, write_html
from tornado.httpclient import HTTPClientError

from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import env_var
from {{ cookiecutter.package_name }}_devtools.bokeh_ws import BokehUser, model_id
from {{ cookiecutter.package_name }}_devtools.nginx import NGINX_CONF, running_nginx
from {{ cookiecutter.package_name }}_devtools.serving import (
    ServedProcess,
    bokeh_command,
    free_port,
    project_command,
    start_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = ("project", "bare", "nginx-1", "nginx-2")
SERVER_FLAGS = (
    "--address",
    "127.0.0.1",
    "--unused-session-lifetime",
    "15000",
    "--check-unused-sessions",
    "5000",
)
#: The project's memory limit for this benchmark: admission control must not cap the users.
PROJECT_ENV = {env_var("memory_limit"): "64Gi"}
ROUND_TRIP_TIMEOUT_S = 10.0
JOIN_BATCH = 10


@dataclass
class Target:
    """Where users connect, the server processes behind it, and nginx if it is in front."""

    name: str
    page_url: str
    websocket_url: str
    servers: list[ServedProcess]
    proxy: ServedProcess | None = None
    #: The certificate to trust (nginx's TLS port), or None for plain HTTP.
    ca_certs: str | None = None

    def pids(self, proxy: bool = False) -> list[int]:
        """The servers' process ids, or nginx's (master and workers)."""
        pids = []
        for served in ([self.proxy] if self.proxy else []) if proxy else self.servers:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(served.pid)
                pids += [process.pid, *(child.pid for child in process.children(recursive=True))]
        return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def join_retrying(target: Target, attempts: int = 5) -> tuple[BokehUser, float]:
    """``BokehUser.join``; a page refused with 503 is asked for again after its Retry-After, as a
    browser would be by the project's error page. Returns the user and its time to first plot."""
    for attempt in range(attempts):
        try:
            return await BokehUser.join(target.page_url, target.websocket_url, ca_certs=target.ca_certs)
        except HTTPClientError as error:
            if error.code != 503 or attempt == attempts - 1:
                raise
            retry_after = error.response.headers.get("Retry-After", "1") if error.response else "1"
            await asyncio.sleep(float(retry_after))
    raise AssertionError("unreachable")


@dataclass
class Load:
    """The users of one configuration and what they measured."""

    target: Target
    slider: str
    changed: str
    round_trips: list[tuple[float, float]] = field(default_factory=list)  # (monotonic time, seconds)
    timeouts: list[float] = field(default_factory=list)
    users: list[BokehUser] = field(default_factory=list)
    tasks: list[asyncio.Future[None]] = field(default_factory=list)
    lag: list[tuple[float, float]] = field(default_factory=list)  # the load generator's loop lag

    async def join(self, count: int) -> None:
        """``count`` more users, ``JOIN_BATCH`` at a time (the first alone: the project's admission
        control admits one at a time until it has measured a session)."""
        while count > 0:
            batch = 1 if not self.users else min(JOIN_BATCH, count)
            joined = await asyncio.gather(*(self._join_one() for _ in range(batch)))
            self.users += joined
            count -= batch

    async def _join_one(self) -> BokehUser:
        user, _ = await join_retrying(self.target)
        slider = model_id(user.document, self.slider)
        self.tasks.append(asyncio.ensure_future(self._interact(user, slider)))
        return user

    async def _interact(self, user: BokehUser, slider: str) -> None:
        rng = random.Random()
        value = 1
        while True:
            await asyncio.sleep(rng.uniform(2.0, 4.0))
            value = rng.choice([window for window in range(1, 61) if window != value])
            try:
                seconds = await user.set_and_wait(slider, "value", value, self.changed, ROUND_TRIP_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.timeouts.append(time.monotonic())
                seconds = ROUND_TRIP_TIMEOUT_S
            except ConnectionError:
                return
            self.round_trips.append((time.monotonic(), seconds))

    async def watch_own_loop(self) -> None:
        """How late this process's event loop wakes up (50 ms ticks): the load generator's health."""
        while True:
            planned = time.monotonic() + 0.05
            await asyncio.sleep(0.05)
            self.lag.append((planned, time.monotonic() - planned))

    async def first_documents(self, probes: int, window_s: float) -> list[float]:
        """``probes`` new users join, spread over the window, and leave; their times to first plot."""
        seconds = []
        for _ in range(probes):
            await asyncio.sleep(window_s / (probes + 1))
            user, first = await join_retrying(self.target)
            seconds.append(first)
            user.close()
        return seconds

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for user in self.users:
            user.close()


async def ramp(load: Load, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Add users step by step; measure each step's window; stop past the p95 bound."""
    rows: list[dict[str, Any]] = []
    own = psutil.Process()
    watcher = asyncio.ensure_future(load.watch_own_loop())
    try:
        for users in args.steps:
            await load.join(users - len(load.users))
            await asyncio.sleep(args.settle_s)
            pids, proxy = load.target.pids(), load.target.pids(proxy=True)
            cpu = (cpu_seconds(pids), cpu_seconds(proxy), sum(own.cpu_times()[:2]))
            started = time.monotonic()
            first = await asyncio.gather(
                load.first_documents(args.probes, args.window_s), asyncio.sleep(args.window_s)
            )
            wall = time.monotonic() - started
            rows.append(step_row(load, users, started, wall, first[0], (pids, proxy), cpu))
            print(f"  {load.target.name}: {step_text(rows[-1])}", flush=True)
            if rows[-1]["p95_ms"] > args.p95_ms:
                break
    finally:
        watcher.cancel()
        load.close()
    return rows


def step_row(
    load: Load, users: int, started: float, wall: float, first: list[float],
    pids: tuple[list[int], list[int]], cpu_before: tuple[float, float, float],
) -> dict[str, Any]:  # fmt: skip
    ended = started + wall
    trips = [seconds * 1000 for at, seconds in load.round_trips if started <= at <= ended]
    lags = [late * 1000 for at, late in load.lag if started <= at <= ended]
    servers, proxy = pids
    cpu_after = (cpu_seconds(servers), cpu_seconds(proxy), sum(psutil.Process().cpu_times()[:2]))
    servers_cpu, proxy_cpu, own_cpu = (
        100 * (after - before) / wall for after, before in zip(cpu_after, cpu_before, strict=True)
    )
    return {
        "users": users,
        "round_trips": len(trips),
        "timeouts": sum(started <= at <= ended for at in load.timeouts),
        "p50_ms": round(percentile(trips, 0.50), 1),
        "p95_ms": round(percentile(trips, 0.95), 1),
        "max_ms": round(max(trips, default=float("nan")), 1),
        "first_document_p50_ms": round(percentile([s * 1000 for s in first], 0.50), 1),
        "first_document_p95_ms": round(percentile([s * 1000 for s in first], 0.95), 1),
        "server_cpu_percent": round(servers_cpu, 1),
        "nginx_cpu_percent": round(proxy_cpu, 1),
        "loadgen_cpu_percent": round(own_cpu, 1),
        "loadgen_lag_p95_ms": round(percentile(lags, 0.95), 1),
        "server_rss_mb": round(rss_mb(servers), 1),
    }


def cpu_text(row: dict[str, Any]) -> str:
    shares = (row["server_cpu_percent"], row["nginx_cpu_percent"], row["loadgen_cpu_percent"])
    return " / ".join(f"{share:.0f}" for share in shares) + " %"


def step_text(row: dict[str, Any]) -> str:
    return (
        f"{row['users']} users: p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms "
        f"({row['round_trips']} round trips, {row['timeouts']} timeouts), first plot p95 "
        f"{row['first_document_p95_ms']:.0f} ms, CPU: servers {row['server_cpu_percent']:.0f} %, "
        f"nginx {row['nginx_cpu_percent']:.0f} %, load generator {row['loadgen_cpu_percent']:.0f} %"
    )


@contextlib.contextmanager
def serving(config: str) -> Iterator[Target]:
    """The servers of ``config``, started and ready; stopped afterwards."""
    with contextlib.ExitStack() as stack:
        count = int(config.split("-")[1]) if config.startswith("nginx") else 1
        ports = [free_port() for _ in range(count)]
        servers = []
        for port in ports:
            if config == "bare":
                command = bokeh_command(APP_DIR, port, *SERVER_FLAGS)
            else:
                command = project_command(port, *SERVER_FLAGS)
            served = start_server(command, port, env=None if config == "bare" else PROJECT_ENV)
            stack.callback(served.kill)
            servers.append(served)
        if not config.startswith("nginx"):
            port = ports[0]
            yield Target(config, f"http://127.0.0.1:{port}/app", f"ws://127.0.0.1:{port}/app/ws", servers)
            return
        # As in production: users reach nginx over TLS (its plain port only redirects to it).
        port = free_port()
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="capacity-nginx-")))
        nginx = stack.enter_context(running_nginx(directory, ports, free_port(), port, page_rate="100000r/s"))
        context = ssl.create_default_context(cafile=str(nginx.certificate))
        if not wait_for_http(f"https://127.0.0.1:{port}/healthz", context):
            raise RuntimeError(f"nginx did not answer:\n{nginx.process.log[-2000:]}")
        page, websocket = f"https://127.0.0.1:{port}/app", f"wss://127.0.0.1:{port}/app/ws"
        yield Target(config, page, websocket, servers, nginx.process, str(nginx.certificate))


def wait_for_http(url: str, context: ssl.SSLContext, timeout: float = 15.0) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def capacity(rows: list[dict[str, Any]], bound_ms: float) -> dict[str, Any]:
    """Users per configuration at the p95 bound: the largest step within it."""
    within = [row["users"] for row in rows if row["p95_ms"] <= bound_ms]
    best = max(within, default=0)
    at = next((row for row in rows if row["users"] == best), None)
    return {
        "users": best,
        "at_least": bool(rows) and rows[-1]["p95_ms"] <= bound_ms,  # the ramp never passed the bound
        "first_document_p50_ms": at["first_document_p50_ms"] if at else None,
        "first_document_p95_ms": at["first_document_p95_ms"] if at else None,
        "server_cpu_percent": at["server_cpu_percent"] if at else None,
        "nginx_cpu_percent": at["nginx_cpu_percent"] if at else None,
        "loadgen_cpu_percent": at["loadgen_cpu_percent"] if at else None,
        "loadgen_lag_p95_ms": at["loadgen_lag_p95_ms"] if at else None,
        "server_rss_mb": at["server_rss_mb"] if at else None,
    }


def ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None) -> float | None:
    if not numerator or not denominator or not denominator["users"]:
        return None
    return round(numerator["users"] / denominator["users"], 2)


def summary_rows(capacities: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for config, cap in capacities.items():
        users = f"{'>= ' if cap['at_least'] else ''}{cap['users']}"
        first = (
            "-"
            if cap["first_document_p50_ms"] is None
            else (f"{cap['first_document_p50_ms']:.0f} / {cap['first_document_p95_ms']:.0f} ms")
        )
        cpu = (
            "-"
            if cap["server_cpu_percent"] is None
            else (
                f"{cap['server_cpu_percent']:.0f} % / {cap['nginx_cpu_percent']:.0f} % / "
                f"{cap['loadgen_cpu_percent']:.0f} %"
            )
        )
        rss = "-" if cap["server_rss_mb"] is None else f"{cap['server_rss_mb']:.0f} MB"
        rows.append([config, users, first, cpu, rss])
    return rows


def capacity_figure(results: dict[str, list[dict[str, Any]]], bound_ms: float, title: str) -> Any:
    from bokeh.layouts import column, row
    from bokeh.models import Div, Span
    from bokeh.plotting import figure

    colors = {"project": "#1f77b4", "bare": "#d62728", "nginx-1": "#2ca02c", "nginx-2": "#9467bd"}
    p95 = figure(title="p95 round trip (slider -> new plot data)", x_axis_label="concurrent users",
                 y_axis_label="ms (log)", y_axis_type="log", width=520, height=360)  # fmt: skip
    cpu = figure(title="CPU, % of one core (solid: servers, dashed: load generator)",
                 x_axis_label="concurrent users", y_axis_label="%", width=520, height=360)  # fmt: skip
    for config, rows in results.items():
        users = [row["users"] for row in rows]
        color = colors.get(config, "black")
        p95.line(
            users, [max(row["p95_ms"], 0.1) for row in rows], color=color, line_width=2.5, legend_label=config
        )
        p95.scatter(users, [max(row["p95_ms"], 0.1) for row in rows], color=color, size=7)
        cpu.line(
            users,
            [row["server_cpu_percent"] for row in rows],
            color=color,
            line_width=2.5,
            legend_label=config,
        )
        cpu.line(users, [row["loadgen_cpu_percent"] for row in rows], color=color, line_dash="dashed")
    p95.add_layout(Span(location=bound_ms, dimension="width", line_color="black", line_dash="dashed"))
    for plot in (p95, cpu):
        plot.legend.location = "top_left"
    return column(Div(text=f"<h3>{title}</h3>"), row(p95, cpu))


async def measure(config: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    with serving(config) as target:
        return await ramp(Load(target, args.slider, args.changed), args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", choices=CONFIGS,
                        help="default: all (the nginx ones when deploy/nginx.conf was baked)")  # fmt: skip
    steps = [10, 25, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600]
    parser.add_argument("--steps", type=int, nargs="+", default=steps, help="users at each step")
    parser.add_argument("--p95-ms", type=float, default=100.0, help="the round-trip bound")
    parser.add_argument("--window-s", type=float, default=15.0, help="measured window per step")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait after the users of a step joined")
    parser.add_argument("--probes", type=int, default=6, help="users joining during each window (first plot)")
    parser.add_argument("--slider", default="window", help="name of the model the users set")
    parser.add_argument("--changed", default="data", help="property the server changes in response")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON and HTML go")
    args = parser.parse_args(argv)
    if args.configs is None:
        args.configs = [
            config for config in CONFIGS if NGINX_CONF.is_file() or not config.startswith("nginx")
        ]
    elif any(config.startswith("nginx") for config in args.configs) and not NGINX_CONF.is_file():
        print(
            f"error: {NGINX_CONF} does not exist: bake with include_nginx to run nginx-1/nginx-2",
            file=sys.stderr,
        )
        return 2

    results: dict[str, list[dict[str, Any]]] = {}
    for config in args.configs:
        print(f"{config}:", flush=True)
        results[config] = asyncio.run(measure(config, args))
    capacities = {config: capacity(rows, args.p95_ms) for config, rows in results.items()}
    header = ["users", "p50", "p95", "timeouts", "first plot p50/p95", "CPU servers/nginx/loadgen", "RSS"]
    for config, rows in results.items():
        print(f"\n{config}")
        print(format_table(header, [[
            str(row["users"]), f"{row['p50_ms']:.0f} ms", f"{row['p95_ms']:.0f} ms", str(row["timeouts"]),
            f"{row['first_document_p50_ms']:.0f} / {row['first_document_p95_ms']:.0f} ms",
            cpu_text(row),
            f"{row['server_rss_mb']:.0f} MB",
        ] for row in rows]))  # fmt: skip
    print(f"\nUsers at p95 <= {args.p95_ms:g} ms (slider -> new plot data), {os.cpu_count()} CPUs")
    summary = ["config", "users", "first plot p50/p95", "CPU servers / nginx / load generator", "server RSS"]
    print(format_table(summary, summary_rows(capacities)))
    ratios = {
        "project_over_bare": ratio(capacities.get("project"), capacities.get("bare")),
        "nginx_2_over_1": ratio(capacities.get("nginx-2"), capacities.get("nginx-1")),
    }
    print(
        f"project / bare: {ratios['project_over_bare']}; "
        f"two processes / one behind nginx: {ratios['nginx_2_over_1']}"
    )

    import bokeh

    args.results_dir.mkdir(parents=True, exist_ok=True)
    sizes = {key: value for key, value in vars(args).items() if key != "results_dir"}
    report = {
        "bokeh": bokeh.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
        "args": sizes, "steps": results, "capacity": capacities, "ratios": ratios,
    }  # fmt: skip
    (args.results_dir / "capacity.json").write_text(json.dumps(report, indent=2) + "\n")
    title = (
        f"Users per process at p95 <= {args.p95_ms:g} ms: Bokeh {bokeh.__version__}, "
        f"Python {report['python']}, {report['cpus']} CPUs"
    )
    write_html(capacity_figure(results, args.p95_ms, title), args.results_dir / "capacity.html", title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
