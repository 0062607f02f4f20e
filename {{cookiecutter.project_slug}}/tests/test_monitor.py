"""The psutil monitor: command-line matching and /metrics parsing, then against a real server process."""

from __future__ import annotations

import http.server
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.server.settings import PACKAGE
from {{ cookiecutter.package_name }}_devtools import monitor
from {{ cookiecutter.package_name }}_devtools.serving import ServedProcess, free_port, project_server

PROJECT_DIR = Path(__file__).resolve().parent.parent
MONITOR_MODULE = monitor.__name__
MATCHES_NOTHING = r"^no-such-server-[0-9]{40}$"

SAMPLE_METRICS = """\
# HELP bokeh_sessions_live Sessions the server holds now.
# TYPE bokeh_sessions_live gauge
bokeh_sessions_live 3
# HELP bokeh_sessions_live_total Not the same metric.
bokeh_sessions_live_total 99
bokeh_sessions_created_total 42
process_resident_memory_bytes 1.2e+08
"""


# --- pure functions --------------------------------------------------------------------------------


def test_parse_metric_reads_the_sample_value() -> None:
    assert monitor.parse_metric(SAMPLE_METRICS) == 3
    assert monitor.parse_metric(SAMPLE_METRICS, "bokeh_sessions_created_total") == 42
    assert monitor.parse_metric(SAMPLE_METRICS, "process_resident_memory_bytes") == 1.2e8


def test_parse_metric_sums_labelled_samples_and_ignores_timestamps() -> None:
    text = 'bokeh_sessions_live{app="/a"} 2 1700000000000\nbokeh_sessions_live{app="/b",x="}"} 5\n'
    assert monitor.parse_metric(text) == 7


@pytest.mark.parametrize(
    "text",
    ["", "# HELP bokeh_sessions_live a comment\n", "bokeh_sessions_live_total 4\n", "bokeh_sessions_live\n"],
)
def test_parse_metric_is_none_without_a_sample(text: str) -> None:
    assert monitor.parse_metric(text) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["/srv/.venv/bin/python", "-m", "pkg", "serve", "--port", "5006"],
        ["python3.12", "-X", "dev", "-u", "-m", "pkg", "serve"],
        ["python", "-mpkg", "serve"],
        ["python", "-m", "pkg.__main__", "serve"],
        ["/srv/.venv/bin/python", "/srv/.venv/bin/bokeh", "serve", "app", "--num-procs", "2"],
        ["/usr/local/bin/bokeh", "serve", "--show", "app.py"],
        ["python", "-m", "bokeh", "serve", "app"],
        ["python", "-m", "bokeh.__main__", "serve", "app"],
        ["python", "/x/site-packages/bokeh/__main__.py", "serve"],
        ["/srv/.venv/bin/python", "/srv/.venv/bin/pkg", "serve"],
    ],
)
def test_server_command_lines_are_recognised(argv: list[str]) -> None:
    assert monitor.is_bokeh_server(argv, package="pkg")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["python", "-m", "pkg", "monitor", "--once"],
        ["python", "-m", "pytest", "-k", "serve"],
        ["python", "-c", "import bokeh; serve"],
        ["bash", "-c", "bokeh serve app"],
        ["timeout", "8", "python", "-m", "pkg", "serve"],
        ["vim", "bokeh", "serve"],
        ["python", "-m", "bokeh", "info"],
        ["python", "-m", "bokehx", "serve"],
        ["python", "-m", "otherpkg", "serve"],
    ],
)
def test_other_command_lines_are_not(argv: list[str]) -> None:
    assert not monitor.is_bokeh_server(argv, package="pkg")


def test_without_a_package_only_bokeh_serve_is_recognised() -> None:
    assert not monitor.is_bokeh_server(["python", "-m", "pkg", "serve"], package=None)
    assert monitor.is_bokeh_server(["bokeh", "serve"], package=None)


def test_port_and_metrics_url_come_from_the_command_line() -> None:
    defaults = monitor.ProjectDefaults(package="pkg", port=5123)
    assert monitor.server_port(["python", "-m", "pkg", "serve"], defaults) == 5123
    assert monitor.server_port(["bokeh", "serve", "app"], defaults) == 5006
    assert monitor.server_port(["python", "-m", "pkg", "serve", "--port=7000"], defaults) == 7000
    assert monitor.server_port(["bokeh", "serve", "--port", "0"], defaults) is None
    argv = ["bokeh", "serve", "--port", "7000", "--prefix", "/dash/"]
    assert monitor.metrics_url(argv, 7000) == "http://127.0.0.1:7000/dash/metrics"
    assert monitor.metrics_url(["bokeh", "serve"], 5006) == "http://127.0.0.1:5006/metrics"


def _info(pid: int, ppid: int, *argv: str) -> monitor.ProcessInfo:
    return monitor.ProcessInfo(pid, ppid, tuple(argv))


def test_num_procs_children_are_included_and_marked_forked() -> None:
    server = ("python", "-m", "pkg", "serve", "--num-procs", "2")
    table = [
        _info(1, 0, "init"),
        _info(100, 1, *server),
        _info(101, 100, *server),
        _info(102, 100, *server),
        _info(103, 100, "python", "-c", "from multiprocessing.resource_tracker import main"),
        _info(200, 1, "python", "-m", "pkg", "serve", "--port", "5007"),
    ]
    selected = monitor.select_servers(table, package="pkg")
    assert [(w.pid, w.forked) for w in selected] == [(100, True), (101, True), (102, True), (200, False)]
    by_pid = monitor.select_servers(table, package="pkg", pids=[100])
    assert [w.pid for w in by_pid] == [100, 101, 102]


def test_match_replaces_the_patterns_and_the_monitor_never_matches_itself() -> None:
    table = [
        _info(100, 1, "python", "-m", "pkg", "serve"),
        _info(300, 1, "gunicorn", "wsgi:app"),
        _info(400, 1, "python", "-m", "pkg", "monitor", "--match", "gunicorn"),
    ]
    selected = monitor.select_servers(table, package="pkg", pattern=re.compile("gunicorn"), exclude=[400])
    assert [w.pid for w in selected] == [300]


@pytest.fixture
def metrics_server() -> Iterator[int]:
    """An HTTP server answering ``/p/metrics`` with the sample text; yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = SAMPLE_METRICS.encode()
            self.send_response(200 if self.path == "/p/metrics" else 404)
            self.end_headers()
            if self.path == "/p/metrics":
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_read_sessions_over_http(metrics_server: int) -> None:
    assert monitor.read_sessions(f"http://127.0.0.1:{metrics_server}/p/metrics") == 3
    assert monitor.read_sessions(f"http://127.0.0.1:{metrics_server}/metrics") is None  # 404
    assert monitor.read_sessions(f"http://127.0.0.1:{free_port()}/metrics") is None  # nothing listens


# --- against a real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServedProcess]:
    """``python -m <package> serve`` on a free port, started once for this module's live tests."""
    with project_server() as running:
        yield running


def records(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_once_finds_the_server_by_its_command_line(
    server: ServedProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert monitor.main(["--once"]) == 0
    found = [record for record in records(capsys.readouterr().out) if record["pid"] == server.pid]
    assert len(found) == 1, "the server is matched by `-m <package> serve` in its command line"
    record = found[0]
    assert set(record) == {"time", "pid", "rss_mb", "sessions", "cmd"}
    assert isinstance(record["rss_mb"], float) and record["rss_mb"] > 10
    assert record["sessions"] is None or isinstance(record["sessions"], int)
    assert f"-m {PACKAGE} serve --port {server.port}" in str(record["cmd"])
    assert datetime.fromisoformat(str(record["time"])).tzinfo is not None


def test_threshold_sets_the_exit_code(server: ServedProcess, capsys: pytest.CaptureFixture[str]) -> None:
    pid = str(server.pid)
    assert monitor.main(["--once", "--pid", pid, "--threshold-mb", "1"]) == 2
    error = capsys.readouterr().err
    assert re.search(rf"pid {pid} uses [0-9.]+ MB > 1 MB", error), error
    assert monitor.main(["--once", "--pid", pid, "--threshold-mb", "1000000"]) == 0
    assert "exceeded" not in capsys.readouterr().err


def test_count_and_interval_bound_the_loop(server: ServedProcess, capsys: pytest.CaptureFixture[str]) -> None:
    assert monitor.main(["--count", "2", "--interval", "0.2", "--pid", str(server.pid)]) == 0
    lines = records(capsys.readouterr().out)
    assert [record["pid"] for record in lines] == [server.pid, server.pid]
    first, second = (datetime.fromisoformat(str(record["time"])) for record in lines)
    assert (second - first).total_seconds() >= 0.15


def test_plot_writes_a_bokeh_chart(server: ServedProcess, tmp_path: Path) -> None:
    html = tmp_path / "rss.html"
    pattern = rf"-m {PACKAGE} serve --port {server.port}\b"
    argv = ["--count", "2", "--interval", "0.1", "--match", pattern, "--threshold-mb", "100000"]
    assert monitor.main([*argv, "--plot", str(html)]) == 0
    text = html.read_text(encoding="utf-8")
    assert "Bokeh" in text
    assert f"pid {server.pid}" in text
    assert "threshold 100000 MB" in text and "Span" in text


def test_no_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert monitor.main(["--once", "--match", MATCHES_NOTHING]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no Bokeh server process found" in captured.err


def test_module_entry_point(server: ServedProcess) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", MONITOR_MODULE, "--once", "--pid", str(server.pid)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    assert [record["pid"] for record in records(completed.stdout)] == [server.pid]


def test_guide_script_monitor_memory_py(server: ServedProcess) -> None:
    completed = subprocess.run(
        [sys.executable, "monitor_memory.py", "--once"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    assert server.pid in [record["pid"] for record in records(completed.stdout)]


def test_standalone_file_writes_the_plot_on_ctrl_c(server: ServedProcess, tmp_path: Path) -> None:
    html = tmp_path / "rss.html"
    options = ["--pid", str(server.pid), "--interval", "60", "--plot", str(html)]
    command = [sys.executable, str(monitor.__file__), *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # one tick done, now sleeping 60 s
        assert first["pid"] == server.pid
        time.sleep(0.5)  # let it reach the sleep even on a loaded machine: Ctrl-C while waiting
        process.send_signal(signal.SIGINT)
        _, error = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, error
    assert f"pid {server.pid}" in html.read_text(encoding="utf-8")
