"""Login (``AUTH=oidc``) without a browser: ID-token checks, the login cookie, and the server's doors.

The ID-token checks (``oidc.verify_id_token``) run against keys made here: a token signed by the
provider's key and meant for this login passes; one signed by another key (forged), expired, for
another client, with another nonce, or unsigned is refused. The login cookie is accepted only when
this server signed it and it has not expired. A real ``serve`` with login on (its provider is not
reachable: discovery happens only at /auth/login) shows the doors: a page without a user is
redirected to the login and builds no session, /healthz and the metrics port answer without login,
a valid login cookie gets the page and a session, a forged one does not, and /auth/logout ends that
user's session. The full flow against a real provider, in Chromium, is tests/test_login_browser.py.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest
from bokeh.util.token import get_token_payload
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from tornado.web import create_signed_value

from {{ cookiecutter.package_name }}.server import oidc
from {{ cookiecutter.package_name }}.server.login import LOGIN_COOKIE, OidcLogin, safe_next
from {{ cookiecutter.package_name }}.server.session_users import User
from {{ cookiecutter.package_name }}.server.settings import Settings, SettingsError, env_var, load_settings
from {{ cookiecutter.package_name }}_devtools.monitor import parse_metric
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import ServedProcess, free_port, project_command, start_server
from {{ cookiecutter.package_name }}_devtools.testing import http_get, http_request, page_token, websocket_handshake

ISSUER = "https://login.example.test"
CLIENT = "dashboard"
NONCE = "n-0S6_WzA2Mj"
COOKIE_SECRET = "test-cookie-secret-" + "x" * 32
SECRET_KEY = "test-secret-key-" + "k" * 32


@pytest.fixture(scope="module")
def provider_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "provider"}, private=True)


def id_token(key: RSAKey, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "name": "Alice", "iat": now, "exp": now + 300}
    claims.update({"nonce": NONCE, **changes})
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def public_keys(key: RSAKey) -> KeySet:
    return KeySet.import_key_set({"keys": [key.as_dict(private=False)]})


def test_a_token_from_the_provider_for_this_login_passes(provider_key: RSAKey) -> None:
    claims = oidc.verify_id_token(id_token(provider_key), public_keys(provider_key), ISSUER, CLIENT, NONCE)
    assert (claims["sub"], claims["name"]) == ("alice", "Alice")


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        pytest.param("forged", {}, id="forged-other-key"),
        pytest.param("plain", {"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param("plain", {"aud": "another-client"}, id="other-client"),
        pytest.param("plain", {"iss": "https://evil.example"}, id="other-issuer"),
        pytest.param("plain", {"nonce": "replayed"}, id="other-nonce"),
        pytest.param("unsigned", {}, id="alg-none"),
    ],
)
def test_a_forged_or_expired_token_is_refused(
    provider_key: RSAKey, case: str, changes: dict[str, Any]
) -> None:
    """The negative controls of the test above: each changed property alone is refused."""
    if case == "forged":
        token = id_token(RSAKey.generate_key(2048, parameters={"kid": "provider"}, private=True))
    elif case == "unsigned":
        header, payload, _signature = id_token(provider_key).split(".")
        token = ".".join(["eyJhbGciOiJub25lIn0", payload, ""])  # {"alg":"none"}
        assert header != "eyJhbGciOiJub25lIn0"
    else:
        token = id_token(provider_key, **changes)
    with pytest.raises(oidc.LoginError, match="ID token refused"):
        oidc.verify_id_token(token, public_keys(provider_key), ISSUER, CLIENT, NONCE)


def login_settings(**changes: Any) -> Settings:
    base = {"auth": "oidc", "oidc_issuer": ISSUER, "oidc_client_id": CLIENT, "oidc_client_secret": "s"}
    return Settings(**{**base, **changes})


def cookie_for(user: User, secret: str = COOKIE_SECRET) -> str:
    return create_signed_value(secret, LOGIN_COOKIE, json.dumps(asdict(user))).decode()


def test_the_login_cookie_must_be_ours_and_current() -> None:
    login = OidcLogin(login_settings(), COOKIE_SECRET)
    alice = User("alice", "Alice", None, time.time() + 60)
    assert login.user_from_cookie(cookie_for(alice)) == alice
    assert login.user_from_cookie(cookie_for(alice, secret="another-secret-" + "y" * 32)) is None
    assert login.user_from_cookie(cookie_for(User("alice", "Alice", None, time.time() - 1))) is None
    assert login.user_from_cookie("alice") is None
    assert login.user_from_cookie(None) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/app?x=1", "/app?x=1"),
        ("//evil.example/app", "/"),
        ("https://evil.example", "/"),
        (None, "/"),
        ("/\\evil", "/"),
    ],
)
def test_only_local_paths_are_returned_to_after_login(path: str | None, expected: str) -> None:
    assert safe_next(path, "/") == expected


def test_login_settings_are_refused_naming_the_variable() -> None:
    environ = {env_var("auth"): "oidc", env_var("oidc_issuer"): ISSUER, env_var("oidc_client_id"): CLIENT}
    with pytest.raises(SettingsError, match=env_var("oidc_client_secret")):
        load_settings(environ)
    with pytest.raises(SettingsError, match=env_var("auth")):
        load_settings({env_var("auth"): "ldap"})
    assert load_settings({**environ, env_var("oidc_client_secret"): "s"}).auth == "oidc"


# ---------------------------------------------------------------------------------------------
# A real server with login on
# ---------------------------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # let the 302 itself come back


NO_REDIRECT = urllib.request.build_opener(NoRedirect)


def login_env(metrics_port: int, **changes: str) -> dict[str, str]:
    return {
        env_var("auth"): "oidc",
        env_var("oidc_issuer"): "http://127.0.0.1:9/unreachable",
        env_var("oidc_client_id"): CLIENT,
        env_var("oidc_client_secret"): "client-secret",
        env_var("metrics_port"): str(metrics_port),
        "BOKEH_SIGN_SESSIONS": "true",
        "BOKEH_SECRET_KEY": SECRET_KEY,
        "BOKEH_COOKIE_SECRET": COOKIE_SECRET,
        **changes,
    }


@pytest.fixture(scope="module")
def login_server() -> Iterator[tuple[ServedProcess, int]]:
    port, metrics_port = free_port(), free_port()
    server = start_server(project_command(port), port, env=login_env(metrics_port))
    try:
        yield server, metrics_port
    finally:
        server.kill()


def metrics(metrics_port: int) -> str:
    status, text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    return text


def get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Cookie": f"{LOGIN_COOKIE}={cookie}"} if cookie else {})
    response = http_request(request, opener=NO_REDIRECT)
    return response.status, response.headers


def test_without_a_user_the_page_redirects_and_builds_no_session(
    login_server: tuple[ServedProcess, int],
) -> None:
    server, metrics_port = login_server
    created_before = parse_metric(metrics(metrics_port), "bokeh_sessions_created_total")  # warm-up
    for cookie in (
        None,
        cookie_for(User("alice", "Alice", None, time.time() + 60), secret="forged-" + "z" * 32),
    ):
        for _ in range(5):
            status, headers = get(server.url("/app"), cookie)
            assert status == 302 and headers["Location"] == "/auth/login?next=%2Fapp", (status, headers)
    text = metrics(metrics_port)
    assert parse_metric(text, "bokeh_sessions_created_total") == created_before
    assert parse_metric(text, "bokeh_sessions_starting") == 0, (
        "a login redirect must not hold an admission ticket"
    )
    assert http_get(server.url("/healthz"))[0] == 200  # probes need no login
    assert get(server.url("/metrics"))[0] == 404 and get(server.url("/readyz"))[0] == 404
    assert http_get(f"http://127.0.0.1:{metrics_port}/readyz")[0] == 200
    # The provider is unreachable: the login page says so instead of hanging or crashing.
    assert get(server.url("/auth/login?next=/app"))[0] == 503


@pytest.mark.requires_patch("server_control")  # logout discards the user's sessions through it
def test_a_logged_in_user_gets_the_page_and_logout_ends_the_session(
    login_server: tuple[ServedProcess, int],
) -> None:
    server, metrics_port = login_server
    before = metrics(metrics_port)
    cookie = cookie_for(User("bob", "Bob", "bob@example.test", time.time() + 600))
    request = urllib.request.Request(
        server.url("/app"), headers={"Cookie": f"{LOGIN_COOKIE}={cookie}; site=1"}
    )
    page = http_request(request, opener=NO_REDIRECT)
    assert page.status == 200
    assert parse_metric(metrics(metrics_port), "bokeh_sessions_live") == 1
    # The session token in the page (readable by its JavaScript) carries the request's cookies,
    # but never the login cookie; the other cookie is the control.
    carried = get_token_payload(page_token(page.body))["cookies"]
    assert "site" in carried and LOGIN_COOKIE not in carried, carried
    destroyed = parse_metric(before, "bokeh_sessions_destroyed_total") or 0
    status, headers = get(server.url("/auth/logout"), cookie)
    assert status == 200 and f"{LOGIN_COOKIE}=;" in headers.get("Set-Cookie", "").replace('=""', "=")
    assert wait_until(lambda: parse_metric(metrics(metrics_port), "bokeh_sessions_live") == 0, 5)
    assert parse_metric(metrics(metrics_port), "bokeh_sessions_destroyed_total") == destroyed + 1


def test_a_websocket_without_a_user_builds_no_session(login_server: tuple[ServedProcess, int]) -> None:
    """What ``bokeh.client`` does (a websocket with a fresh signed token) is refused without a
    login and accepted with one (the control): Bokeh's websocket handler asks the same hook."""
    from bokeh.util.token import generate_jwt_token, generate_session_id

    server, metrics_port = login_server
    secret = SECRET_KEY.encode()
    created = parse_metric(metrics(metrics_port), "bokeh_sessions_created_total")
    outcomes = []
    for cookie in (None, cookie_for(User("carol", "Carol", None, time.time() + 600))):
        token = generate_jwt_token(generate_session_id(secret, signed=True), secret_key=secret, signed=True)
        websocket = websocket_handshake(
            server.port, "/app/ws", token, cookie=f"{LOGIN_COOKIE}={cookie}" if cookie else None
        )
        websocket.sock.close()
        outcomes.append(websocket.status == 101 and bool(websocket.first_frame))
    assert outcomes == [False, True]
    assert wait_until(
        lambda: parse_metric(metrics(metrics_port), "bokeh_sessions_created_total") == created + 1, 5
    )


def test_login_without_signed_sessions_does_not_start() -> None:
    port = free_port()
    command = project_command(port, "--session-ids", "unsigned")
    server = start_server(command, port, env=login_env(free_port()), ready=None)
    try:
        assert server.process.wait(timeout=60) == 2
    finally:
        server.kill()
    assert "needs signed session ids" in server.log and "BOKEH_SIGN_SESSIONS" in server.log
