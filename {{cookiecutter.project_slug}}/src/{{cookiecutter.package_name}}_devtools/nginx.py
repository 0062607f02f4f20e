"""``deploy/nginx.conf`` run for real, in front of local backends on other ports.

Used by ``tests/test_deploy.py`` (sticky sessions, request limits) and ``benchmarks/capacity.py``
(users per process behind the proxy). The shipped file is rendered with the backends' ports, the
listen port and, for load tests, a higher page rate (its per-address limit is for people, and a
load generator is one address); everything else is the file as shipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .serving import ServedProcess, start_server

#: The config this project ships.
NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
_UPSTREAM_SERVER = re.compile(r"^(\s*)server\s+127\.0\.0\.1:\d+;\n", flags=re.MULTILINE)


def nginx_binary() -> str | None:
    """The nginx executable, also where root's PATH has it and others' does not."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin:/usr/local/sbin")


def render_nginx_conf(
    text: str, backend_ports: Sequence[int], listen_port: int, page_rate: str | None = None
) -> str:
    """The config with one upstream ``server`` line per backend port, its listen port and (when
    given) the app pages' rate limit, e.g. ``"1000r/s"``, replaced."""
    servers = list(_UPSTREAM_SERVER.finditer(text))
    if not servers:
        raise ValueError("no 'server 127.0.0.1:<port>;' lines in the upstream block")
    indent = servers[0].group(1)
    lines = "".join(f"{indent}server 127.0.0.1:{port};\n" for port in backend_ports)
    text = text[: servers[0].start()] + lines + text[servers[-1].end() :]
    text, count = re.subn(r"^(\s*listen\s+)\d+;", rf"\g<1>{listen_port};", text, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"expected one 'listen' line, found {count}")
    if page_rate is not None:
        text, count = re.subn(
            r"zone=app_pages:(\S+) rate=\S+;", rf"zone=app_pages:\1 rate={page_rate};", text
        )
        if count != 1:
            raise ValueError("no 'limit_req_zone ... zone=app_pages:... rate=...;' line")
    return text


def nginx_test(config: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` of ``config`` with ``prefix`` as its directory."""
    prefix.mkdir(parents=True, exist_ok=True)
    command = [str(nginx_binary()), "-t", "-p", str(prefix), "-c", str(config), "-e", "stderr"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@contextmanager
def running_nginx(
    directory: Path, backend_ports: Sequence[int], listen_port: int, page_rate: str | None = None
) -> Iterator[ServedProcess]:
    """nginx with the shipped config rendered into ``directory``, in the foreground, for the block."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    config = directory / "nginx.conf"
    config.write_text(
        render_nginx_conf(NGINX_CONF.read_text(encoding="utf-8"), backend_ports, listen_port, page_rate)
    )
    prefix = directory / "nginx"
    tested = nginx_test(config, prefix)
    if tested.returncode != 0:
        raise RuntimeError(f"nginx -t refused the rendered config:\n{tested.stderr}")
    nginx = start_server(
        [str(nginx_binary()), "-p", str(prefix), "-c", str(config), "-e", "stderr", "-g", "daemon off;"],
        listen_port,
        ready=None,
    )
    try:
        yield nginx
    finally:
        nginx.stop()
