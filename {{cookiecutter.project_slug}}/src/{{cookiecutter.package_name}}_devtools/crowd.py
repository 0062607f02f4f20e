"""A crowd against a server in a real kernel memory limit: who is admitted, refused, killed.

One run: a memory cgroup of ``limit_bytes`` (``memory_cgroup.py``), a server started inside it
(this project's ``serve``, or bare ``bokeh serve`` of the same app), every session of the demo app
holding ``payload_mb``, and a crowd several times larger than the limit holds:

* ``pages``: page GETs of the app URL from ``threads`` threads (each GET builds a session);
* ``websockets``: ``bokeh.client`` sessions (a websocket that creates a new session), kept open.

Afterwards: did the kernel OOM-kill the server (its ``oom_kill`` counter), how many requests were
admitted and refused (a refused page must carry ``Retry-After``), does every admitted websocket
client still get its slider callback answered, the peak memory charged to the group, and the
seconds from the crowd's end to ``/readyz`` answering 200 (the memory guard shedding idle sessions
and readiness returning; ``None`` for a server that has no such route, or died). Used by
``tests/test_memory_limit.py`` (assertions) and ``benchmarks/crowd.py`` (figures and plot).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import env_var

from .memory_cgroup import MemoryCgroup
from .polling import wait_until
from .serving import ServedProcess, bokeh_command, free_port, project_command, start_server
from .testing import http_request

MB = 2**20
#: Sessions must outlive the crowd: only the server's own measures may end them early.
LIFETIME_MS = 300_000


@dataclass
class CrowdResult:
    """What one crowd did to one server."""

    server: str
    kind: str
    attempted: int
    admitted: int = 0
    refused: int = 0
    failed: int = 0
    refused_without_retry_after: int = 0
    killed: bool = False
    oom_kills: int = 0
    peak_bytes: int | None = None
    limit_bytes: int = 0
    answered: int = 0
    unanswered: int = 0
    seconds: float = 0.0
    recovered_s: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB charged)
    log_tail: str = ""

    def row(self) -> dict[str, Any]:
        """The figures (no samples), for tables and JSON."""
        figures = {key: value for key, value in vars(self).items() if key not in ("samples", "log_tail")}
        figures["peak_mb"] = None if self.peak_bytes is None else round(self.peak_bytes / MB, 1)
        figures["limit_mb"] = round(self.limit_bytes / MB, 1)
        return figures


def server_command(server: str, port: int) -> list[str]:
    """``project``: ``python -m <package> serve``; ``bare``: ``bokeh serve`` of the same app."""
    flags = ["--address", "127.0.0.1", "--unused-session-lifetime", str(LIFETIME_MS)]
    if server == "project":
        return project_command(port, *flags)
    return bokeh_command(APP_DIR, port, *flags)


@contextmanager
def server_in_cgroup(
    server: str, limit_bytes: int, payload_mb: float, env: dict[str, str] | None = None
) -> Iterator[tuple[ServedProcess, MemoryCgroup]]:
    """A server started inside a fresh memory cgroup; both are gone after the block."""
    port = free_port()
    full_env = {
        env_var("memory_limit"): str(limit_bytes),
        env_var("session_payload_mb"): str(payload_mb),
        **(env or {}),
    }
    with MemoryCgroup.create(limit_bytes) as group:
        served = start_server(
            server_command(server, port), port, env=full_env, preexec_fn=group.preexec_join()
        )
        try:
            yield served, group
        finally:
            served.kill()


def _sample(group: MemoryCgroup, result: CrowdResult, started: float, stop: threading.Event) -> None:
    while not stop.is_set():
        with suppress(Exception):
            result.samples.append((round(time.monotonic() - started, 2), round(group.usage_bytes() / MB, 1)))
        time.sleep(0.1)


def _page(url: str) -> tuple[str, bool]:
    """One page GET: ("admitted" | "refused" | "failed", whether a refusal carried Retry-After)."""
    try:
        response = http_request(url, timeout=60)
    except OSError:
        return "failed", True
    if response.status == 503:
        return "refused", "Retry-After" in response.headers
    return ("admitted" if response.status == 200 else "failed"), True


def _websocket(url: str) -> tuple[str, Any]:
    """One new ``bokeh.client`` session: ("admitted", client), or ("closed", None) when the server
    closed the websocket before Bokeh's ACK, or ("failed", None)."""
    from bokeh.client import pull_session

    try:
        return "admitted", pull_session(url=url)
    except OSError as error:
        # bokeh.client reports any close before its ACK as "HTTP-Error 500" (its connection.py);
        # the project's refusal (1013) is one, a server killed mid-handshake another.
        return ("closed" if "HTTP-Error" in str(error) else "failed"), None
    except Exception:
        return "failed", None


def _callback_answered(client: Any, url: str, value: int) -> bool:
    """Move the client's slider and wait for the server's answer to that connection; then read the
    session back through a second connection: the server-side callback re-smoothed the line.

    (``bokeh.client`` drops a PATCH-DOC that arrives while it waits for a reply, so the re-smoothed
    line cannot be read from the first client's own copy; see its ``connection.py``.)
    """
    from bokeh.client import pull_session

    try:
        plot = client.document.get_model_by_name("main_plot")
        before = list(plot.renderers[0].data_source.data["y"][:50])
        client.document.get_model_by_name("window").value = value
        client.force_roundtrip()
        with pull_session(session_id=client.id, url=url) as reader:
            document = reader.document
            line = list(document.get_model_by_name("main_plot").renderers[0].data_source.data["y"][:50])
            return document.get_model_by_name("window").value == value and line != before
    except Exception:
        return False


def run_crowd(
    server: str,
    kind: str,
    size: int,
    *,
    limit_bytes: int,
    payload_mb: float,
    threads: int = 8,
    recover_timeout_s: float = 60.0,
    env: dict[str, str] | None = None,
) -> CrowdResult:
    """Send a crowd of ``size`` new sessions (``kind``: pages or websockets) to ``server`` in a
    cgroup of ``limit_bytes``; see the module docstring for what is measured."""
    result = CrowdResult(server, kind, size, limit_bytes=limit_bytes)
    with server_in_cgroup(server, limit_bytes, payload_mb, env) as (served, group):
        started, stop = time.monotonic(), threading.Event()
        sampler = threading.Thread(target=_sample, args=(group, result, started, stop), daemon=True)
        sampler.start()
        clients: list[Any] = []
        outcomes: Counter[str] = Counter()
        with ThreadPoolExecutor(threads) as pool:
            if kind == "pages":
                for outcome, has_retry_after in pool.map(_page, [served.url("/app")] * size):
                    outcomes[outcome] += 1
                    result.refused_without_retry_after += outcome == "refused" and not has_retry_after
            else:
                for outcome, client in pool.map(_websocket, [served.url("/app")] * size):
                    outcomes[outcome] += 1
                    if client is not None:
                        clients.append(client)
        crowd_end = time.monotonic()
        result.seconds = round(crowd_end - started, 2)
        time.sleep(0.5)  # a kill for the last allocation lands within a few hundred ms
        alive = served.process.poll() is None
        # A websocket closed before its ACK was refused only if the server is alive to say so.
        closed_as = "refused" if alive and server == "project" else "failed"
        outcomes[closed_as] += outcomes.pop("closed", 0)
        result.admitted, result.refused, result.failed = (
            outcomes[key] for key in ("admitted", "refused", "failed")
        )
        if alive:
            url = served.url("/app")
            answers = [
                _callback_answered(client, url, 2 + index % 50) for index, client in enumerate(clients)
            ]
            result.answered, result.unanswered = sum(answers), answers.count(False)
        for client in clients:
            with suppress(Exception):
                client.close()
        if alive and server == "project":

            def ready() -> bool:
                with suppress(OSError):
                    return http_request(served.url("/readyz"), timeout=5).status == 200
                return False

            if wait_until(ready, recover_timeout_s, interval=0.1):
                result.recovered_s = round(time.monotonic() - crowd_end, 2)
        stop.set()
        sampler.join(timeout=5)
        result.killed = served.process.poll() is not None
        result.oom_kills = group.oom_kills()
        result.peak_bytes = group.peak_bytes()
        result.log_tail = served.log[-3000:]
    return result
