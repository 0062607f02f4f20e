"""The deployment files run as written: the Dockerfile's command and the nginx sticky-session config.

No container engine is needed: the final stage's ``CMD``, ``ENV`` and ``HEALTHCHECK`` of the
``Dockerfile`` are parsed and run on this machine (``python`` -> this interpreter, another port,
``--address 127.0.0.1``). ``deploy/nginx.conf`` is started with its upstream pointed at two real
``serve`` processes and a self-signed certificate made by the test (nginx terminates TLS), and
browser-like clients (page GET, then the page's websocket with the same cookies, both over TLS)
prove through each backend's ``/metrics`` and log that a session's page and websocket reach the
same backend and no second session is built on the other one; that the routing cookie is Secure
and HttpOnly; and that behind ``--use-xheaders`` the app sees the client's address and ``https``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.cookiejar
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bokeh.client import pull_session

from {{ cookiecutter.package_name }}.server.serve import READY_MESSAGE
from {{ cookiecutter.package_name }}.server.settings import ENV_PREFIX, PACKAGE, env_var
from {{ cookiecutter.package_name }}_devtools.nginx import (
    NGINX_CONF,
    make_certificate,
    nginx_binary,
    nginx_test,
    running_nginx,
)
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import (
    ServedProcess,
    free_port,
    project_command,
    start_server,
)
from {{ cookiecutter.package_name }}_devtools.testing import http_get, http_request, page_token, websocket_handshake

PROJECT = Path(__file__).resolve().parent.parent
WHOAMI_APP = PROJECT / "tests" / "apps" / "whoami"
DOCKERFILE = PROJECT / "Dockerfile"
WEBSOCKET_OPENED = "WebSocket connection opened"
#: A 6 KB site cookie, as browsers carry. Bokeh copies the page request's cookies and headers into
#: the session token (compressed, hence random bytes), which the websocket handshake sends in one
#: header line: past nginx's default 8 KB line buffer, so deploy/nginx.conf must raise
#: large_client_header_buffers.
BIG_COOKIE = "site_prefs=" + base64.urlsafe_b64encode(os.urandom(4500)).decode()
#: `docker stop` sends SIGKILL this long after SIGTERM unless told otherwise.
DOCKER_STOP_GRACE_S = 10.0


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def parse_env(arguments: str) -> dict[str, str]:
    """The variables of one ``ENV`` instruction (``A=1 B="x y"`` or the legacy ``A value``)."""
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: arguments.split(None, 1)[1]}
    return dict(token.split("=", 1) for token in tokens)


@dataclass
class FinalStage:
    """What the runtime image is made of: its ENV, exec-form CMD and HEALTHCHECK command."""

    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    stopsignal: str = ""
    user: str = ""


def final_stage(text: str) -> FinalStage:
    """Parse the last ``FROM`` stage of a Dockerfile; CMD and HEALTHCHECK must be JSON (exec form)."""
    stage = FinalStage()
    for keyword, arguments in dockerfile_instructions(text):
        if keyword == "FROM":
            stage = FinalStage()
        elif keyword == "ENV":
            stage.env.update(parse_env(arguments))
        elif keyword == "CMD":
            stage.cmd = json.loads(arguments)
        elif keyword == "HEALTHCHECK":
            _options, _, command = arguments.partition("CMD ")
            stage.healthcheck = json.loads(command)
        elif keyword == "STOPSIGNAL":
            stage.stopsignal = arguments
        elif keyword == "USER":
            stage.user = arguments
    return stage


def flag_value(command: Sequence[str], flag: str) -> str:
    """The value after ``flag`` in an argument list."""
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def with_flag(command: Sequence[str], flag: str, value: str) -> list[str]:
    """``command`` with the value after ``flag`` replaced."""
    index = list(command).index(flag)
    return [*command[: index + 1], value, *command[index + 2 :]]


# ---------------------------------------------------------------------------------------------
# Processes, HTTP and websockets
# ---------------------------------------------------------------------------------------------


def stop_gracefully(process: ServedProcess, timeout: float) -> int:
    """SIGTERM, then wait up to ``timeout``; fail (after SIGKILL) if it does not exit by then."""
    if process.process.poll() is None:
        process.process.send_signal(signal.SIGTERM)
    try:
        return process.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{shlex.join(process.command)} ignored SIGTERM for {timeout} s:\n{process.log}")


def wait_for_port(port: int, process: ServedProcess, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on ``port``; fail if ``process`` dies first."""

    def accepts() -> bool:
        if process.process.poll() is not None:
            pytest.fail(f"{shlex.join(process.command)} exited:\n{process.log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    assert wait_until(accepts, timeout), f"nothing listens on {port}:\n{process.log}"


def sessions_live(port: int) -> int:
    """``bokeh_sessions_live`` from the server's Prometheus ``/metrics``."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, f"/metrics on port {port} answered {status}"
    values = [
        float(line.split()[-1])
        for line in body.splitlines()
        if re.match(r"bokeh_sessions_live(\{.*\})?\s", line)
    ]
    assert values, "bokeh_sessions_live is not in /metrics"
    return int(sum(values))


# ---------------------------------------------------------------------------------------------
# (a) the Dockerfile's CMD, ENV and HEALTHCHECK
# ---------------------------------------------------------------------------------------------


def test_dockerfile_command_serves_the_app_with_its_flags_env_and_healthcheck() -> None:
    stage = final_stage(DOCKERFILE.read_text(encoding="utf-8"))
    cmd = stage.cmd
    assert cmd[:4] == ["python", "-m", PACKAGE, "serve"], cmd
    assert flag_value(cmd, "--address") == "0.0.0.0"
    assert stage.stopsignal == "SIGTERM"
    assert stage.user.split(":")[0].isdigit(), "USER must be numeric so runAsNonRoot can verify it"
    assert "*" not in stage.env.get(ENV_PREFIX + "ALLOWED_ORIGINS", "*"), "origins must be explicit"
    image_port = flag_value(cmd, "--port")
    lifetime = flag_value(cmd, "--unused-session-lifetime")
    interval = flag_value(cmd, "--check-unused-sessions")

    port = free_port()
    command = with_flag(with_flag(cmd, "--port", str(port)), "--address", "127.0.0.1")
    command[0] = sys.executable
    # `docker stop`: SIGTERM, SIGKILL after 10 s. The ENV's drain must fit in that with room for
    # closing every session; the drain itself is tested in test_ops.py, so here it is shortened.
    drain = float(stage.env[ENV_PREFIX + "DRAIN_SECONDS"])
    assert drain <= DOCKER_STOP_GRACE_S - 3, f"DRAIN_SECONDS={drain} leaves no time before SIGKILL"
    server = start_server(command, port, env={**stage.env, ENV_PREFIX + "DRAIN_SECONDS": "0.2"})
    try:
        # The flags were accepted and are the ones in force.
        assert f"Unused sessions last for {lifetime} milliseconds" in server.log
        assert f"Check for unused sessions every {interval} milliseconds" in server.log

        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200, body
        assert isinstance(json.loads(body), dict)

        # HEALTHCHECK: no curl in the image, python's urllib does it; it fails where nothing listens.
        assert stage.healthcheck[:2] == ["python", "-c"], stage.healthcheck
        check = stage.healthcheck[2]
        assert f"127.0.0.1:{image_port}/healthz" in check
        for target, healthy in ((port, True), (free_port(), False)):
            probe = [sys.executable, "-c", check.replace(f":{image_port}/", f":{target}/")]
            result = subprocess.run(probe, env={**os.environ, **stage.env}, capture_output=True, timeout=10)
            assert (result.returncode == 0) is healthy, result.stderr.decode()

        with pull_session(url=f"http://127.0.0.1:{port}/app") as session:
            assert session.document.get_model_by_name("main_plot") is not None

        # The websocket origins come from ENV: an allowed origin is accepted, any other refused.
        allowed = stage.env[ENV_PREFIX + "ALLOWED_ORIGINS"].split(",")[0]
        for origin, expected in ((f"http://{allowed}", "101"), ("http://evil.example", "403")):
            token = page_token(http_get(f"http://127.0.0.1:{port}/app")[1])
            websocket = websocket_handshake(port, "/app/ws", token, origin=origin)
            websocket.sock.close()
            assert websocket.status_line.split()[1] == expected, (origin, websocket.status_line)
    finally:
        code = stop_gracefully(server, timeout=DOCKER_STOP_GRACE_S - drain)
    assert code == 0, server.log


# ---------------------------------------------------------------------------------------------
# (b), (c) deploy/nginx.conf
# ---------------------------------------------------------------------------------------------


needs_nginx = pytest.mark.skipif(
    not NGINX_CONF.is_file() or nginx_binary() is None,
    reason="deploy/nginx.conf not generated or the nginx binary is not installed (apt-get install nginx)",
)


@needs_nginx
def test_nginx_accepts_the_config_as_shipped(tmp_path: Path) -> None:
    """The shipped file, beside a certificate in tls/ as its comment says."""
    config = tmp_path / "deploy" / "nginx.conf"
    make_certificate(config.parent / "tls")
    shutil.copy(NGINX_CONF, config)
    result = nginx_test(config, tmp_path / "prefix")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@dataclass
class Edge:
    """nginx with TLS in front of two backends, and how a client reaches it."""

    listen_port: int
    tls_port: int
    backends: list[ServedProcess]
    ports: list[int]
    context: ssl.SSLContext

    def url(self, path: str = "/app") -> str:
        return f"https://127.0.0.1:{self.tls_port}{path}"

    def opener(self, jar: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=self.context)]
        if jar is not None:
            handlers.append(urllib.request.HTTPCookieProcessor(jar))
        return urllib.request.build_opener(*handlers)


@dataclass
class Client:
    """A browser: its own cookie jar, and where its page and its websocket landed."""

    jar: http.cookiejar.CookieJar
    page_backend: int
    websocket_backend: int | None = None
    duplicates: int = 0

    def cookie_header(self, url: str) -> str:
        request = urllib.request.Request(url)
        self.jar.add_cookie_header(request)
        return str(request.get_header("Cookie") or "")


@contextlib.contextmanager
def nginx_in_front(
    tmp_path: Path,
    page_rate: str | None = None,
    app: Path | None = None,
    xheaders: Sequence[bool] = (True, True),
) -> Iterator[Edge]:
    """Two ``serve`` processes behind deploy/nginx.conf with a self-signed certificate.

    ``xheaders`` says per backend whether it runs with ``USE_XHEADERS`` (``--use-xheaders``), as
    the config's comment tells; ``app`` replaces the project's app (the backends are named 0, 1
    in ``WHOAMI_BACKEND``).
    """
    listen_port, tls_port, ports = free_port(), free_port(), [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        backends = []
        for number, (port, trusted) in enumerate(zip(ports, xheaders, strict=True)):
            command = project_command(port, "--address", "127.0.0.1")
            command += ["--allow-websocket-origin", f"127.0.0.1:{tls_port}", *([str(app)] if app else [])]
            env = {env_var("use_xheaders"): "true" if trusted else "false", "WHOAMI_BACKEND": str(number)}
            backend = start_server(command, port, ready=None, env=env)
            stack.callback(backend.stop)
            backends.append(backend)
        # (c) running_nginx checks the rendered config with `nginx -t` first
        nginx = stack.enter_context(running_nginx(tmp_path, ports, listen_port, tls_port, page_rate))
        for backend in backends:
            assert backend.wait_for(READY_MESSAGE), backend.log
        wait_for_port(tls_port, nginx.process)
        context = ssl.create_default_context(cafile=str(nginx.certificate))
        yield Edge(listen_port, tls_port, backends, ports, context)


@pytest.fixture
def nginx_in_front_of_two_backends(tmp_path: Path) -> Iterator[Edge]:
    """As ``nginx_in_front``, with the page rate limit raised: this test opens pages in quick succession."""
    with nginx_in_front(tmp_path, page_rate="1000r/s") as edge:
        yield edge


def browse(edge: Edge, misroute_like: Sequence[Client] = ()) -> tuple[Client, socket.socket]:
    """One browser visit through nginx: GET the page, then open its websocket with the same cookies.

    With ``misroute_like``, the websocket carries instead the cookies of one of those browsers that
    sticks to the other backend (the negative control: what a non-sticky proxy does). Where each
    step landed is read from the backends themselves: the page from whose ``bokeh_sessions_live``
    went up, the websocket from whose log says "WebSocket connection opened"; a websocket that
    reached a backend without the session makes that backend build a duplicate, seen in its
    ``bokeh_sessions_live``.
    """
    backends, ports = edge.backends, edge.ports
    jar = http.cookiejar.CookieJar()
    before = [sessions_live(port) for port in ports]
    opened_before = [backend.count(WEBSOCKET_OPENED) for backend in backends]
    page_request = urllib.request.Request(edge.url(), headers={"Cookie": BIG_COOKIE})
    status, page = http_get(page_request, opener=edge.opener(jar))
    assert status == 200
    after_page = [sessions_live(port) for port in ports]
    grew = [index for index, (old, new) in enumerate(zip(before, after_page, strict=True)) if new != old]
    assert len(grew) == 1 and after_page[grew[0]] == before[grew[0]] + 1, (before, after_page)
    client = Client(jar, page_backend=grew[0])

    ws_url = edge.url("/app/ws")
    cookie_source = client
    if misroute_like:
        cookie_source = next(other for other in misroute_like if other.page_backend != client.page_backend)
    cookie = cookie_source.cookie_header(ws_url)
    assert cookie, "nginx set no routing cookie on the page response"
    token = page_token(page)
    assert len(token) > 8192, "the token should exceed nginx's default header line buffer"
    websocket = websocket_handshake(
        edge.tls_port,
        "/app/ws",
        token,
        origin=f"https://127.0.0.1:{edge.tls_port}",
        cookie=f"{cookie}; {BIG_COOKIE}",
        ssl_context=edge.context,
    )
    assert websocket.status_line.startswith("HTTP/1.1 101"), websocket.status_line

    def opened_since() -> list[int]:
        return [
            backend.count(WEBSOCKET_OPENED) - old
            for backend, old in zip(backends, opened_before, strict=True)
        ]

    wait_until(lambda: sum(opened_since()) >= 1, 5, interval=0.02)
    opened = opened_since()
    assert sorted(opened) == [0, 1], opened
    client.websocket_backend = opened.index(1)
    after_websocket = [sessions_live(port) for port in ports]
    client.duplicates = sum(after_websocket) - sum(after_page)
    return client, websocket.sock


@needs_nginx
def test_nginx_keeps_each_page_and_its_websocket_on_one_backend(nginx_in_front_of_two_backends: Edge) -> None:
    edge = nginx_in_front_of_two_backends
    sockets: list[socket.socket] = []
    clients: list[Client] = []
    try:
        # Routing is random per new browser: go on until both backends served two, within bounds.
        while len(clients) < 6 or min(sum(c.page_backend == b for c in clients) for b in (0, 1)) < 2:
            assert len(clients) < 30, f"nginx sent every new browser to one backend: {clients}"
            client, sock = browse(edge)
            sockets.append(sock)
            clients.append(client)
        for number, client in enumerate(clients):
            assert client.websocket_backend == client.page_backend, f"client {number}: {client}"
            assert client.duplicates == 0, f"client {number}: {client}"
        assert sum(sessions_live(port) for port in edge.ports) == len(clients)

        # Negative control: a websocket carrying the cookie of a browser stuck to the other backend
        # lands there, and that backend builds a second session: the checks above can fail.
        misrouted, sock = browse(edge, misroute_like=clients)
        sockets.append(sock)
        assert misrouted.websocket_backend != misrouted.page_backend
        assert misrouted.duplicates == 1
    finally:
        for sock in sockets:
            sock.close()
    for backend in edge.backends:
        assert stop_gracefully(backend, timeout=10) == 0, backend.log


def page_from(edge: Edge, source_address: str) -> tuple[int, dict[str, str], str]:
    """GET the app page over TLS from ``source_address`` (another loopback address than nginx's)."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", edge.tls_port, context=edge.context, timeout=10, source_address=(source_address, 0)
    )
    try:
        connection.request("GET", "/app")
        response = connection.getresponse()
        return (
            response.status,
            {key.lower(): value for key, value in response.getheaders()},
            response.read().decode(),
        )
    finally:
        connection.close()


@needs_nginx
def test_nginx_tls_secure_cookie_websocket_and_the_client_the_app_sees(tmp_path: Path) -> None:
    """Over TLS: the routing cookie is Secure and HttpOnly, the websocket upgrades, plain HTTP is
    redirected, /readyz and /metrics are not exposed, and the app sees the client's address and
    https. Negative control: backend 1 runs without --use-xheaders, and its pages show nginx's
    address and http, which is what the flag fixes."""
    client_address = "127.0.0.2"  # the client; nginx talks to the backends from 127.0.0.1
    app = shutil.copytree(WHOAMI_APP, tmp_path / "apps" / "app")  # served at /app, like the project's
    with nginx_in_front(tmp_path, page_rate="1000r/s", app=app, xheaders=(True, False)) as edge:
        seen: dict[str, str] = {}
        for _ in range(30):  # a new browser each time: nginx picks a backend at random
            status, headers, page = page_from(edge, client_address)
            assert status == 200, page[:500]
            cookie = headers["set-cookie"]
            assert "Secure" in cookie.split("; ") and "HttpOnly" in cookie.split("; "), cookie
            title = re.search(r"<title>(.*?)</title>", page, flags=re.DOTALL)
            assert title is not None, page[:500]
            backend = title.group(1).rsplit("backend=", 1)[1]
            seen.setdefault(backend, title.group(1))
            if len(seen) == 2:
                break
        assert seen["0"] == f"scheme=https client={client_address} backend=0", seen
        assert seen["1"] == "scheme=http client=127.0.0.1 backend=1", seen  # without --use-xheaders

        jar = http.cookiejar.CookieJar()
        status, page = http_get(urllib.request.Request(edge.url()), opener=edge.opener(jar))
        assert status == 200
        route = next(cookie for cookie in jar if cookie.name == f"{PACKAGE}_route")
        assert route.secure, "a cookie without Secure would also be sent over plain HTTP"
        websocket = websocket_handshake(
            edge.tls_port,
            "/app/ws",
            page_token(page),
            origin=f"https://127.0.0.1:{edge.tls_port}",
            cookie=f"{route.name}={route.value}",
            ssl_context=edge.context,
            source_address=client_address,
        )
        websocket.sock.close()
        assert websocket.status_line.startswith("HTTP/1.1 101"), websocket.status_line
        assert websocket.first_frame, "no Bokeh ACK over the TLS websocket"

        plain = http.client.HTTPConnection("127.0.0.1", edge.listen_port, timeout=10)
        plain.request("GET", "/app")
        redirect = plain.getresponse()
        plain.close()
        assert redirect.status == 301
        assert redirect.getheader("Location") == edge.url("/app")
        for path in ("/readyz", "/metrics"):
            assert http_get(edge.url(path), opener=edge.opener())[0] == 404, path
            assert http_get(f"http://127.0.0.1:{edge.ports[0]}{path}")[0] == 200, path


def status_of(connection: http.client.HTTPConnection, path: str, method: str = "GET") -> int:
    """``method`` ``path`` on a kept-alive connection; the status (the body is read and dropped)."""
    connection.request(method, path)
    response = connection.getresponse()
    response.read()
    return response.status


@needs_nginx
def test_nginx_limits_pages_per_client_and_request_bodies(tmp_path: Path) -> None:
    """The shipped limits: a quick run of requests for the app page from one address gets 429
    past the burst, while /healthz from the same address does not; a body over 1 MiB gets 413.

    The run uses HEAD on one kept-alive TLS connection: nginx limits the page's location whatever
    the method, and the backends answer HEAD with 405 at once, building no session, so the run is
    quick even on a loaded machine (a GET builds a whole session, and a slow run would stay under
    the 5/s refill)."""
    with nginx_in_front(tmp_path) as edge:
        connection = http.client.HTTPSConnection("127.0.0.1", edge.tls_port, context=edge.context, timeout=10)
        try:
            statuses = [status_of(connection, "/app", "HEAD") for _ in range(40)]
            assert statuses.count(429) >= 10 and set(statuses) <= {405, 429}, statuses
            assert 20 <= statuses.count(405) <= 30, "the burst of 20 (plus the 5/s refill) is let through"
            assert all(status_of(connection, "/healthz") == 200 for _ in range(30))
        finally:
            connection.close()
        opener = edge.opener()
        request = urllib.request.Request(edge.url(), data=b"x" * 2**21, method="POST")
        try:
            status = http_request(request, opener=opener).status
        except OSError:  # nginx may close while the client is still sending
            status = 413
        assert status == 413
        assert sum(sessions_live(port) for port in edge.ports) == 0, (
            "neither a HEAD nor a 429 builds a session"
        )
