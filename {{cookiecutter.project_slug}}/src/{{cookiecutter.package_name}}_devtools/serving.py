"""Run a Bokeh server in a subprocess and wait until it listens: the project's CLI or bare ``bokeh serve``.

Tests, benchmarks and the monitor's tests all start servers this way. The subprocess's output is
read continuously (so it never blocks on a full pipe) and kept, line by line, with the time each
line was read; the server counts as started when it logs ``Bokeh app running at``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from {{ cookiecutter.package_name }}.server.serve import READY_MESSAGE
from {{ cookiecutter.package_name }}.server.settings import PACKAGE, env_var

from .polling import wait_until

#: What Bokeh logs once it listens; the project's `serve` logs READY_MESSAGE after its warm-up.
READY_LINE = "Bokeh app running at"
AUTO = "auto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for servers started in a subprocess."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project_command(port: int, *args: str) -> list[str]:
    """``python -m <package> serve --port <port> *args``."""
    return [sys.executable, "-m", PACKAGE, "serve", "--port", str(port), *args]


def bokeh_command(app: str | os.PathLike[str], port: int, *args: str) -> list[str]:
    """Bare ``bokeh serve <app> --port <port> *args`` (no project runtime but the app's own hooks)."""
    return [sys.executable, "-m", "bokeh", "serve", str(app), "--port", str(port), *args]


@dataclass
class ServedProcess:
    """A server subprocess and everything it has logged so far: (time read, line) pairs."""

    command: list[str]
    process: subprocess.Popen[str]
    port: int
    prefix: str = ""
    logged: list[tuple[float, str]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def lines(self) -> list[str]:
        return [line for _, line in list(self.logged)]

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def url(self, path: str = "/app") -> str:
        """``http://127.0.0.1:<port><prefix><path>``."""
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=30)

    def count(self, text: str) -> int:
        """How many logged lines contain ``text``."""
        return sum(text in line for line in self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        """Wait until a logged line contains ``text``; False if the process ended or time ran out."""
        return wait_until(lambda: text in self.log or self.process.poll() is not None, timeout, 0.02) and (
            text in self.log
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def start_server(
    command: Sequence[str],
    port: int,
    *,
    prefix: str = "",
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    ready: str | None = AUTO,
    **popen_kwargs: Any,
) -> ServedProcess:
    """Start ``command`` (which must listen on ``port``) and wait until it logs ``ready``: by default
    the project's ``READY_MESSAGE`` for ``python -m <package> serve``, Bokeh's ``READY_LINE`` else.

    ``env`` is added to this process's environment; the project's drain on SIGTERM is off unless
    ``env`` sets it, so that stopping a test server takes no time. Raises ``RuntimeError`` with the
    log when the server exits or does not start within ``timeout``; ``ready=None`` does not wait.
    """
    if ready == AUTO:
        ready = READY_MESSAGE if list(command[1:4]) == ["-m", PACKAGE, "serve"] else READY_LINE
    full_env = {**os.environ, env_var("drain_seconds"): "0", **(env or {})}
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        **popen_kwargs,
    )
    served = ServedProcess(list(command), process, port, prefix)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.logged.append((time.time(), line))
            if ready is not None and ready in line:
                served.started.set()

    threading.Thread(target=pump, name=f"server-{port}-log", daemon=True).start()
    if ready is None:
        return served
    deadline = time.monotonic() + timeout
    while not served.started.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            served.kill()
            time.sleep(0.1)  # the last lines
            raise RuntimeError(f"server did not start: {' '.join(command)}\n{served.log[-5000:]}")
    return served


@contextmanager
def served(command: Sequence[str], port: int, **kwargs: Any) -> Iterator[ServedProcess]:
    """``start_server`` for the block; the server is killed afterwards if it still runs."""
    server = start_server(command, port, **kwargs)
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def project_server(
    *args: str, prefix: str = "", env: dict[str, str] | None = None, timeout: float = 60.0
) -> Iterator[ServedProcess]:
    """``python -m <package> serve --port <free> [--prefix ...] *args`` for the block."""
    port = free_port()
    extra = ["--prefix", prefix] if prefix else []
    with served(
        project_command(port, *args, *extra), port, prefix=prefix, env=env, timeout=timeout
    ) as server:
        yield server


def project_root() -> Path:
    """The project's checkout: where ``pyproject.toml`` is, above this file."""
    return Path(__file__).resolve().parents[2]
