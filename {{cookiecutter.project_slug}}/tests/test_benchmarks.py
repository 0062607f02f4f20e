"""Smoke tests of the benchmarks: they run end to end with tiny sizes and write what they promise.

The figures themselves need the full sizes and a quiet machine (see the README's Benchmarks
section), so nothing here is timed; these tests only keep the scripts from rotting: both server
kinds start, sessions open and expire, the naive registry really keeps its sessions, the tables
are printed and the JSON and HTML files are written. Marked ``benchmark`` (deselected by default,
to keep the default suite under a minute): ``pytest -m benchmark``; the template's CI runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TINY = [
    "--variants", "naive", "--sessions", "2", "--payload-mb", "1",
    "--lifetime-ms", "200", "--check-ms", "100", "--hold-s", "0.1", "--tail-s", "0.2",
    "--stable-window-s", "0.3", "--per-session", "2", "--per-session-wait-s", "0.1",
    "--dataset-points", "100000",
]  # fmt: skip
CURVE_KEYS = {
    "label", "command", "baseline_mb", "peak_mb", "after_mb", "retained_mb", "all_expired",
    "close_to_expired_s", "close_to_settled_s", "events", "t", "rss_mb", "registry_sessions",
}  # fmt: skip


def run_benchmark(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python benchmarks/<script> *args`` from the project root; it must exit 0."""
    command = [sys.executable, str(BENCHMARKS / script), *args]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=BENCHMARKS.parent
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    results = tmp_path_factory.mktemp("results")
    completed = run_benchmark("memory.py", *TINY, "--results-dir", str(results), timeout=90)
    return completed.stdout, results


def test_memory_benchmark_prints_tables_and_writes_json_and_plot(memory_run: tuple[str, Path]) -> None:
    stdout, results = memory_run
    assert "variant" in stdout and "retained" in stdout and "close->settled" in stdout
    assert "per session" in stdout

    memory = json.loads((results / "memory.json").read_text())
    assert {"bokeh", "python", "cpus", "args", "curves", "per_session"} <= memory.keys()
    naive = memory["curves"]["naive"]
    assert naive.keys() >= CURVE_KEYS
    assert set(naive["events"]) >= {"opened", "closed", "expired"}
    assert len(naive["t"]) == len(naive["rss_mb"]) > 0
    assert naive["all_expired"]
    # The registry is an imported module: it still holds the warm-up and both measured sessions.
    assert naive["registry_sessions"] == 3
    per = memory["per_session"]
    for design in ("shared", "copied"):
        assert len(per[design]["rss_mb"]) == 3
        assert isinstance(per[design]["mb_per_session"], float)
    assert "Bokeh" in (results / "memory.html").read_text()


def test_report_combines_results(memory_run: tuple[str, Path]) -> None:
    _, results = memory_run
    expiry = {
        "bokeh": "x", "python": "x", "cpus": 2, "args": {"batches": [200]},
        "expiry_sweep": {
            "project": [{"sessions": 200, "max_loop_lag_ms": 40.0, "time_to_empty_s": 0.2, "left_at_end": 0,
                         "empty_timeout_s": 60}],
            "bare": [{"sessions": 200, "max_loop_lag_ms": 400.0, "time_to_empty_s": None, "left_at_end": 3,
                      "empty_timeout_s": 60}],
        },
        "throughput": {
            "project_sessions_per_s": 8.0, "bare_sessions_per_s": 7.0, "ratio_project_over_bare": 1.14,
        },
    }  # fmt: skip
    (results / "expiry_and_throughput.json").write_text(json.dumps(expiry))
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "report.py"), "--from-results", "--results-dir", str(results)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "max loop lag 400 ms" in completed.stdout and "not empty after 60 s (3 left)" in completed.stdout
    assert "naive" in completed.stdout
    assert (results / "report.html").is_file()


def run_compare(reference: Path, results: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--reference", str(reference)]
    return subprocess.run(
        [*command, "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("reference", ["reference", "reference/bokeh-3.9"])
def test_compare_accepts_the_reference_run_itself(reference: str) -> None:
    completed = run_compare(BENCHMARKS / reference, BENCHMARKS / reference)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "DIFFERENT" not in completed.stdout and "within their noise bands" in completed.stdout


def test_compare_names_a_figure_outside_its_noise_band(tmp_path: Path) -> None:
    """The control for the test above: one figure moved well outside its band must be reported."""
    for name in ("memory.json", "expiry_and_throughput.json"):
        (tmp_path / name).write_text((BENCHMARKS / "reference" / name).read_text())
    memory = json.loads((tmp_path / "memory.json").read_text())
    memory["curves"]["project"]["retained_mb"] += 50.0  # a leak of 50 MB
    (tmp_path / "memory.json").write_text(json.dumps(memory))
    completed = run_compare(BENCHMARKS / "reference", tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "1 of" in completed.stdout and "memory project: retained" in completed.stdout


def test_compare_explains_missing_results(tmp_path: Path) -> None:
    completed = run_compare(BENCHMARKS / "reference", tmp_path)
    assert completed.returncode == 2
    assert "memory.json not found: run the benchmark" in completed.stderr


@pytest.mark.usefixtures("real_memory_limit")
def test_crowd_benchmark_runs_and_writes_its_report(tmp_path: Path) -> None:
    """Tiny crowd (6 sessions of 5 MB in 256 MiB): the figures are not the point, the script is."""
    tiny = ["--limit-mib", "256", "--crowd", "6", "--payload-mb", "5", "--threads", "2"]
    completed = run_benchmark("crowd.py", *tiny, "--results-dir", str(tmp_path), timeout=240)
    assert "admitted" in completed.stdout and "survived" in completed.stdout
    report = json.loads((tmp_path / "crowd.json").read_text())
    for kind in ("pages", "websockets"):
        for server in ("bare", "project"):
            row = report["results"][kind][server]
            assert row["attempted"] == 6 and row["admitted"] + row["refused"] + row["failed"] == 6
            assert row["samples"], "memory was sampled"
    assert "Bokeh" in (tmp_path / "crowd.html").read_text()


def test_expiry_sweep_runs_and_writes_its_report(tmp_path: Path) -> None:
    """Two tiny batches per server, each expiring at one check, the project's twice: the sweep's
    figures (medians of the runs) and plot exist."""
    tiny = [
        "--batches", "4", "8", "--repeats", "2", "--empty-timeout-s", "5", "--window-s", "1",
        "--check-margin-s", "1",
        "--throughput-sessions", "2", "--rounds", "1",
    ]  # fmt: skip
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "expiry_and_throughput.py"), *tiny, "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=BENCHMARKS.parent,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "worst stall" in completed.stdout and "time to empty" in completed.stdout
    report = json.loads((tmp_path / "expiry_and_throughput.json").read_text())
    for server in ("project", "bare"):
        runs = report["expiry_sweep"][server]
        assert [run["sessions"] for run in runs] == [4, 8]
        for run in runs:
            assert run["max_loop_lag_ms"] > 0 and run["left_at_end"] >= 0 and run["window_s"] >= 1
            assert len(run["runs"]) == (2 if server == "project" else 1)
            assert run["max_loop_lag_ms"] in [each["max_loop_lag_ms"] for each in run["runs"]]
    # The project empties a tiny batch at once; that is what its figure says.
    assert all(run["time_to_empty_s"] is not None for run in report["expiry_sweep"]["project"])
    assert "stall_ratio_largest_over_smallest" in report and report["throughput"]["rounds"] == 1
    assert "Bokeh" in (tmp_path / "expiry_sweep.html").read_text()


def test_capacity_benchmark_runs_and_writes_its_report(tmp_path: Path) -> None:
    """Two tiny steps per configuration (nginx ones when deploy/nginx.conf and nginx exist)."""
    from bokeh_dashboard_devtools.nginx import NGINX_CONF, nginx_binary

    configs = ["project", "bare"]
    if NGINX_CONF.is_file() and nginx_binary() is not None:
        configs += ["nginx-1", "nginx-2"]
    tiny = [
        "--configs",
        *configs,
        "--steps",
        "2",
        "4",
        # A user first moves the slider 2-4 s after joining: a window that ends after 4 s sees at
        # least one move of each user (3 s missed both users' first moves about 1 run in 16).
        "--window-s",
        "4",
        "--settle-s",
        "0.5",
        "--probes",
        "1",
    ]
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "capacity.py"), *tiny, "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Users at p95" in completed.stdout
    report = json.loads((tmp_path / "capacity.json").read_text())
    assert list(report["steps"]) == configs
    for config in configs:
        rows = report["steps"][config]
        assert rows and rows[0]["users"] == 2
        assert all(row["round_trips"] > 0 for row in rows), rows  # the server's data came back
        assert all(row["first_document_p95_ms"] > 0 for row in rows)
        assert report["capacity"][config]["users"] in (0, 2, 4)
    assert set(report["ratios"]) == {"project_over_bare", "nginx_2_over_1"}
    assert "Bokeh" in (tmp_path / "capacity.html").read_text()
