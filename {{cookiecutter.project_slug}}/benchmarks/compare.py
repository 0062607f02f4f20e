"""Does a rerun reproduce the published figures? Compare benchmark results with a reference run.

The README's figures come from the JSON files in ``benchmarks/reference/`` (written by
``memory.py`` and ``expiry_and_throughput.py`` on the machine the README names, with Bokeh 3.10;
``reference/bokeh-3.9/`` holds the same run with Bokeh 3.9, the series Python 3.10 and 3.11 get).
This script reads those and the results of your last run (``benchmarks/results/``) and prints,
figure by figure, the reference, your value and whether the difference is inside that figure's
noise band. The bands are fixed here, from repeated runs on a quiet 2-core machine, not tuned per run:

* memory levels (baseline, peak, after expiry) and what is retained: within 10 % or 5 MB;
* per-session MB: within 15 % or 0.5 MB;
* throughput (sessions/s): within 25 %; the project/bare ratio within 0.2;
* loop lag and time to empty (per batch size of the sweep): within a factor of 3 (one scheduling
  hiccup doubles a lag), or both below a floor (100 ms, 1 s) where the difference means nothing to
  a user; a server that did not empty within the sweep's timeout must not empty in the rerun either.

Exit status 0 when every figure is inside its band, 1 when one is not, 2 when a file is missing.
Figures from another Bokeh or Python version are compared but flagged: Bokeh 3.9 and 3.10 differ
by design in the mass-expiry benchmark.

Run from the project root after the benchmarks: ``python benchmarks/compare.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FILES = ("memory.json", "expiry_and_throughput.json")


@dataclass(frozen=True)
class Band:
    """How far a rerun may land from the reference and still count as the same figure."""

    relative: float = 0.0  # fraction of the reference
    absolute: float = 0.0  # in the figure's unit
    factor: float = 0.0  # ratio either way (for lags and waits)
    floor: float = 0.0  # both at or below this: equal for any practical purpose

    def holds(self, reference: float, value: float) -> bool:
        if self.factor:
            if max(reference, value) <= self.floor:
                return True
            low, high = sorted((max(reference, 1e-9), max(value, 1e-9)))
            return high / low <= self.factor
        allowed = max(self.relative * abs(reference), self.absolute)
        return abs(value - reference) <= allowed

    def describe(self) -> str:
        if self.factor:
            return f"x{self.factor:g} (or both <= {self.floor:g})"
        parts = [f"{self.relative:.0%}"] if self.relative else []
        parts += [f"{self.absolute:g}"] if self.absolute else []
        return " or ".join(parts)


MEMORY_LEVEL = Band(relative=0.10, absolute=5.0)
PER_SESSION = Band(relative=0.15, absolute=0.5)
THROUGHPUT = Band(relative=0.25)
RATIO = Band(absolute=0.2)
LAG_MS = Band(factor=3.0, floor=100.0)
WAIT_S = Band(factor=3.0, floor=1.0)


@dataclass(frozen=True)
class Figure:
    """One published figure: where it comes from, its unit and its noise band."""

    name: str
    unit: str
    band: Band
    reference: float | None
    value: float | None

    @property
    def verdict(self) -> str:
        if self.reference is None and self.value is None:
            return "same"  # e.g. bare Bokeh never emptied, in both runs
        if self.reference is None or self.value is None:
            return "DIFFERENT"
        return "same" if self.band.holds(self.reference, self.value) else "DIFFERENT"


def memory_figures(reference: dict[str, Any], result: dict[str, Any]) -> Iterator[Figure]:
    for variant, ref_row in reference.get("curves", {}).items():
        row = result.get("curves", {}).get(variant, {})
        for key in ("baseline", "peak", "after", "retained"):
            field = f"{key}_mb"
            yield Figure(f"memory {variant}: {key}", "MB", MEMORY_LEVEL, ref_row.get(field), row.get(field))
    ref_per, per = reference.get("per_session") or {}, result.get("per_session") or {}
    for design in ("shared", "copied"):
        yield Figure(
            f"per-session memory: {design}",
            "MB",
            PER_SESSION,
            ref_per.get(design, {}).get("mb_per_session"),
            per.get(design, {}).get("mb_per_session"),
        )


def expiry_figures(reference: dict[str, Any], result: dict[str, Any]) -> Iterator[Figure]:
    for server, ref_runs in reference.get("expiry_sweep", {}).items():
        runs = {run["sessions"]: run for run in result.get("expiry_sweep", {}).get(server, [])}
        for ref_row in ref_runs:
            row = runs.get(ref_row["sessions"], {})
            for key, label, unit, band in (
                ("max_loop_lag_ms", "max loop lag", "ms", LAG_MS),
                ("time_to_empty_s", "time to empty", "s", WAIT_S),
            ):
                name = f"mass expiry {server} {ref_row['sessions']}: {label}"
                yield Figure(name, unit, band, ref_row.get(key), row.get(key))
    ref_rates, rates = reference.get("throughput", {}), result.get("throughput", {})
    for server in ("project", "bare"):
        key = f"{server}_sessions_per_s"
        yield Figure(f"throughput {server}", "sessions/s", THROUGHPUT, ref_rates.get(key), rates.get(key))
    key = "ratio_project_over_bare"
    yield Figure("throughput project/bare", "x", RATIO, ref_rates.get(key), rates.get(key))


def versions(data: dict[str, Any]) -> str:
    return f"Bokeh {data.get('bokeh')}, Python {data.get('python')}"


def load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / name
    return json.loads(path.read_text()) if path.is_file() else None  # type: ignore[no-any-return]


def default_reference() -> Path:
    """``reference/bokeh-<series>`` for the installed Bokeh when there is one, else ``reference``."""
    import bokeh

    series = ".".join(bokeh.__version__.split(".")[:2])
    specific = HERE / "reference" / f"bokeh-{series}"
    return specific if specific.is_dir() else HERE / "reference"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=default_reference(),
        help="the published run (default: reference/bokeh-<series> for this Bokeh, else reference)",
    )
    parser.add_argument("--results", type=Path, default=HERE / "results", help="your run")
    args = parser.parse_args(argv)

    figures: list[Figure] = []
    for name, collect in zip(FILES, (memory_figures, expiry_figures), strict=True):
        reference, result = load(args.reference, name), load(args.results, name)
        if reference is None or result is None:
            missing = args.reference / name if reference is None else args.results / name
            print(f"error: {missing} not found: run the benchmark that writes it first", file=sys.stderr)
            return 2
        if versions(reference) != versions(result):
            print(f"note: {name}: reference is {versions(reference)}, this run {versions(result)}")
        sizes = {key: value for key, value in reference.get("args", {}).items() if key != "results_dir"}
        changed = {key for key, value in sizes.items() if result.get("args", {}).get(key) != value}
        if changed:
            print(f"note: {name}: this run changed {', '.join(sorted(changed))}; figures scale with them")
        figures += collect(reference, result)

    width = max(len(figure.name) for figure in figures)
    print(f"{'figure'.ljust(width)}  {'reference':>12}  {'this run':>12}  {'noise band':<22}  verdict")
    for figure in figures:
        ref = "-" if figure.reference is None else f"{figure.reference:,.2f}"
        value = "-" if figure.value is None else f"{figure.value:,.2f}"
        print(
            f"{figure.name.ljust(width)}  {ref:>12}  {value:>12}  "
            f"{(figure.band.describe() + ' ' + figure.unit):<22}  {figure.verdict}"
        )
    different = [figure.name for figure in figures if figure.verdict != "same"]
    if different:
        outside = ", ".join(different)
        print(f"\n{len(different)} of {len(figures)} figures outside their noise band: {outside}")
        return 1
    print(f"\nall {len(figures)} figures within their noise bands of the reference run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
