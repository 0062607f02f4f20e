"""Watch the RSS of running Bokeh server processes: the guide's ``monitor_memory.py``, made usable.

The guide's loop matches ``'bokeh'`` in the *process name*, which finds nothing when the server
runs as ``python -m <package> serve`` (the name is ``python``). This monitor matches the *command
line* instead (``-m <package> serve``, ``bokeh serve``, ``bokeh.__main__ serve``, or ``--match
REGEX``; ``--pid PID`` watches given processes), prints one JSON line per process per tick so the
output can be piped into any log collector, can fail a check when RSS passes a threshold, and can
draw the RSS history as a Bokeh chart.

``sessions`` comes from the server's ``/metrics`` endpoint (Prometheus text, ``bokeh_sessions_live``)
on ``127.0.0.1:<--port>`` and is ``null`` when that endpoint is unreachable or lacks the metric.
With ``--num-procs N`` Bokeh forks N children that accept on one shared socket: a request to the
port reaches an arbitrary child, so the count cannot be attributed to a process and is ``null``
for the forked children and for their parent (which serves nothing itself).

The file depends only on the standard library and ``psutil`` (``bokeh`` is imported for ``--plot``
only), so it also runs on its own: ``python path/to/monitor.py --once``. Where the project is
importable it takes the package name and default port from the project's settings.
Run it as ``python monitor_memory.py`` (the guide's name) or ``python -m <package>_devtools.monitor``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

try:  # the project's settings: its package name and port (plain Python, no Bokeh import)
    from {{ cookiecutter.package_name }}.server import settings as project_settings
except ImportError:  # this file run on its own, outside the project's environment
    project_settings = None  # type: ignore[assignment]

#: The ``--help`` description.
DESCRIPTION = (
    "Print one JSON line per Bokeh server process per tick (time, pid, rss_mb, sessions, cmd). "
    "Servers are found by command line (python -m <package> serve, bokeh serve) unless --match or "
    "--pid name them; sessions is read from the server's /metrics and is null when unavailable. "
    "Exit codes: 0 ok, 1 no server process found, 2 RSS above --threshold-mb."
)
BOKEH_DEFAULT_PORT = 5006
METRICS_TIMEOUT_S = 0.5
SESSIONS_METRIC = "bokeh_sessions_live"
EXIT_OK, EXIT_NOT_FOUND, EXIT_THRESHOLD = 0, 1, 2

_PYTHON = re.compile(r"^(python|pypy)[0-9.]*w?(\.exe)?$")
# Interpreter options that take a value as the next argument (``-X dev``, ``-W error``).
_PYTHON_OPTIONS_WITH_VALUE = {"-X", "-W", "--check-hash-based-pycs"}
_BOKEH_SCRIPTS = {"bokeh", "bokeh.exe", "bokeh-script.py"}
# A Prometheus text sample: name, optional {labels} (quoted values may hold "}" and escapes), value.
_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(?P<value>\S+)'
)


# --- the project this file belongs to (optional) -------------------------------------------------


@dataclass(frozen=True)
class ProjectDefaults:
    """What the monitor knows about the project: its package (for ``-m <package> serve``) and port."""

    package: str | None = None
    port: int = BOKEH_DEFAULT_PORT


def project_defaults() -> ProjectDefaults:
    """Package name and port from the project's settings; Bokeh's defaults outside the project."""
    if project_settings is None:
        return ProjectDefaults()
    try:
        port = int(project_settings.get_settings().port)
    except project_settings.SettingsError:  # a bad env override: the server would not start either
        port = int(project_settings.ANSWERS["port"])
    return ProjectDefaults(package=project_settings.PACKAGE, port=port)


# --- pure functions on command lines and metrics text ----------------------------------------------


def _entry_point(argv: Sequence[str]) -> tuple[str, str, list[str]] | None:
    """What ``argv`` runs: ``("module", name, rest)`` or ``("script", path, rest)``; None for ``-c``."""
    if not argv:
        return None
    if not _PYTHON.match(os.path.basename(argv[0])):
        return "script", argv[0], list(argv[1:])
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "-m":
            return ("module", argv[index + 1], list(argv[index + 2 :])) if index + 1 < len(argv) else None
        if arg.startswith("-m"):
            return "module", arg[2:], list(argv[index + 1 :])
        if arg.startswith("-c"):
            return None
        if not arg.startswith("-") or arg == "-":
            return "script", arg, list(argv[index + 1 :])
        index += 2 if arg in _PYTHON_OPTIONS_WITH_VALUE else 1
    return None


def _subcommand(rest: Sequence[str]) -> str | None:
    return next((arg for arg in rest if not arg.startswith("-")), None)


def is_bokeh_server(argv: Sequence[str], package: str | None = None) -> bool:
    """Whether ``argv`` runs a Bokeh server: ``-m <package> serve``, ``bokeh serve``, ``-m bokeh serve``.

    The project's console script (``<project-slug> serve``) counts when its name is the package's
    with ``-`` for ``_``.
    """
    entry = _entry_point(argv)
    if entry is None:
        return False
    kind, target, rest = entry
    if _subcommand(rest) != "serve":
        return False
    if kind == "module":
        modules = {"bokeh", "bokeh.__main__"}
        if package:
            modules |= {package, f"{package}.__main__"}
        return target in modules
    script = os.path.basename(target)
    if script in _BOKEH_SCRIPTS or target.replace("\\", "/").endswith("bokeh/__main__.py"):
        return True
    if package and script.replace("-", "_") == package:
        return True
    return bool(package) and target.replace("\\", "/").endswith(f"{package}/__main__.py")


def matches_pattern(argv: Sequence[str], pattern: re.Pattern[str]) -> bool:
    """Whether ``pattern`` is found in the command line joined with spaces."""
    return bool(argv) and pattern.search(" ".join(argv)) is not None


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in ``argv`` (the last one wins, like argparse)."""
    value = None
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def server_port(argv: Sequence[str], defaults: ProjectDefaults) -> int | None:
    """The port the server in ``argv`` listens on; None when it cannot be known (``--port 0``)."""
    raw = flag_value(argv, "--port")
    if raw is None:
        entry = _entry_point(argv)
        ours = entry is not None and defaults.package is not None and not _is_plain_bokeh(entry)
        return defaults.port if ours else BOKEH_DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def _is_plain_bokeh(entry: tuple[str, str, list[str]]) -> bool:
    kind, target, _ = entry
    if kind == "module":
        return target in {"bokeh", "bokeh.__main__"}
    return os.path.basename(target) in _BOKEH_SCRIPTS or target.endswith("bokeh/__main__.py")


def metrics_url(argv: Sequence[str], port: int) -> str:
    """``http://127.0.0.1:<port><prefix>/metrics``, with Bokeh's ``--prefix`` normalisation."""
    prefix = (flag_value(argv, "--prefix") or "").strip("/")
    return f"http://127.0.0.1:{port}{'/' + prefix if prefix else ''}/metrics"


def parse_metric(text: str, name: str = SESSIONS_METRIC) -> float | None:
    """The value of metric ``name`` in Prometheus text exposition; samples with labels are summed.

    None when the metric has no sample. Comments, other metrics (also ``name_total`` and the like)
    and optional timestamps after the value are ignored.
    """
    total: float | None = None
    for line in text.splitlines():
        sample = _SAMPLE.match(line.strip())
        if sample is None or sample["name"] != name:
            continue
        try:
            value = float(sample["value"])
        except ValueError:
            continue
        total = value if total is None else total + value
    return total


def short_command(argv: Sequence[str], limit: int = 100) -> str:
    """The command line with the interpreter and script shown by their base names, at most ``limit`` chars."""
    parts = list(argv)
    if parts:
        parts[0] = os.path.basename(parts[0])
        if _PYTHON.match(parts[0]) and len(parts) > 1 and os.path.isabs(parts[1]):
            parts[1] = os.path.basename(parts[1])
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ProcessInfo:
    """The little the selection needs to know about a process."""

    pid: int
    ppid: int
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Watched:
    """A selected server process. ``forked``: part of a ``--num-procs`` group (no per-process sessions)."""

    pid: int
    argv: tuple[str, ...]
    forked: bool = False


def select_servers(
    processes: Iterable[ProcessInfo],
    *,
    package: str | None,
    pattern: re.Pattern[str] | None = None,
    pids: Iterable[int] = (),
    exclude: Iterable[int] = (),
) -> list[Watched]:
    """Pick the server processes out of ``processes``.

    With ``pids`` or ``pattern`` only those processes (by pid, or by regex on the command line) are
    selected, otherwise every process :func:`is_bokeh_server` recognises. Children of a selected
    process with the same command line (Bokeh's ``--num-procs`` forks) are added, and they and their
    parent are marked ``forked``. ``exclude`` (the monitor and its ancestors) is never selected.
    """
    table = {process.pid: process for process in processes}
    excluded = set(exclude)
    wanted = set(pids)
    roots = {
        pid
        for pid, process in table.items()
        if pid not in excluded
        and (
            pid in wanted
            or (pattern is not None and matches_pattern(process.argv, pattern))
            or (not wanted and pattern is None and is_bokeh_server(process.argv, package))
        )
    }
    children = {
        pid
        for pid, process in table.items()
        if pid not in excluded
        and process.ppid in roots
        and process.argv
        and process.argv == table[process.ppid].argv
    }
    parents = {table[pid].ppid for pid in children}
    return [
        Watched(pid=pid, argv=table[pid].argv, forked=pid in children or pid in parents)
        for pid in sorted(roots | children)
    ]


# --- reading the live system -----------------------------------------------------------------------


def _process_table() -> list[ProcessInfo]:
    table = []
    for process in psutil.process_iter(["pid", "ppid", "cmdline"]):
        info = process.info
        table.append(ProcessInfo(int(info["pid"]), int(info["ppid"] or 0), tuple(info["cmdline"] or ())))
    return table


def _self_and_ancestors() -> set[int]:
    """This process and its ancestors: a ``--match`` regex is also in their command lines."""
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids |= {parent.pid for parent in psutil.Process().parents()}
    return pids


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read_sessions(url: str, timeout: float = METRICS_TIMEOUT_S) -> int | None:
    """``bokeh_sessions_live`` from the ``/metrics`` page at ``url``; None if unreachable or absent."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            text = response.read(1 << 20).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    value = parse_metric(text)
    return round(value) if value is not None and math.isfinite(value) else None


@dataclass
class Monitor:
    """One run: which processes to watch, what was seen, whether the threshold was crossed."""

    defaults: ProjectDefaults
    pattern: re.Pattern[str] | None = None
    pids: tuple[int, ...] = ()
    threshold_mb: float | None = None
    history: dict[int, list[tuple[datetime, float]]] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    found_any: bool = False
    exceeded: bool = False

    def tick(self) -> list[dict[str, object]]:
        """Measure every watched process once; print and return one record per process."""
        watched = select_servers(
            _process_table(),
            package=self.defaults.package,
            pattern=self.pattern,
            pids=self.pids,
            exclude=_self_and_ancestors(),
        )
        sessions_by_url: dict[str, int | None] = {}
        records: list[dict[str, object]] = []
        over: list[str] = []
        for server in watched:
            try:
                rss = psutil.Process(server.pid).memory_info().rss
            except psutil.Error:  # gone since the scan, or not ours to read
                continue
            sessions = None
            port = server_port(server.argv, self.defaults)
            if not server.forked and port is not None:
                url = metrics_url(server.argv, port)
                if url not in sessions_by_url:
                    sessions_by_url[url] = read_sessions(url)
                sessions = sessions_by_url[url]
            stamp = datetime.now().astimezone()
            rss_mb = round(rss / 2**20, 1)
            record: dict[str, object] = {
                "time": stamp.isoformat(timespec="milliseconds"),
                "pid": server.pid,
                "rss_mb": rss_mb,
                "sessions": sessions,
                "cmd": short_command(server.argv),
            }
            print(json.dumps(record), flush=True)
            records.append(record)
            self.history.setdefault(server.pid, []).append((stamp.replace(tzinfo=None), rss / 2**20))
            self.labels.setdefault(server.pid, f"pid {server.pid}: {short_command(server.argv, 60)}")
            if self.threshold_mb is not None and rss_mb > self.threshold_mb:
                over.append(
                    f"RSS threshold exceeded: pid {server.pid} uses {rss_mb} MB"
                    f" > {self.threshold_mb:g} MB ({record['cmd']})"
                )
        self.found_any = self.found_any or bool(records)
        self.exceeded = self.exceeded or bool(over)
        for line in over if records else [f"error: {self.not_found_message()}"]:
            print(line, file=sys.stderr, flush=True)
        return records

    def not_found_message(self) -> str:
        if self.pids or self.pattern is not None:
            what = " or ".join(
                ([f"pid {', '.join(map(str, self.pids))}"] if self.pids else [])
                + ([f"a command line matching {self.pattern.pattern!r}"] if self.pattern else [])
            )
            return f"no Bokeh server process found ({what})"
        looked_for = [f"python -m {self.defaults.package} serve"] if self.defaults.package else []
        looked_for += ["bokeh serve", "python -m bokeh serve"]
        return (
            f"no Bokeh server process found (looked for {', '.join(looked_for)}); "
            "use --match REGEX or --pid PID to name it"
        )


def write_plot(
    path: str | os.PathLike[str],
    history: dict[int, list[tuple[datetime, float]]],
    labels: dict[int, str],
    threshold_mb: float | None = None,
) -> None:
    """Save an HTML chart of RSS over time, one line per pid; the threshold as a dashed line."""
    # file_html, not output_file + save: a Bokeh server in this process swaps bokeh.io's output
    # functions while a session's main.py runs, and a bokeh.plotting first imported then keeps
    # the swapped ones (which only log).
    from bokeh.embed import file_html
    from bokeh.models import Span
    from bokeh.palettes import Category10_10
    from bokeh.plotting import figure
    from bokeh.resources import CDN

    title = "Bokeh server RSS (MB)"
    if threshold_mb is not None:
        title += f", threshold {threshold_mb:g} MB"
    plot = figure(
        title=title,
        x_axis_type="datetime",
        x_axis_label="local time",
        y_axis_label="RSS (MB)",
        height=450,
        sizing_mode="stretch_width",
    )
    for color, pid in zip(itertools.cycle(Category10_10), sorted(history)):
        times = [stamp for stamp, _ in history[pid]]
        rss = [value for _, value in history[pid]]
        label = labels.get(pid, f"pid {pid}")
        plot.line(times, rss, color=color, line_width=2, legend_label=label)
        plot.scatter(times, rss, color=color, size=5, legend_label=label)
    plot.y_range.start = 0
    if threshold_mb is not None:
        plot.add_layout(Span(location=threshold_mb, dimension="width", line_color="red", line_dash="dashed"))
        highest = max((value for points in history.values() for _, value in points), default=0.0)
        if threshold_mb >= highest:
            plot.y_range.end = threshold_mb * 1.1
    if history:
        plot.legend.location = "top_left"
        plot.legend.click_policy = "hide"
    Path(path).write_text(file_html(plot, resources=CDN, title=title), encoding="utf-8")


# --- command line ---------------------------------------------------------------------------------


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
    return value


def _regex(raw: str) -> re.Pattern[str]:
    try:
        return re.compile(raw)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"invalid regex {raw!r}: {error}") from None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the monitor's options to ``parser`` (its own, or the ``monitor`` subcommand's)."""
    parser.add_argument(
        "--interval", type=_positive_float, default=60.0, metavar="SECONDS", help="between ticks (60)"
    )
    parser.add_argument("--once", action="store_true", help="one tick, then exit (1 if nothing found)")
    parser.add_argument("--count", type=_positive_int, metavar="N", help="stop after N ticks")
    parser.add_argument(
        "--threshold-mb",
        type=_positive_float,
        metavar="MB",
        help="exit with code 2 after a tick in which a process used more RSS than this",
    )
    parser.add_argument("--plot", metavar="FILE.html", help="on exit, save a Bokeh chart of RSS over time")
    parser.add_argument(
        "--match",
        type=_regex,
        metavar="REGEX",
        help="watch processes whose command line matches REGEX (instead of the built-in patterns)",
    )
    parser.add_argument(
        "--pid",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="watch this process (repeatable; instead of the built-in patterns)",
    )
    return parser


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``python monitor.py``."""
    return add_arguments(argparse.ArgumentParser(prog=prog, description=DESCRIPTION))


def run(args: argparse.Namespace) -> int:
    """Monitor until ``--once``/``--count`` ends, the threshold is crossed or Ctrl-C; the exit code."""
    monitor = Monitor(
        defaults=project_defaults(),
        pattern=args.match,
        pids=tuple(args.pid),
        threshold_mb=args.threshold_mb,
    )
    ticks = 1 if args.once else args.count
    next_tick = time.monotonic()
    try:
        for done in itertools.count(1):
            monitor.tick()
            if monitor.exceeded or (ticks is not None and done >= ticks):
                break
            next_tick += args.interval
            time.sleep(max(0.0, next_tick - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        if args.plot:
            write_plot(args.plot, monitor.history, monitor.labels, args.threshold_mb)
            print(f"RSS chart written to {args.plot}", file=sys.stderr)
    if monitor.exceeded:
        return EXIT_THRESHOLD
    return EXIT_OK if monitor.found_any else EXIT_NOT_FOUND


def main(argv: Sequence[str] | None = None) -> int:
    """``python monitor.py [options]``; returns the exit code."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
