"""The OpenID Connect relying party: discovery, the authorization request, the code exchange, the ID token.

Only the authorization code flow with PKCE (RFC 7636) and a client secret is spoken. The random
values and the PKCE challenge come from Authlib, the ID token is checked with joserfc (Authlib's
JOSE library): signature against the provider's published keys, ``iss``, ``aud``, ``exp``, ``iat``
and the ``nonce`` this server sent. HTTP goes through Tornado's client on the server's event loop.
Nothing here knows Bokeh; ``login.py`` wires it into Bokeh's auth hooks.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

#: Signature algorithms accepted on ID tokens (never ``none``, never a symmetric one).
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
#: Clock skew allowed between this server and the provider (s).
LEEWAY_S = 60
HTTP_TIMEOUT_S = 10.0


class LoginError(Exception):
    """A login step was refused; the message is for the log, not for the browser."""


@dataclass(frozen=True)
class Provider:
    """What discovery told about the provider, and its signing keys."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    keys: KeySet
    end_session_endpoint: str | None = None


@dataclass(frozen=True)
class Flow:
    """What the browser carries from the login redirect to the callback (in a signed cookie)."""

    state: str
    nonce: str
    verifier: str
    next_path: str

    @classmethod
    def new(cls, next_path: str) -> Flow:
        return cls(generate_token(32), generate_token(32), generate_token(64), next_path)

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str | bytes) -> Flow:
        return cls(**json.loads(text))


async def fetch_json(url: str, **request: Any) -> dict[str, Any]:
    """GET (or ``method=...``) ``url`` and parse its JSON object; ``LoginError`` on any failure."""
    try:
        response = await AsyncHTTPClient().fetch(url, request_timeout=HTTP_TIMEOUT_S, **request)
        body = json.loads(response.body)
    except HTTPClientError as error:
        detail = error.response.body[:300] if error.response is not None and error.response.body else b""
        raise LoginError(f"{url}: HTTP {error.code} {detail!r}") from None
    except (OSError, ValueError) as error:
        raise LoginError(f"{url}: {error}") from None
    if not isinstance(body, dict):
        raise LoginError(f"{url}: not a JSON object")
    return body


async def discover(issuer: str) -> Provider:
    """Read the provider's ``/.well-known/openid-configuration`` and its keys."""
    config = await fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if config.get("issuer") != issuer:
        raise LoginError(f"discovery names issuer {config.get('issuer')!r}, expected {issuer!r}")
    missing = [
        name for name in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not config.get(name)
    ]
    if missing:
        raise LoginError(f"discovery lacks {missing}")
    keys = KeySet.import_key_set(await fetch_json(config["jwks_uri"]))  # type: ignore[arg-type]
    return Provider(
        issuer=issuer,
        authorization_endpoint=config["authorization_endpoint"],
        token_endpoint=config["token_endpoint"],
        jwks_uri=config["jwks_uri"],
        keys=keys,
        end_session_endpoint=config.get("end_session_endpoint"),
    )


def authorization_url(provider: Provider, client_id: str, redirect_uri: str, scopes: str, flow: Flow) -> str:
    """Where the browser is sent to log in."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scopes,
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": create_s256_code_challenge(flow.verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return provider.authorization_endpoint + separator + urlencode(query)


async def exchange_code(
    provider: Provider, client_id: str, client_secret: str, code: str, redirect_uri: str, flow: Flow
) -> dict[str, Any]:
    """Trade the authorization code for tokens (``client_secret_basic``, RFC 6749 2.3.1)."""
    credentials = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": flow.verifier,
    }
    return await fetch_json(
        provider.token_endpoint,
        method="POST",
        body=urlencode(form),
        headers={
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )


def verify_id_token(
    id_token: str, keys: KeySet, issuer: str, client_id: str, nonce: str, now: float | None = None
) -> dict[str, Any]:
    """The ID token's claims if it is signed by ``keys`` and meant for this login; else ``LoginError``."""
    try:
        token = jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS))
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time() if now is None else now),
            leeway=LEEWAY_S,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError) as error:
        raise LoginError(f"ID token refused: {type(error).__name__}: {error}") from None
    return dict(token.claims)
