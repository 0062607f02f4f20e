"""Runtime settings: the baked answers are the defaults, every value can be overridden by env.

The answers arrive as data in ``answers.json`` beside this module, the one file of the package that
cookiecutter renders; this module is plain Python, the same in every project baked from the
template, so ``cruft update`` replaces it without touching your answers. The package name, and
with it the prefix of every environment variable, comes from ``__name__``.

Each setting ``name`` is read from the environment variable ``ENV_PREFIX + NAME.upper()``. The
app's own knobs use ``app_setting`` and follow the same rule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The import name of this project's package (the first part of this module's name).
PACKAGE = __name__.split(".")[0]
ENV_PREFIX = PACKAGE.upper() + "_"
ANSWERS_FILE = Path(__file__).with_name("answers.json")


def load_answers(path: Path = ANSWERS_FILE) -> dict[str, Any]:
    """The template answers this project was baked with."""
    answers = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(answers, dict):
        raise ValueError(f"{path} must hold a JSON object of answers")
    return answers


ANSWERS = load_answers()
PROJECT_NAME = str(ANSWERS["project_name"])

_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_SUFFIX_BYTES = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


#: Default memory soft limit (the guard sheds idle sessions) and admission limit, as shares of the limit.
SOFT_LIMIT_SHARE = 0.8
ADMISSION_LIMIT_SHARE = 0.9
#: Values of the ``auth`` setting.
AUTH_CHOICES = ("none", "oidc")


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message names the variable."""


def quantity_to_bytes(quantity: str) -> int:
    """Convert a Kubernetes memory quantity such as ``1Gi`` or ``512M`` to bytes."""
    match = _QUANTITY.fullmatch(quantity.strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity like 512Mi, 1Gi or 2G")
    return int(float(match["number"]) * _SUFFIX_BYTES[match["suffix"]])


def split_origins(raw: str) -> tuple[str, ...]:
    """``"a:1, b"`` -> ``("a:1", "b")``."""
    return tuple(origin.strip() for origin in raw.split(",") if origin.strip())


@dataclass(frozen=True)
class Settings:
    """Every knob of the server. Field names map to env vars: ``ENV_PREFIX + NAME.upper()``."""

    address: str = "127.0.0.1"
    port: int = int(ANSWERS["port"])
    allowed_origins: tuple[str, ...] = split_origins(str(ANSWERS["allowed_origins"]))
    unused_session_lifetime_ms: int = int(ANSWERS["unused_session_lifetime_ms"])
    check_unused_sessions_ms: int = int(ANSWERS["check_unused_sessions_ms"])
    memory_limit: str = str(ANSWERS["memory_limit"])
    #: Above this RSS the memory guard sheds idle sessions; 0 means 80 % of ``memory_limit``.
    memory_soft_limit_mb: int = 0
    #: No new session when RSS (plus what admitted sessions will take) would pass this; 0: 90 % of the limit.
    admission_limit_mb: int = 0
    #: At most this many sessions (live plus starting); 0 means no cap besides memory.
    max_sessions: int = 0
    #: ``Retry-After`` of a refused page, and the wait a refused websocket is told (s).
    retry_after_s: int = 5
    #: Throwaway sessions built at start: the first warms the app's imports, the last measures what a
    #: session costs, so admission control judges the first crowd by a measurement; 0: none.
    warm_up_sessions: int = 2
    #: A session built for a page and not claimed by its websocket within this is discarded (ms).
    unconnected_grace_ms: int = 30000
    #: Largest HTTP request body accepted on the Bokeh port (KiB); larger ones get 400 unread.
    max_body_kb: int = 1024
    #: Largest websocket message a client may send (MiB): a file upload of FileInput is one message,
    #: 4/3 of the file (base64); each connection may buffer one.
    websocket_max_message_mb: int = 10
    #: Return freed heap to the OS (glibc ``malloc_trim``) after sessions are discarded.
    release_memory: bool = True
    #: Coalescing delay between a discard and the batched memory release (ms).
    release_delay_ms: int = 250
    #: After SIGTERM: seconds readiness reports 503 before sessions are discarded and the server stops.
    drain_seconds: float = 10.0
    #: How often the memory guard reads RSS (ms).
    memory_check_interval_ms: int = 1000
    #: Replace Bokeh's full ``gc.collect()`` per discarded document with at most one per interval.
    coalesce_gc: bool = True
    #: The interval of that coalesced collection (ms).
    gc_interval_ms: int = 1000
    #: Park a session's periodic callbacks while no browser is connected to it (unwatched_callbacks.py).
    pause_unwatched_callbacks: bool = True
    #: Expired sessions are discarded in slices of this long; the event loop serves requests between (ms).
    expiry_slice_ms: int = 10
    #: Pieces that reach into Bokeh internals (``patches.py``): ``verified`` (on where this Bokeh is
    #: verified), ``matching`` (on where its code matches, any version) or ``off``.
    bokeh_patches: str = "verified"
    #: Pieces without which the server must not start (fail closed), e.g. ``session_gate``.
    required_patches: tuple[str, ...] = ()
    log_level: str = "info"
    #: Serve /metrics and /readyz on this port and not on the Bokeh port, so that no proxy in front
    #: of the Bokeh port exposes them; 0 keeps them on the Bokeh port (development).
    metrics_port: int = 0
    #: Trust X-Forwarded-For / X-Forwarded-Proto / X-Real-IP (``--use-xheaders``): on behind a
    #: proxy (nginx, Ingress, Gateway) so the app sees the client's address and scheme; off when
    #: clients reach the server directly (they could forge the headers).
    use_xheaders: bool = False
    #: Login: "none", or "oidc" (OpenID Connect through Bokeh's auth hooks, ``server/login.py``).
    auth: str = str(ANSWERS.get("auth", "none"))
    #: The OpenID provider's issuer URL (its ``/.well-known/openid-configuration`` is read at start).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    #: From a Secret, never from a file in git.
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile email"
    #: How long a login lasts before the browser is sent to the provider again (s).
    login_max_age_s: int = 28800

    @property
    def memory_limit_bytes(self) -> int:
        return quantity_to_bytes(self.memory_limit)

    @property
    def memory_soft_limit_bytes(self) -> int:
        if self.memory_soft_limit_mb > 0:
            return self.memory_soft_limit_mb * 2**20
        return int(self.memory_limit_bytes * SOFT_LIMIT_SHARE)

    @property
    def admission_limit_bytes(self) -> int:
        if self.admission_limit_mb > 0:
            return self.admission_limit_mb * 2**20
        return int(self.memory_limit_bytes * ADMISSION_LIMIT_SHARE)


def env_var(name: str) -> str:
    """The environment variable that overrides setting ``name``."""
    return ENV_PREFIX + name.upper()


def _convert(name: str, kind: object, raw: str) -> object:
    variable = env_var(name)
    try:
        if kind in (bool, "bool"):
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
            value: object = lowered in {"1", "true", "yes", "on"}
        elif kind in (int, "int"):
            value = int(raw)
        elif kind in (float, "float"):
            value = float(raw)
        elif kind in (tuple[str, ...], "tuple[str, ...]"):
            value = split_origins(raw)
        else:
            value = raw
    except ValueError as error:
        raise SettingsError(f"{variable}={raw!r} is invalid: {error}") from None
    return value


def origin_problem(origin: str) -> str | None:
    """Why Bokeh's origin check cannot use ``origin`` safely, or None.

    ``*`` matches any site (cross-site websocket hijacking, bokeh#3102). Bokeh splits an origin on
    ``:`` (``bokeh/server/util.py``, ``create_hosts_allowlist``), so a bracketed IPv6 literal such as
    ``[::1]:5006`` stops the server at start: use a hostname that resolves to the address.
    """
    if "*" in origin:
        return f"{origin!r} uses the wildcard '*'; list every allowed host[:port] explicitly"
    if origin.count(":") > 1 or "[" in origin:
        return f"{origin!r} is an IPv6 literal, which Bokeh's origin check cannot parse; use a hostname"
    return None


def check_origins(origins: tuple[str, ...] | list[str], source: str) -> None:
    """Raise ``SettingsError`` naming ``source`` for the first origin Bokeh must not be given."""
    for origin in origins:
        if (problem := origin_problem(origin)) is not None:
            raise SettingsError(f"{source}: {problem}")


def default_origins(
    settings: Settings, port: int, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The websocket origins when the command line names none.

    Origins set by env are used as given. The baked ones follow ``--port``: a baked origin on the
    baked port moves to ``port`` (``serve --port 5077`` must accept the page it serves itself).
    """
    environ = os.environ if environ is None else environ
    if env_var("allowed_origins") in environ or port == Settings.port:
        return settings.allowed_origins
    suffix = f":{Settings.port}"
    return tuple(
        origin[: -len(suffix)] + f":{port}" if origin.endswith(suffix) else origin
        for origin in settings.allowed_origins
    )


def _validate(settings: Settings) -> None:
    for name in (
        "port",
        "unused_session_lifetime_ms",
        "check_unused_sessions_ms",
        "release_delay_ms",
        "memory_check_interval_ms",
        "gc_interval_ms",
        "expiry_slice_ms",
        "retry_after_s",
        "unconnected_grace_ms",
        "max_body_kb",
        "websocket_max_message_mb",
        "login_max_age_s",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{env_var(name)} must be a positive integer, got {getattr(settings, name)}")
    if not 1 <= settings.port <= 65535:
        raise SettingsError(f"{env_var('port')} must be in 1-65535, got {settings.port}")
    check_origins(settings.allowed_origins, env_var("allowed_origins"))
    if settings.bokeh_patches not in ("verified", "matching", "off"):
        raise SettingsError(
            f"{env_var('bokeh_patches')} must be verified, matching or off, got {settings.bokeh_patches!r}"
        )
    try:
        settings.memory_limit_bytes  # noqa: B018 - parse to validate
    except ValueError as error:
        raise SettingsError(f"{env_var('memory_limit')}: {error}") from None
    if settings.drain_seconds < 0:
        raise SettingsError(f"{env_var('drain_seconds')} must not be negative, got {settings.drain_seconds}")
    for name in ("memory_soft_limit_mb", "admission_limit_mb", "max_sessions", "warm_up_sessions"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"{env_var(name)} must not be negative, got {getattr(settings, name)}")
    _validate_edge(settings)
    if settings.admission_limit_bytes > settings.memory_limit_bytes:
        raise SettingsError(
            f"{env_var('admission_limit_mb')} ({settings.admission_limit_mb}) must stay below "
            f"{env_var('memory_limit')} ({settings.memory_limit}): past it the kernel kills the process"
        )


def _validate_edge(settings: Settings) -> None:
    """The metrics port and the login settings."""
    if not 0 <= settings.metrics_port <= 65535 or settings.metrics_port == settings.port:
        raise SettingsError(
            f"{env_var('metrics_port')} must be 0 (metrics on the Bokeh port) or a port in 1-65535 other "
            f"than {env_var('port')} ({settings.port}), got {settings.metrics_port}"
        )
    if settings.auth not in AUTH_CHOICES:
        raise SettingsError(
            f"{env_var('auth')} must be one of {', '.join(AUTH_CHOICES)}, got {settings.auth!r}"
        )
    if settings.auth == "oidc":
        for name in ("oidc_issuer", "oidc_client_id", "oidc_client_secret"):
            if not getattr(settings, name).strip():
                raise SettingsError(f"{env_var(name)} must be set when {env_var('auth')}=oidc")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the baked defaults and ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    overrides = {
        field.name: _convert(field.name, field.type, environ[env_var(field.name)])
        for field in fields(Settings)
        if env_var(field.name) in environ
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    _validate(settings)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return load_settings()


def app_setting(name: str, default: T, environ: Mapping[str, str] | None = None) -> T:
    """A knob of your app: ``default``, or the env var ``ENV_PREFIX + NAME.upper()`` converted to its type.

    Read on every call, so a value can differ per process (tests, benchmarks). A bad value raises
    ``SettingsError`` naming the variable.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(env_var(name))
    if raw is None:
        return default
    return _convert(name, type(default), raw)  # type: ignore[return-value]
