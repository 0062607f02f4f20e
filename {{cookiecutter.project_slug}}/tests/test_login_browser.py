"""Login end to end: a real OpenID provider on this machine, the server with ``AUTH=oidc``, Chromium.

The provider is oidc-provider-mock (PyPI; Flask + Authlib, it signs real RS256 ID tokens and
publishes its keys), run in a thread on 127.0.0.1. The server is ``python -m <package> serve``
with login on, signed session ids and the metrics port. The browser, as a person would: opens the
app without a login and lands on the provider's page (no session was built); picks the user;
comes back to the app, which renders its plot and greets the user by the name from the ID token;
logs out, and the server's metrics show the session destroyed; /healthz answered all along
without a login. Negative controls: a login cookie signed with another secret (forged) and one
whose time is up (expired) both send the browser back to the login and build no session.

Marked ``browser`` (``pytest -m browser``), like tests/test_browser.py whose Chromium fixture it
uses; oidc-provider-mock needs Python 3.12, so the test skips on older interpreters.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import pytest
from tornado.web import create_signed_value

from {{ cookiecutter.package_name }}.server.login import LOGIN_COOKIE
from {{ cookiecutter.package_name }}.server.session_users import User
from {{ cookiecutter.package_name }}.server.settings import env_var
from {{ cookiecutter.package_name }}_devtools.monitor import parse_metric
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import free_port, project_command, served
from {{ cookiecutter.package_name }}_devtools.testing import http_get

from test_browser import PLOT_RENDERED, ConsoleErrors, chromium, require  # noqa: F401 - chromium is a fixture

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

COOKIE_SECRET = "browser-test-cookie-secret-" + "c" * 32
USER = {"sub": "alice", "name": "Alice Example", "email": "alice@example.test"}


def metric(metrics_port: int, name: str) -> float:
    status, text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    return parse_metric(text, name) or 0.0


def signed_login(user: User, secret: str) -> str:
    return create_signed_value(secret, LOGIN_COOKIE, json.dumps(asdict(user))).decode()


def test_login_renders_the_app_for_the_user_and_logout_ends_the_session(
    chromium: Browser | str,  # noqa: F811 - the fixture of test_browser.py, imported above
) -> None:
    browser = require(chromium)
    if sys.version_info < (3, 12):
        pytest.skip("oidc-provider-mock needs Python 3.12")
    try:
        import oidc_provider_mock
    except ImportError:
        pytest.fail("oidc-provider-mock is not installed (pip install -e '.[browser]')", pytrace=False)

    claims = {key: value for key, value in USER.items() if key != "sub"}
    with oidc_provider_mock.run_server_in_thread(
        require_nonce=True, user_claims=[oidc_provider_mock.User(sub=USER["sub"], claims=claims)]
    ) as provider:
        issuer = f"http://localhost:{provider.server_port}"
        port, metrics_port = free_port(), free_port()
        env = {
            env_var("auth"): "oidc",
            env_var("oidc_issuer"): issuer,
            env_var("oidc_client_id"): "dashboard",
            env_var("oidc_client_secret"): "dashboard-secret",
            env_var("metrics_port"): str(metrics_port),
            "BOKEH_SIGN_SESSIONS": "true",
            "BOKEH_SECRET_KEY": "browser-test-secret-key-" + "k" * 32,
            "BOKEH_COOKIE_SECRET": COOKIE_SECRET,
        }
        command = project_command(port, "--allow-websocket-origin", f"127.0.0.1:{port}")
        with served(command, port, env=env) as server:
            app_url = server.url("/app")
            context = browser.new_context()
            try:
                page = context.new_page()
                page.set_default_timeout(15_000)
                errors = ConsoleErrors.attach(page)
                # The server's warm-up sessions (built and discarded at start) are the baseline.
                created = metric(metrics_port, "bokeh_sessions_created_total")
                destroyed = metric(metrics_port, "bokeh_sessions_destroyed_total")

                # 1. Without a login, the app redirects to the login and on to the provider.
                response = page.goto(app_url)
                assert response is not None and page.url.startswith(f"{issuer}/oauth2/authorize"), page.url
                first = response.request
                while first.redirected_from is not None:
                    first = first.redirected_from
                assert first.url == app_url
                assert metric(metrics_port, "bokeh_sessions_created_total") == created
                assert http_get(server.url("/healthz"))[0] == 200  # probes need no login

                # 2. The user logs in at the provider and comes back to the app, which renders.
                page.get_by_role("button", name=f"Authorize as {USER['sub']}").click()
                page.wait_for_url(app_url)
                errors.messages.clear()  # the provider's own pages load assets from the internet
                page.wait_for_function(PLOT_RENDERED, timeout=20_000)
                page.locator(".bk-Div").filter(has_text=f"Signed in as {USER['name']}.").wait_for(
                    timeout=5_000
                )
                login = next(cookie for cookie in context.cookies() if cookie["name"] == LOGIN_COOKIE)
                assert login["httpOnly"] and login["sameSite"] == "Lax"
                assert metric(metrics_port, "bokeh_sessions_live") == 1
                assert errors.messages == [], errors.messages

                # 3. Logout ends the user's session: the server discards it at once.
                page.goto(server.url("/auth/logout"))
                assert "Signed out" in page.content()
                assert wait_until(lambda: metric(metrics_port, "bokeh_sessions_live") == 0, 5)
                assert metric(metrics_port, "bokeh_sessions_destroyed_total") == destroyed + 1
                assert all(cookie["name"] != LOGIN_COOKIE for cookie in context.cookies())
                page.goto(app_url)
                assert page.url.startswith(f"{issuer}/oauth2/authorize"), "logged out, yet the app opened"
            finally:
                context.close()

            # Negative controls: a forged and an expired login cookie are refused like none at all.
            user = User(USER["sub"], USER["name"], USER["email"], time.time() + 600)
            expired = User(USER["sub"], USER["name"], USER["email"], time.time() - 1)
            for cookie in (
                signed_login(user, "forged-secret-" + "f" * 32),
                signed_login(expired, COOKIE_SECRET),
            ):
                context = browser.new_context()
                try:
                    context.add_cookies([{"name": LOGIN_COOKIE, "value": cookie, "url": app_url}])
                    page = context.new_page()
                    page.goto(app_url)
                    assert page.url.startswith(f"{issuer}/oauth2/authorize"), page.url
                finally:
                    context.close()
            assert metric(metrics_port, "bokeh_sessions_created_total") == created + 1
