"""Benchmark: a crowd far beyond what a real memory limit holds, this project against bare Bokeh.

For each crowd kind (page GETs, then websocket clients), in the same run and under the same real
kernel memory limit (a memory cgroup, as a container has), bare ``bokeh serve`` of the project's
app and then ``python -m <package> serve`` get ``--crowd`` new sessions of ``--payload-mb`` each
(``<package>_devtools/crowd.py`` does the work). Reported per server: admitted, refused (503 with
Retry-After, or a websocket closed with 1013), failed, survived or OOM-killed (the group's
``oom_kill`` counter), peak memory charged to the group, and the seconds from the crowd's end to
``/readyz`` answering 200 again. The plot shows the memory charged over time against the limit.

Needs root and a memory cgroup (``memory_cgroup.py`` says why not, if not). Run from the project
root: ``python benchmarks/crowd.py`` (about a minute). Writes ``benchmarks/results/crowd.json``
and ``crowd.html``; ``python benchmarks/snapshot.py benchmarks/results/crowd.html
docs/benchmark-crowd.png`` makes the README image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from memory import format_table, write_html

from {{ cookiecutter.package_name }}.server.settings import ADMISSION_LIMIT_SHARE
from {{ cookiecutter.package_name }}_devtools.crowd import run_crowd
from {{ cookiecutter.package_name }}_devtools.memory_cgroup import cgroup_unavailable_reason

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20
SERVERS = ("bare", "project")
HEADER = ["kind", "server", "admitted", "refused", "failed", "outcome", "peak / limit", "ready again"]


def table_rows(results: dict[str, dict[str, dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for kind, servers in results.items():
        for server, row in servers.items():
            outcome = f"OOM-killed ({row['oom_kills']})" if row["killed"] else "survived"
            ready = "-" if row["recovered_s"] is None else f"{row['recovered_s']:.1f} s"
            peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f} / {row['limit_mb']:.0f} MiB"
            rows.append(
                [
                    kind,
                    server,
                    str(row["admitted"]),
                    str(row["refused"]),
                    str(row["failed"]),
                    outcome,
                    peak,
                    ready,
                ]
            )
    return rows


def until_killed(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The samples up to the kill: after it the group holds (almost) nothing."""
    peak = max((mib for _, mib in samples), default=0.0)
    peak_at = next((index for index, (_, mib) in enumerate(samples) if mib == peak), 0)
    after = next((index for index in range(peak_at, len(samples)) if samples[index][1] < 0.1 * peak), None)
    return samples if after is None else samples[:after]


def crowd_figure(kind: str, servers: dict[str, dict[str, Any]], limit_mib: float) -> Any:
    """Memory charged to the cgroup over time, one line per server, the limit as a red line."""
    from bokeh.models import Label, Span
    from bokeh.plotting import figure

    plot = figure(
        title=f"Crowd of {next(iter(servers.values()))['attempted']} new sessions as {kind}",
        x_axis_label="seconds since the server started",
        y_axis_label="memory charged to the cgroup (MiB)",
        height=360,
        sizing_mode="stretch_width",
    )
    colors = {"bare": "#d62728", "project": "#1f77b4"}
    for server, row in servers.items():
        samples = until_killed(row["samples"]) if row["killed"] else row["samples"]
        t = [at for at, _ in samples]
        mib = [value for _, value in samples]
        fate = "OOM-killed" if row["killed"] else "survived"
        label = f"{server}: {row['admitted']} admitted, {row['refused']} refused, {fate}"
        plot.line(t, mib, color=colors[server], line_width=2.5, legend_label=label)
        if row["killed"] and t:
            plot.scatter([t[-1]], [mib[-1]], marker="x", size=16, color=colors[server], line_width=3)
    for level, text, color in (
        (limit_mib, "memory limit", "black"),
        (ADMISSION_LIMIT_SHARE * limit_mib, "admission limit (default)", "#1f77b4"),
    ):
        plot.add_layout(Span(location=level, dimension="width", line_color=color, line_dash="dashed"))
        plot.add_layout(
            Label(
                x=5,
                y=level,
                x_units="screen",
                y_offset=-16,
                text=text,
                text_color=color,
                text_font_size="10pt",
            )
        )
    plot.y_range.start = 0
    plot.legend.location = "bottom_right"
    return plot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit-mib", type=int, default=512, help="the cgroup's memory limit")
    parser.add_argument("--payload-mb", type=float, default=20, help="working data per session")
    parser.add_argument("--crowd", type=int, default=100, help="new sessions per crowd")
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--kinds", nargs="+", default=["pages", "websockets"], choices=["pages", "websockets"]
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON and HTML go")
    args = parser.parse_args(argv)
    reason = cgroup_unavailable_reason()
    if reason is not None:
        print(f"error: no memory cgroup can be made here: {reason}", file=sys.stderr)
        return 2

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in args.kinds:
        results[kind] = {}
        for server in SERVERS:
            result = run_crowd(
                server, kind, args.crowd, limit_bytes=args.limit_mib * MIB, payload_mb=args.payload_mb,
                threads=args.threads,
            )  # fmt: skip
            results[kind][server] = {**result.row(), "samples": result.samples}
    title = (
        f"Crowd of {args.crowd} new sessions of {args.payload_mb:g} MB, "
        f"{args.limit_mib} MiB memory limit ({args.threads} clients at a time)"
    )
    print(f"\n{title}")
    print(format_table(HEADER, table_rows(results), left=2))

    import bokeh
    from bokeh.layouts import column

    args.results_dir.mkdir(parents=True, exist_ok=True)
    sizes = {key: value for key, value in vars(args).items() if key != "results_dir"}
    report = {"bokeh": bokeh.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
              "args": sizes, "results": results}  # fmt: skip
    (args.results_dir / "crowd.json").write_text(json.dumps(report, indent=2) + "\n")
    figures = [crowd_figure(kind, servers, args.limit_mib) for kind, servers in results.items()]
    write_html(column(*figures, sizing_mode="stretch_width"), args.results_dir / "crowd.html", title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
