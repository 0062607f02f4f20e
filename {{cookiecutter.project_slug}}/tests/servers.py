"""Start the project's real CLI (``python -m <package> serve``) in a subprocess, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from {{ cookiecutter.package_name }}.testing import free_port

PACKAGE = "{{ cookiecutter.package_name }}"


@dataclass
class CliServer:
    """A running ``serve`` subprocess and everything it has logged so far."""

    process: subprocess.Popen[str]
    port: int
    prefix: str
    lines: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"

    @property
    def log(self) -> str:
        return "".join(self.lines)


@contextmanager
def cli_server(
    *args: str, prefix: str = "", env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[CliServer]:
    """Run ``python -m <package> serve --port <free> [--prefix ...] *args`` until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", PACKAGE, "serve", "--port", str(port), *args]
    if prefix:
        command += ["--prefix", prefix]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    server = CliServer(process, port, prefix)
    started = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.lines.append(line)
            if "Bokeh app running at" in line:
                started.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not started.wait(timeout):
            raise RuntimeError("server did not start:\n" + server.log)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(timeout=5)
