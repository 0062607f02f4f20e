"""The two ways to run the app, as a user would: ``python -m <package> serve`` and ``bokeh serve``."""

from __future__ import annotations

import subprocess

import pytest
from bokeh.client import pull_session
from bokeh.command.subcommands.serve import Serve

from {{ cookiecutter.package_name }}.server import cli
from {{ cookiecutter.package_name }}.server.serve import APP_DIR
from {{ cookiecutter.package_name }}.server.settings import default_origins, env_var, get_settings
from {{ cookiecutter.package_name }}_devtools.serving import bokeh_command, free_port, project_command, served
from {{ cookiecutter.package_name }}_devtools.testing import http_get, page_token, websocket_handshake


def serve_and_pull(command: list[str], port: int) -> str:
    """Start ``command``, pull a session from it, stop it; returns the server's log."""
    with served(command, port) as server:
        with pull_session(url=server.url("/app")) as session:
            assert session.document.get_model_by_name("main_plot") is not None
        server.stop()
    return server.log


def test_module_cli_serves_with_the_answered_flags() -> None:
    port = free_port()
    settings = get_settings()
    log = serve_and_pull(project_command(port), port)
    assert f"http://127.0.0.1:{port}/app" in log
    assert f"Unused sessions last for {settings.unused_session_lifetime_ms} milliseconds" in log
    assert f"Check for unused sessions every {settings.check_unused_sessions_ms} milliseconds" in log


def test_plain_bokeh_serve_runs_the_same_app() -> None:
    port = free_port()
    settings = get_settings()
    command = bokeh_command(
        APP_DIR, port, "--address", "127.0.0.1",
        "--unused-session-lifetime", str(settings.unused_session_lifetime_ms),
        "--check-unused-sessions", str(settings.check_unused_sessions_ms),
    )  # fmt: skip
    log = serve_and_pull(command, port)
    assert f"http://127.0.0.1:{port}/app" in log


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--allow-websocket-origin", "*"], {}, "--allow-websocket-origin"),
        (["--allow-websocket-origin", "dash.example.com:*"], {}, "--allow-websocket-origin"),
        ([], {env_var("allowed_origins"): "localhost:5006,*"}, env_var("allowed_origins")),
        ([], {"BOKEH_ALLOW_WS_ORIGIN": "*"}, "BOKEH_ALLOW_WS_ORIGIN"),
        ([], {env_var("allowed_origins"): "[::1]:5006"}, env_var("allowed_origins")),
    ],
    ids=["flag-star", "flag-port-star", "env-star", "bokeh-env-star", "ipv6"],
)
def test_unsafe_or_unparseable_origins_stop_the_server_with_one_line(
    args: list[str],
    env: dict[str, str],
    named: str,
    settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``*`` (any site may open a session: cross-site websocket hijacking) and IPv6 literals (Bokeh
    cannot parse them) are refused at start, naming where the value came from; no traceback."""
    for name, value in env.items():
        settings_env.setenv(name, value)
    # Were the origins let through, Bokeh's own serve would start: fail instead of serving.
    settings_env.setattr(Serve, "invoke", lambda self, args: pytest.fail("the server started"))
    assert cli.main(["serve", "--port", str(free_port()), *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {named}") and len(error.strip().splitlines()) == 1, error


def test_origins_follow_the_port_when_none_are_given() -> None:
    """``serve --port P`` accepts the page it serves itself (``localhost:P``), not the baked port's."""
    port = free_port()
    baked = f"localhost:{get_settings().port}"
    with served(project_command(port), port) as server:
        for origin, expected in ((f"http://localhost:{port}", 101), (f"http://{baked}", 403)):
            token = page_token(http_get(server.url("/app"))[1])
            websocket = websocket_handshake(port, "/app/ws", token, origin=origin)
            websocket.sock.close()
            assert websocket.status == expected, (origin, websocket.status_line)


def test_origins_given_by_env_do_not_follow_the_port() -> None:
    """Control for the rule above: explicit origins are used as given."""
    settings = get_settings()
    explicit = {env_var("allowed_origins"): f"localhost:{settings.port}"}
    assert default_origins(settings, 5077, environ={}) == (
        tuple(o.replace(f":{settings.port}", ":5077") for o in settings.allowed_origins)
    )
    assert default_origins(settings, 5077, environ=explicit) == settings.allowed_origins


def test_an_error_that_stops_the_start_is_one_line_not_a_traceback() -> None:
    """Bokeh itself answers an unresolvable ``--address`` with a traceback (a ``KeyError`` while it
    handles the ``socket.gaierror``); the CLI prints the cause in one line and exits 1. Control:
    ``--log-level debug`` lets the traceback through."""
    command = project_command(free_port(), "--address", "no-such-host.invalid")
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert completed.returncode == 1 and len(errors) == 1, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr and "gaierror" in errors[0], completed.stderr[-2000:]
    debug = subprocess.run([*command, "--log-level", "debug"], capture_output=True, text=True, timeout=60)
    assert debug.returncode == 1 and "Traceback" in debug.stderr, debug.stderr[-2000:]
