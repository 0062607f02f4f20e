"""One report of this project's benchmarks: a combined table and one HTML page.

The memory benchmark (``memory.py``: RSS curves, per-session MB) and the operations benchmark
(``expiry_and_throughput.py``: event-loop stall during a mass expiry, time to empty, session
throughput) answer the same question from two sides, "does the server stay small and responsive
as sessions come and go?", so they are read together. This script runs both (or, with
``--from-results``, reads the JSON they last wrote), prints one table and writes
``benchmarks/results/report.html``: the memory curves plot, the combined table and bar charts.

Run from the project root: ``python benchmarks/report.py`` (about 30 minutes: the mass-expiry
sweep repeats each size and waits for bare Bokeh to empty) or ``python benchmarks/report.py --from-results``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MEMORY_JSON = "memory.json"
EXPIRY_JSON = "expiry_and_throughput.json"


def load_memory_module() -> ModuleType:
    """``benchmarks/memory.py``, for its plot and table helpers (this script's folder is on the path)."""
    import memory

    return memory


def run_benchmarks(results_dir: Path, memory_args: str, expiry_args: str) -> None:
    memory_command = [sys.executable, str(HERE / "memory.py"), *shlex.split(memory_args)]
    subprocess.run([*memory_command, "--results-dir", str(results_dir)], check=True)
    expiry_command = [sys.executable, str(HERE / "expiry_and_throughput.py"), *shlex.split(expiry_args)]
    subprocess.run([*expiry_command, "--results-dir", str(results_dir)], check=True)


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        print(f"note: {path} not found; run the benchmark that writes it", file=sys.stderr)
        return None
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def combined_rows(memory: dict[str, Any] | None, expiry: dict[str, Any] | None) -> list[list[str]]:
    """[benchmark, variant, figures] for everything both benchmarks measured."""
    rows: list[list[str]] = []
    if memory is not None:
        args = memory["args"]
        title = f"memory: {args['sessions']} x {args['payload_mb']:g} MB sessions"
        for name, row in memory["curves"].items():
            levels = (
                ", ".join(f"{key} {row[key + '_mb']:.0f}" for key in ("baseline", "peak", "after")) + " MB"
            )
            settled = load_memory_module().settled_text(row, args["tolerance_mb"])
            settled = settled if settled == "never drops" else f"settled {settled} after close"
            rows.append([title, name, f"retained {row['retained_mb']:+.1f} MB ({levels}); {settled}"])
        per = memory.get("per_session")
        if per:
            title = f"memory per session: {per['dataset_mb']:.0f} MB dataset"
            for name in ("shared", "copied"):
                rows.append([title, name, f"{per[name]['mb_per_session']:.1f} MB per session"])
    if expiry is not None:
        for name, runs in expiry["expiry_sweep"].items():
            for row in runs:
                empty = row["time_to_empty_s"]
                emptied = (
                    f"{empty:.2f} s"
                    if empty is not None
                    else f"not empty after {row['empty_timeout_s']:g} s ({row['left_at_end']} left)"
                )
                title = f"mass expiry: {row['sessions']} idle sessions"
                rows.append(
                    [title, name, f"max loop lag {row['max_loop_lag_ms']:.0f} ms, time to empty {emptied}"]
                )
        rates = expiry["throughput"]
        title = "throughput: websocket open+close"
        ratio = rates["ratio_project_over_bare"]
        rows.append(
            [title, "project", f"{rates['project_sessions_per_s']:.1f} sessions/s ({ratio:.2f} x bare)"]
        )
        rows.append([title, "bare", f"{rates['bare_sessions_per_s']:.1f} sessions/s"])
    return rows


def bar_chart(title: str, names: list[str], values: list[float], unit: str) -> Any:
    from bokeh.models import ColumnDataSource, LabelSet
    from bokeh.plotting import figure

    source = ColumnDataSource(
        {"name": names, "value": values, "text": [f"{value:,.1f} {unit}" for value in values]}
    )
    plot = figure(
        title=title, y_range=list(reversed(names)), frame_width=360, frame_height=40 * len(names) + 20,
        toolbar_location=None, x_axis_label=unit,
    )  # fmt: skip
    plot.hbar(y="name", right="value", height=0.6, source=source, color="#1f77b4")
    plot.add_layout(LabelSet(x="value", y="name", text="text", source=source, x_offset=4, y_offset=-7,
                             text_font_size="9pt"))  # fmt: skip
    plot.x_range.start = 0  # type: ignore[attr-defined]
    plot.x_range.range_padding = 0.6  # type: ignore[attr-defined]  # room for the value labels
    return plot


def report_page(memory: dict[str, Any] | None, expiry: dict[str, Any] | None, rows: list[list[str]]) -> Any:
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn

    parts: list[Any] = []
    source = memory or expiry or {}
    parts.append(
        Div(
            text=f"<h2>Benchmarks</h2><p>Bokeh {source.get('bokeh')}, Python {source.get('python')}, "
            f"{source.get('cpus')} CPUs. <code>python benchmarks/memory.py</code> and "
            "<code>python benchmarks/expiry_and_throughput.py</code>.</p>"
        )
    )
    if memory is not None:
        parts.append(load_memory_module().curves_figure(memory))
    table = ColumnDataSource(
        {key: [row[index] for row in rows] for index, key in enumerate(("bench", "variant", "figures"))}
    )
    columns = [
        TableColumn(field="bench", title="benchmark", width=260),
        TableColumn(field="variant", title="variant", width=90),
        TableColumn(field="figures", title="figures", width=650),
    ]
    parts.append(
        DataTable(source=table, columns=columns, width=1000, height=28 * len(rows) + 30, index_position=None)
    )
    charts: list[tuple[str, list[str], list[float], str]] = []
    if memory is not None:
        curves = memory["curves"]
        retained = [row["retained_mb"] for row in curves.values()]
        charts.append(("memory retained after expiry", list(curves), retained, "MB"))
        per = memory.get("per_session")
        if per:
            designs = ["shared", "copied"]
            per_session = [per[name]["mb_per_session"] for name in designs]
            charts.append(("memory per session", designs, per_session, "MB"))
    if expiry is not None:
        runs = [(name, row) for name, rows in expiry["expiry_sweep"].items() for row in rows]
        names = [f"{name}, {row['sessions']} sessions" for name, row in runs]
        lags = [row["max_loop_lag_ms"] for _, row in runs]
        charts.append(("largest event-loop stall, mass expiry", names, lags, "ms"))
        rates = expiry["throughput"]
        throughput = [rates["project_sessions_per_s"], rates["bare_sessions_per_s"]]
        charts.append(("session open+close throughput", ["project", "bare"], throughput, "per s"))
    bars = [bar_chart(*chart) for chart in charts]
    parts += [row(*bars[index : index + 2]) for index in range(0, len(bars), 2)]  # two per row
    return column(*parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--from-results", action="store_true", help="read the JSON, run nothing")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="JSON in, report.html out")
    parser.add_argument("--memory-args", default="", help="extra arguments for memory.py, one string")
    parser.add_argument("--expiry-args", default="", help="extra arguments for expiry_and_throughput.py")
    args = parser.parse_args(argv)
    if not args.from_results:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        run_benchmarks(args.results_dir, args.memory_args, args.expiry_args)
    memory = read_json(args.results_dir / MEMORY_JSON)
    expiry = read_json(args.results_dir / EXPIRY_JSON)
    if memory is None and expiry is None:
        print("no results to report", file=sys.stderr)
        return 1
    rows = combined_rows(memory, expiry)
    memory_module = load_memory_module()
    print("\nCombined benchmark report")
    print(memory_module.format_table(["benchmark", "variant", "figures"], rows, left=3))
    path = args.results_dir / "report.html"
    memory_module.write_html(report_page(memory, expiry, rows), path, "Benchmark report")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
