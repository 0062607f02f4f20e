"""Runtime settings: the template's answers are the defaults, every value can be overridden by env.

This is the only Python module rendered with Jinja; everything else reads its values from here.
Each setting ``name`` is read from the environment variable ``ENV_PREFIX + NAME.upper()``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache

# The answers, as JSON data (so quotes, backslashes and any Unicode in them are safe).
BAKED_ANSWERS: dict[str, object] = json.loads(r'''{{ {"project_name": cookiecutter.project_name, "package_name": cookiecutter.package_name, "port": cookiecutter.port | int, "allowed_origins": cookiecutter.allowed_origins, "unused_session_lifetime_ms": cookiecutter.unused_session_lifetime_ms | int, "check_unused_sessions_ms": cookiecutter.check_unused_sessions_ms | int, "memory_limit": cookiecutter.memory_limit} | tojson }}''')  # noqa: E501  # fmt: skip

PROJECT_NAME = str(BAKED_ANSWERS["project_name"])
ENV_PREFIX = str(BAKED_ANSWERS["package_name"]).upper() + "_"

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_SUFFIX_BYTES = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message names the variable."""


def quantity_to_bytes(quantity: str) -> int:
    """Convert a Kubernetes memory quantity such as ``1Gi`` or ``512M`` to bytes."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity like 512Mi, 1Gi or 2G")
    return int(float(match["number"]) * _SUFFIX_BYTES[match["suffix"]])


@dataclass(frozen=True)
class Settings:
    """Every knob of the server. Field names map to env vars: ``ENV_PREFIX + NAME.upper()``."""

    address: str = "127.0.0.1"
    port: int = int(BAKED_ANSWERS["port"])  # type: ignore[call-overload]
    allowed_origins: tuple[str, ...] = tuple(
        origin.strip() for origin in str(BAKED_ANSWERS["allowed_origins"]).split(",") if origin.strip()
    )
    unused_session_lifetime_ms: int = int(BAKED_ANSWERS["unused_session_lifetime_ms"])  # type: ignore[call-overload]
    check_unused_sessions_ms: int = int(BAKED_ANSWERS["check_unused_sessions_ms"])  # type: ignore[call-overload]
    memory_limit: str = str(BAKED_ANSWERS["memory_limit"])
    #: Above this RSS the memory guard sheds idle sessions; 0 means 80 % of ``memory_limit``.
    memory_soft_limit_mb: int = 0
    #: Per-session working data the demo app derives from the shared dataset (MB).
    session_payload_mb: float = 2.0
    #: Return freed heap to the OS (glibc ``malloc_trim``) after sessions are discarded.
    release_memory: bool = True
    #: Coalescing delay between a discard and the batched memory release (ms).
    release_delay_ms: int = 250
    #: After SIGTERM: seconds readiness reports 503 before sessions are discarded and the server stops.
    drain_seconds: float = 10.0
    #: How often the memory guard reads RSS (ms).
    memory_check_interval_ms: int = 5000
    #: Replace Bokeh's full ``gc.collect()`` per discarded document with at most one per interval.
    coalesce_gc: bool = True
    #: The interval of that coalesced collection (ms).
    gc_interval_ms: int = 1000
    log_level: str = "info"

    @property
    def memory_limit_bytes(self) -> int:
        return quantity_to_bytes(self.memory_limit)

    @property
    def memory_soft_limit_bytes(self) -> int:
        if self.memory_soft_limit_mb > 0:
            return self.memory_soft_limit_mb * 2**20
        return int(self.memory_limit_bytes * 0.8)


def env_var(name: str) -> str:
    """The environment variable that overrides setting ``name``."""
    return ENV_PREFIX + name.upper()


def _convert(name: str, kind: object, raw: str) -> object:
    variable = env_var(name)
    try:
        if kind in (int, "int"):
            value: object = int(raw)
        elif kind in (float, "float"):
            value = float(raw)
        elif kind in (bool, "bool"):
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
            value = lowered in {"1", "true", "yes", "on"}
        elif kind in (tuple[str, ...], "tuple[str, ...]"):
            value = tuple(item.strip() for item in raw.split(",") if item.strip())
        else:
            value = raw
    except ValueError as error:
        raise SettingsError(f"{variable}={raw!r} is invalid: {error}") from None
    return value


def _validate(settings: Settings) -> None:
    for name in (
        "port",
        "unused_session_lifetime_ms",
        "check_unused_sessions_ms",
        "release_delay_ms",
        "memory_check_interval_ms",
        "gc_interval_ms",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{env_var(name)} must be a positive integer, got {getattr(settings, name)}")
    if not 1 <= settings.port <= 65535:
        raise SettingsError(f"{env_var('port')} must be in 1-65535, got {settings.port}")
    if "*" in settings.allowed_origins:
        raise SettingsError(f"{env_var('allowed_origins')} must list explicit host[:port] origins, not '*'")
    try:
        settings.memory_limit_bytes  # noqa: B018 - parse to validate
    except ValueError as error:
        raise SettingsError(f"{env_var('memory_limit')}: {error}") from None
    if settings.drain_seconds < 0:
        raise SettingsError(f"{env_var('drain_seconds')} must not be negative, got {settings.drain_seconds}")
    if settings.session_payload_mb < 0 or settings.memory_soft_limit_mb < 0:
        raise SettingsError(
            f"{env_var('session_payload_mb')} and {env_var('memory_soft_limit_mb')} must not be negative"
        )


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
