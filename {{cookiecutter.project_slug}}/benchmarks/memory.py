"""Benchmark: what a Bokeh server's RSS does when sessions open, close and expire, and why.

A server can free every object of an ended session and still keep its memory: the data may sit in
a module-level registry (a leak), or glibc may keep the freed pages mapped (allocator retention).
Only the server process's RSS, measured from outside, shows what the operating system (and a
container memory limit) sees. This benchmark measures it, in one run, for:

1. Memory curves: N websocket sessions (``bokeh.client.pull_session``, each holding a working
   array of ``--payload-mb``) are opened, kept open, closed, then expire. A separate server
   process per variant, all with the same ``--unused-session-lifetime`` / ``--check-unused-sessions``;
   the server's RSS is sampled with psutil every ``--sample-ms``:

   * ``project``: this project's server, ``python -m <package> serve``;
   * ``naive``: ``benchmarks/apps/naive`` on plain ``bokeh serve``, the same figure and array per
     session kept in a module-level registry (``naive_registry.py``): the classic leak;
   * ``bare``: this project's app on plain ``bokeh serve`` (its app hooks still provide
     ``session_context.locals``, the cleanups and the batched ``malloc_trim``);
   * ``no-release``: as ``bare`` with ``<PACKAGE>_RELEASE_MEMORY=false``: every object is freed,
     but glibc keeps the freed arrays mapped.

   One warm-up session is opened, closed and expired first (imports, caches); the baseline is the
   RSS after it. Reported per variant: baseline, peak, RSS after expiry, retained (after -
   baseline), time from close to the last discard and to RSS settling within ``--tolerance-mb``
   of its final value.
2. Per-session memory by design: K sessions opened one by one and kept open, RSS after each, and
   the slope of a least-squares fit in MB per session, for the project's app (one read-only
   dataset per process, a small working array per session) and ``benchmarks/apps/copied`` (a
   copy of the full dataset in every session). ``--dataset-points`` scales the dataset of both
   (``<PACKAGE>_DATASET_POINTS``) so the difference is visible.

Run from the project root: ``python benchmarks/memory.py`` (``--help`` for sizes). It prints the
tables and writes ``benchmarks/results/memory.json`` and a Bokeh plot of the curves,
``benchmarks/results/memory.html``. ``benchmarks/report.py`` combines it with
``expiry_and_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.session_gate import WARM_UP_PREFIX
from {{ cookiecutter.package_name }}.server.settings import ENV_PREFIX, PACKAGE
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import (
    ServedProcess,
    bokeh_command,
    free_port,
    project_command,
    start_server,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
APPS = HERE / "apps"
MB = 2**20
#: A session's end, whichever log says it first: Bokeh 3.10 at debug level ("was successfully
#: discarded"; Bokeh 3.9 logs that at trace level only), this project's lifecycle hooks ("cleaned
#: up in") or the naive app's destroy callback ("session ... ended").
DISCARDED = re.compile(  # the project's warm-up sessions (at start, before any client) do not count
    rf"Session '?(?!{re.escape(WARM_UP_PREFIX)})([\w-]+)'? (?:was successfully discarded|cleaned up in)"
    r"|\(session ([\w-]+) ended\)"
)
REGISTRY = re.compile(r"naive registry holds (\d+) sessions, ([0-9.]+) MB")
LOG_TIME = re.compile(r"^(\d+\.\d+) ")

VARIANTS: dict[str, str] = {
    "project": "this project (python -m {pkg} serve)",
    "naive": "naive registry app (bokeh serve)",
    "bare": "project app on bare bokeh serve",
    "no-release": "bare bokeh serve, RELEASE_MEMORY=false",
}
EVENTS = ("opened", "closed", "expired")


@dataclass
class Server:
    """A server subprocess, its log lines (with the time each was logged) and an RSS sampler."""

    name: str
    served: ServedProcess
    app_path: str
    samples: list[tuple[float, float]] = field(default_factory=list)  # (wall time, RSS MB)
    sampling: threading.Event = field(default_factory=threading.Event)

    def url(self) -> str:
        return self.served.url(self.app_path)

    @property
    def lines(self) -> list[tuple[float, str]]:
        """(time logged, line): the time from the log format, else when the line was read."""
        return [
            (float(match[1]) if (match := LOG_TIME.match(line)) else at, line.rstrip())
            for at, line in list(self.served.logged)
        ]

    def discard_times(self) -> list[float]:
        """When each session ended (first log line naming it), in log order."""
        first: dict[str, float] = {}
        for at, line in self.lines:
            if match := DISCARDED.search(line):
                first.setdefault(match[1] or match[2], at)
        return list(first.values())

    def registry(self) -> tuple[int, float] | None:
        """(sessions, MB) the naive registry last reported holding, if it logged at all."""
        found = [match for _, line in self.lines if (match := REGISTRY.search(line))]
        return (int(found[-1][1]), float(found[-1][2])) if found else None

    def rss_mb(self) -> float:
        return self.served.rss_bytes() / MB


def start(name: str, app: Path | None, env: dict[str, str], lifetime_ms: int, check_ms: int) -> Server:
    """Start a server on a free port: ``python -m <package> serve`` when ``name`` starts with
    ``project``, else ``bokeh serve app``; wait until it listens."""
    port = free_port()
    flags = [
        "--address", "127.0.0.1",
        "--unused-session-lifetime", str(lifetime_ms), "--check-unused-sessions", str(check_ms),
        "--log-level", "debug", "--log-format", "%(created).3f %(levelname)s %(name)s %(message)s",
    ]  # fmt: skip
    if name.startswith("project"):
        command = project_command(port, *([] if app is None else [str(app)]), *flags)
    else:
        command = bokeh_command(APP_DIR if app is None else app, port, *flags)
    served = start_server(command, port, env=env)
    return Server(name, served, "/app" if app is None else f"/{app.name}")


def stop(server: Server) -> None:
    server.sampling.clear()
    server.served.stop(timeout=20)


def shown_command(server: Server) -> list[str]:
    """The server's command as a reader would type it from the project root: ``python``, paths
    relative to the project, no port number."""
    root = f"{HERE.parent}{os.sep}"
    shown = ["<port>" if part == str(server.served.port) else part for part in server.served.command[1:]]
    return ["python", *(part.removeprefix(root) for part in shown)]


def start_sampling(server: Server, interval_s: float) -> None:
    """Sample the server's RSS every ``interval_s`` until ``stop`` (or the process ends)."""
    server.sampling.set()

    def sample() -> None:
        while server.sampling.is_set():
            try:
                server.samples.append((time.time(), server.rss_mb()))
            except psutil.Error:
                return
            time.sleep(interval_s)

    threading.Thread(target=sample, name=f"{server.name}-rss", daemon=True).start()


def recent(server: Server, seconds: float) -> list[float]:
    now = time.time()
    return [mb for at, mb in list(server.samples) if at >= now - seconds]


def wait_stable(server: Server, window_s: float, tolerance_mb: float, timeout: float) -> float:
    """Wait until RSS stays within ``tolerance_mb`` for ``window_s``; return its median then."""
    started = time.time()

    def stable() -> bool:
        window = recent(server, window_s)
        return (
            time.time() - started >= window_s
            and len(window) >= 3
            and max(window) - min(window) <= tolerance_mb
        )

    wait_until(stable, timeout, interval=0.1)
    return statistics.median(recent(server, window_s) or [server.rss_mb()])


def open_sessions(server: Server, count: int) -> list[Any]:
    from bokeh.client import pull_session

    return [pull_session(url=server.url()) for _ in range(count)]


def close_sessions(clients: list[Any]) -> None:
    for client in clients:
        client.close()


def settle_seconds(
    samples: list[tuple[float, float]], closed: float, final: float, tolerance: float
) -> float:
    """Seconds from ``closed`` until RSS entered, and stayed in, ``final`` +- ``tolerance``."""
    after_close = [(at, mb) for at, mb in samples if at >= closed]
    settled_at = closed
    for index, (at, mb) in enumerate(after_close):
        if abs(mb - final) > tolerance:
            following = after_close[index + 1 : index + 2]
            settled_at = following[0][0] if following else at
    return settled_at - closed


def curve(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run part 1 for one variant; returns its figures and its RSS samples."""
    env = {ENV_PREFIX + "SESSION_PAYLOAD_MB": str(args.payload_mb)}
    app: Path | None = None
    if name == "naive":
        app = APPS / "naive"
    elif name in ("bare", "no-release"):
        app = APP_DIR
    if name == "no-release":
        env[ENV_PREFIX + "RELEASE_MEMORY"] = "false"
    server = start(name, app, env, args.lifetime_ms, args.check_ms)
    expire_timeout = (args.lifetime_ms + 2 * args.check_ms) / 1000 + args.expire_timeout_s
    try:
        start_sampling(server, args.sample_ms / 1000)
        close_sessions(open_sessions(server, args.warmup))
        wait_until(lambda: len(server.discard_times()) >= args.warmup, expire_timeout)
        baseline = wait_stable(server, args.stable_window_s, args.tolerance_mb, timeout=10.0)
        window_start = time.time() - args.stable_window_s

        opened = time.time()
        clients = open_sessions(server, args.sessions)
        all_open = time.time()
        time.sleep(args.hold_s)
        close_sessions(clients)
        closed = time.time()
        del clients
        expected = args.warmup + args.sessions
        all_expired = wait_until(lambda: len(server.discard_times()) >= expected, expire_timeout)
        discards = sorted(server.discard_times())
        expired = discards[expected - 1] if all_expired else time.time()
        time.sleep(args.tail_s)
        after = wait_stable(server, args.stable_window_s, args.tolerance_mb, timeout=args.tail_s)
        ended = time.time()
    finally:
        stop(server)
    samples = [(at, mb) for at, mb in server.samples if window_start <= at <= ended]
    peak = max(mb for at, mb in samples if at >= opened)
    registry = server.registry()
    return {
        "label": VARIANTS[name].format(pkg=PACKAGE),
        "command": shown_command(server),
        "baseline_mb": round(baseline, 1),
        "peak_mb": round(peak, 1),
        "after_mb": round(after, 1),
        "retained_mb": round(after - baseline, 1),
        "all_expired": all_expired,
        "close_to_expired_s": round(expired - closed, 2),
        "close_to_settled_s": round(settle_seconds(samples, closed, after, args.tolerance_mb), 2),
        "open_s": round(all_open - opened, 2),
        "registry_sessions": None if registry is None else registry[0],
        "registry_mb": None if registry is None else registry[1],
        "events": {
            "opened": 0.0,
            "all_open": round(all_open - opened, 2),
            "closed": round(closed - opened, 2),
            "expired": round(expired - opened, 2),
        },
        "t": [round(at - opened, 2) for at, _ in samples],
        "rss_mb": [round(mb, 1) for _, mb in samples],
    }


def per_session(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Part 2 for ``shared`` (the project's app) or ``copied``: RSS after each of K sessions."""
    env = {
        ENV_PREFIX + "SESSION_PAYLOAD_MB": str(args.per_session_payload_mb),
        ENV_PREFIX + "DATASET_POINTS": str(args.dataset_points),
    }
    app = APPS / "copied" if name == "copied" else None
    server = start(f"project-{name}", app, env, args.lifetime_ms, args.check_ms)
    expire_timeout = (args.lifetime_ms + 2 * args.check_ms) / 1000 + args.expire_timeout_s
    try:
        start_sampling(server, args.sample_ms / 1000)
        close_sessions(open_sessions(server, args.warmup))
        wait_until(lambda: len(server.discard_times()) >= args.warmup, expire_timeout)
        rss = [wait_stable(server, args.stable_window_s, args.tolerance_mb, timeout=10.0)]
        clients = []
        for _ in range(args.per_session):
            clients += open_sessions(server, 1)
            time.sleep(args.per_session_wait_s)
            rss.append(server.rss_mb())
        close_sessions(clients)
    finally:
        stop(server)
    counts = list(range(len(rss)))
    slope = statistics.linear_regression(counts, rss).slope if len(rss) >= 2 else float("nan")
    return {
        "mb_per_session": round(slope, 2),
        "rss_mb": [round(mb, 1) for mb in rss],
        "command": shown_command(server),
    }


def curves_figure(memory: dict[str, Any]) -> Any:
    """A Bokeh figure of RSS over time, one line per variant, markers where sessions were opened,
    closed and had all expired."""
    from bokeh.models import ColumnDataSource, HoverTool, Label, Legend, LegendItem, Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    args = memory["args"]
    curves: dict[str, Any] = memory["curves"]
    plot = figure(
        title=(
            f"Server RSS: {args['sessions']} websocket sessions x {args['payload_mb']:g} MB opened, "
            f"closed, expired (Bokeh {memory['bokeh']}, Python {memory['python']})"
        ),
        frame_width=1000,
        frame_height=420,
        x_axis_label="seconds since the sessions were opened",
        y_axis_label="server RSS (MB)",
        tools="pan,box_zoom,wheel_zoom,reset,save",
    )
    plot.y_range.start = 0  # type: ignore[attr-defined]  # proportions: RSS from zero
    colors = Category10[10]
    line_items = []
    markers: dict[str, dict[str, list[Any]]] = {
        event: {"t": [], "rss": [], "color": [], "variant": []} for event in EVENTS
    }
    for index, (name, row) in enumerate(curves.items()):
        color = colors[index % len(colors)]
        source = ColumnDataSource({"t": row["t"], "rss": row["rss_mb"], "variant": [name] * len(row["t"])})
        line = plot.line("t", "rss", source=source, color=color, line_width=2.5)
        line_items.append(
            LegendItem(label=f"{row['label']}: retained {row['retained_mb']:+.0f} MB", renderers=[line])
        )
        for event in EVENTS:
            at = row["events"][event]
            nearest = min(range(len(row["t"])), key=lambda i, at=at: abs(row["t"][i] - at))
            markers[event]["t"].append(at)
            markers[event]["rss"].append(row["rss_mb"][nearest])
            markers[event]["color"].append(color)
            markers[event]["variant"].append(name)
    shapes = {"opened": "triangle", "closed": "square", "expired": "circle"}
    texts = {"opened": "sessions opened", "closed": "sessions closed", "expired": "all sessions expired"}
    marker_items = []
    for event in EVENTS:
        scatter = plot.scatter(
            "t", "rss", source=ColumnDataSource(markers[event]), marker=shapes[event], size=13,
            fill_color="color", line_color="black", line_width=1,
        )  # fmt: skip
        marker_items.append(LegendItem(label=texts[event], renderers=[scatter]))
    first = next(iter(curves.values()), None)
    if first is not None:
        for event in ("opened", "closed"):
            at = first["events"][event]
            plot.add_layout(Span(location=at, dimension="height", line_color="gray", line_dash="dashed"))
            align = "left" if event == "opened" else "right"  # beside the curves, not on them
            plot.add_layout(
                Label(x=at, y=8, x_units="data", y_units="screen", text=f" {texts[event]} ",
                      text_align=align, text_color="gray", text_font_size="11pt")
            )  # fmt: skip
    plot.add_tools(HoverTool(tooltips=[("variant", "@variant"), ("t", "@t{0.0} s"), ("RSS", "@rss{0.0} MB")]))
    legend = Legend(items=line_items + marker_items, location="top_left", click_policy="hide")
    legend.label_text_font_size = "10pt"
    plot.add_layout(legend, "below")
    return plot


def write_html(obj: Any, path: Path, title: str) -> None:
    from bokeh.io import save
    from bokeh.resources import INLINE

    path.parent.mkdir(parents=True, exist_ok=True)
    save(obj, filename=str(path), resources=INLINE, title=title)  # inline JS: opens offline too


def format_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def curve_rows(memory: dict[str, Any]) -> list[list[str]]:
    return [
        [
            name,
            f"{row['baseline_mb']:.1f} MB",
            f"{row['peak_mb']:.1f} MB",
            f"{row['after_mb']:.1f} MB",
            f"{row['retained_mb']:+.1f} MB",
            f"{row['close_to_expired_s']:.2f} s" + ("" if row["all_expired"] else " (not all)"),
            settled_text(row, memory["args"]["tolerance_mb"]),
        ]
        for name, row in memory["curves"].items()
    ]


def settled_text(row: dict[str, Any], tolerance_mb: float) -> str:
    """Seconds from close until RSS settled; "never drops" when it settled at its peak."""
    if row["after_mb"] >= row["peak_mb"] - tolerance_mb:
        return "never drops"
    return f"{row['close_to_settled_s']:.2f} s"


CURVE_HEADER = ["variant", "baseline", "peak", "after expiry", "retained", "close->expired", "close->settled"]


def print_tables(memory: dict[str, Any]) -> None:
    args = memory["args"]
    print(
        f"\nMemory curves: {args['sessions']} websocket sessions x {args['payload_mb']:g} MB, "
        f"lifetime {args['lifetime_ms']} ms, check {args['check_ms']} ms "
        f"(Bokeh {memory['bokeh']}, Python {memory['python']}, {memory['cpus']} CPUs)"
    )
    print(format_table(CURVE_HEADER, curve_rows(memory)))
    for name, row in memory["curves"].items():
        if row["registry_sessions"] is not None:
            held = f"{row['registry_sessions']} sessions ({row['registry_mb']:.0f} MB)"
            print(f"{name}: after expiry its registry still held {held}")
    per = memory.get("per_session")
    if per:
        print(
            f"\nPer-session memory: {per['sessions']} sessions opened one by one, dataset "
            f"{per['dataset_points']:,} points ({per['dataset_mb']:.1f} MB), working array "
            f"{per['payload_mb']:g} MB per session"
        )
        rows = [
            [name, f"{per[name]['mb_per_session']:.1f} MB", f"{per[name]['rss_mb'][0]:.0f} MB",
             f"{per[name]['rss_mb'][-1]:.0f} MB"]
            for name in ("shared", "copied")
        ]  # fmt: skip
        print(format_table(["design", "per session", "RSS before", "RSS after"], rows))


def dumps(data: Any) -> str:
    """JSON with two-space indents, each list of numbers on one line (the RSS samples)."""
    text = json.dumps(data, indent=2)
    numbers = re.compile(r"\[\s*(-?[0-9.e+-]+(?:,\s*-?[0-9.e+-]+)*)\s*\]")
    return numbers.sub(lambda match: "[" + re.sub(r",\s*", ", ", match[1]) + "]", text) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=10, help="sessions per memory curve (default 10)")
    parser.add_argument(
        "--payload-mb", type=float, default=20.0, help="working array per session (default 20)"
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}"
    )
    parser.add_argument(
        "--lifetime-ms", type=int, default=1000, help="--unused-session-lifetime (default 1000)"
    )
    parser.add_argument("--check-ms", type=int, default=500, help="--check-unused-sessions (default 500)")
    parser.add_argument("--sample-ms", type=int, default=100, help="RSS sampling interval (default 100)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="warm-up sessions before the baseline (default 1)"
    )
    parser.add_argument(
        "--hold-s", type=float, default=2.0, help="seconds the sessions stay open (default 2)"
    )
    parser.add_argument("--tail-s", type=float, default=5.0, help="seconds sampled after expiry (default 5)")
    parser.add_argument("--stable-window-s", type=float, default=1.0, help="RSS stability window (default 1)")
    parser.add_argument("--tolerance-mb", type=float, default=2.0, help="RSS stability tolerance (default 2)")
    parser.add_argument(
        "--expire-timeout-s", type=float, default=60.0, help="extra wait for expiry (default 60)"
    )
    parser.add_argument(
        "--per-session",
        type=int,
        default=10,
        help="sessions of the per-session fit; 0 skips part 2 (default 10)",
    )
    parser.add_argument(
        "--per-session-payload-mb", type=float, default=2.0,
        help="working array per session in part 2 (default 2, the project's default)",
    )  # fmt: skip
    parser.add_argument(
        "--dataset-points", type=int, default=2_000_000,
        help="dataset size in part 2, shared or copied (default 2,000,000 = 30.5 MB)",
    )  # fmt: skip
    parser.add_argument(
        "--per-session-wait-s", type=float, default=0.5, help="wait after each open (default 0.5)"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where memory.json/.html go")
    args = parser.parse_args(argv)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}: choose from {','.join(VARIANTS)}")
    if args.sessions < 1 or args.warmup < 1:
        parser.error("--sessions and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    import bokeh

    args = parse_args(argv)
    memory: dict[str, Any] = {
        "bokeh": bokeh.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "args": {key: value for key, value in vars(args).items() if key != "results_dir"},
        "curves": {},
    }
    for name in args.variants.split(","):
        print(f"memory curve: {name} ...", flush=True)
        memory["curves"][name] = curve(name, args)
    if args.per_session > 0:
        memory["per_session"] = {
            "sessions": args.per_session,
            "payload_mb": args.per_session_payload_mb,
            "dataset_points": args.dataset_points,
            "dataset_mb": round(args.dataset_points * 16 / MB, 1),
        }
        for name in ("shared", "copied"):
            print(f"per-session memory: {name} ...", flush=True)
            memory["per_session"][name] = per_session(name, args)
    print_tables(memory)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "memory.json").write_text(dumps(memory))
    write_html(curves_figure(memory), args.results_dir / "memory.html", "Server RSS over session lifetime")
    print(f"\nwrote {args.results_dir / 'memory.json'} and {args.results_dir / 'memory.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
