"""Which of the runtime's pieces that reach into Bokeh internals are on, and why: one registry.

Six pieces of the runtime use Bokeh beyond its public API. Each was read and tested on the Bokeh
versions in ``VERIFIED_BOKEH``, and each names the Bokeh code it relies on (``FINGERPRINTS``: the
function or class, and the lines it must still contain). On a Bokeh outside that list, or whose
code no longer matches, a piece stays off and the server runs that part as Bokeh itself does: it
**fails open**. It still starts and serves, says so once in one WARNING (the Bokeh version, what is
off and the switch), and shows it in ``/metrics`` (``bokeh_runtime_patch_active{patch="..."}``)
and ``/healthz`` (``"patches"``). ``serve.py``, ``runtime.py``, ``shutdown.py``, ``stall_free.py``
and ``cleanup.py`` ask ``is_active(name)`` before they install a piece.

Failing open holds for admission control (``session_gate``), the OOM protection, too. Refusing to
start on an unverified Bokeh turns one upgrade into an outage of every replica at once (a
crash-looping rollout) and protects nobody; running without admission is what bare ``bokeh serve``
does, under the same memory limit, and only a crowd beyond what fits is then at risk. An operator
who prefers the outage names the piece in ``REQUIRED_PATCHES`` (``<PKG>_REQUIRED_PATCHES=
session_gate``): the server then refuses to start without it, in one line (fail closed).

The switch ``<PKG>_BOKEH_PATCHES``:

* ``verified`` (default): a piece is on when the Bokeh version is verified and its code matches;
* ``matching``: on whenever its code matches, whatever the version (trying a newer Bokeh: the CI's
  newest-Bokeh canary runs the suite this way);
* ``off``: every piece off, Bokeh's own behaviour, no warning.

``bokeh_version`` is the one place the version is read: tests make it report another version
(``<pkg>_devtools/pretend_bokeh``) instead of rewriting ``bokeh.__version__``, which Bokeh itself
needs (its resource hashes are looked up by it).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import sys
import threading
from dataclasses import dataclass
from typing import TextIO

import bokeh

from .settings import SettingsError, env_var, get_settings

log = logging.getLogger(__name__)

#: Bokeh (major, minor) versions every piece was read and tested on (3.8.2, 3.9.2, 3.10.2).
VERIFIED_BOKEH = ((3, 8), (3, 9), (3, 10))
MODES = ("verified", "matching", "off")


@dataclass(frozen=True)
class Piece:
    """A part of the runtime that depends on Bokeh internals."""

    name: str
    #: What the server does without it (for the warning and the docs).
    without: str
    #: Pieces it cannot work without.
    needs: tuple[str, ...] = ()
    #: A boolean setting that turns this piece off by itself.
    switch: str | None = None


PIECES = (
    Piece(
        "server_control",
        "no memory guard, no discard of sessions nobody connects to; SIGTERM drains but then stops "
        "as Bokeh does, without discarding sessions",
    ),
    Piece(
        "session_gate",
        "NO ADMISSION CONTROL: a crowd can take the process past its memory limit, as with bare bokeh "
        "serve; sessions nobody connects to wait for the idle lifetime",
        needs=("server_control",),
    ),
    Piece(
        "sliced_expiry",
        "Bokeh discards a batch of expired sessions in one event-loop callback (1,000 sessions stall "
        "the server for about a second) and leaves busy ones for its next unused-session check",
        needs=("server_control",),
    ),
    Piece(
        "stall_free",
        "Bokeh walks the heap once per discarded session (a mass expiry stalls the server)",
        switch="coalesce_gc",
    ),
    Piece(
        "pause_unwatched",
        "periodic callbacks of sessions nobody is connected to run until the session expires (2,000 "
        "such sessions of the demo app keep the event loop busy a third of the time or more)",
        switch="pause_unwatched_callbacks",
    ),
    Piece(
        "keep_modules",
        "a cleanup defined in main.py finds main.py's globals already cleared by Bokeh",
    ),
)
NAMES = tuple(piece.name for piece in PIECES)

#: (``module:qualified.name``, lines its source must contain) that each piece relies on.
FINGERPRINTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "server_control": (
        ("bokeh.server.tornado:BokehTornado.__init__", ("self._applications",)),
        ("bokeh.server.tornado:BokehTornado.initialize", ("self._clients",)),
        ("bokeh.server.tornado:BokehTornado.client_lost", ()),
        ("bokeh.server.contexts:ApplicationContext._discard_session", ("should_discard(session)",)),
        ("bokeh.server.contexts:ApplicationContext.get_session", ()),
        ("bokeh.server.contexts:ApplicationContext.sessions", ()),
        ("bokeh.server.session:ServerSession.request_expiration", ()),
        ("bokeh.server.session:ServerSession.connection_count", ()),
        ("bokeh.server.session:ServerSession.milliseconds_since_last_unsubscribe", ()),
        ("bokeh.server.session:ServerSession.destroyed", ()),
        ("bokeh.protocol.exceptions:ProtocolError", ()),
    ),
    "session_gate": (
        ("bokeh.server.tornado:BokehTornado.__init__", ('"application_context"',)),
        (
            "bokeh.server.contexts:ApplicationContext.create_session_if_needed",
            ("session_id", "request", "token"),
        ),
        ("bokeh.server.views.doc_handler:DocHandler", ()),
        ("bokeh.server.views.autoload_js_handler:AutoloadJsHandler", ()),
        ("bokeh.server.views.ws:WSHandler", ()),
        ("bokeh.util.token:get_session_id", ()),
    ),
    "sliced_expiry": (  # it replaces this coroutine with the same rule, in slices
        (
            "bokeh.server.contexts:ApplicationContext._cleanup_sessions",
            (
                "session.connection_count == 0",
                "session.milliseconds_since_last_unsubscribe > unused_session_linger_milliseconds",
                "session.expiration_requested",
                "not session.expiration_blocked",
                "await self._discard_session(session, should_discard_ignoring_block)",
            ),
        ),
        ("bokeh.server.session:ServerSession.expiration_blocked", ()),
        ("bokeh.server.session:ServerSession.expiration_requested", ()),
    ),
    "stall_free": (
        ("bokeh.document.document:gc", ()),
        (
            "bokeh.document.document:Document.destroy",
            ("self.modules.destroy()", "gc.collect()", "self.models.destroy()"),
        ),
        (
            "bokeh.document.modules:DocumentModuleManager.destroy",
            ("get_referrers(module)", "module.__dict__.clear()", "del sys.modules[module.__name__]"),
        ),
        ("bokeh.model:Model.destroy", ("self._document = None", "self._property_values.clear()")),
        (
            "bokeh.document.callbacks:DocumentCallbackManager",
            (
                "self._session_callbacks = set()",
                "callback_obj._callback = _wrap_with_curdoc(doc, actual_callback)",
                "self._session_callbacks.remove(callback_obj)",
            ),
        ),
        ("bokeh.document.models:DocumentModelManager", ("self._new_models = set()",)),
        (  # Bokeh 3.10 moved it from util.tornado to util.asyncio
            "bokeh.util.asyncio|bokeh.util.tornado:_AsyncPeriodic",
            ("self._stopped = True", "not self._stopped", "self._func()"),
        ),
        # default_orphans: the models a document build makes, and the cycles with their containers
        ("bokeh.application.application:Application.initialize_document", ("h.modify_document(doc)",)),
        ("bokeh.model:Model.__init__", ("super().__init__(**kwargs)",)),
        (
            "bokeh.core.has_props:HasProps",
            ("_property_values: dict", "_unstable_default_values: dict", "_unstable_themed_values: dict"),
        ),
        ("bokeh.core.property.wrappers:PropertyValueContainer", ("self._owners.add((owner, descriptor))",)),
        # the links websocket_cycles drops when a connection closes
        ("bokeh.server.views.ws:WSHandler.on_close", ("self.application.client_lost(self.connection)",)),
        ("bokeh.server.connection:ServerConnection", ("self._socket = socket",)),
        ("bokeh.protocol.receiver:Receiver", ("self._current_consumer = self._HEADER",)),
        (
            "bokeh.server.protocol_handler:ProtocolHandler",
            ("self._handlers['SERVER-INFO-REQ'] = self._server_info_req",),
        ),
    ),
    "pause_unwatched": (
        (
            "bokeh.server.session:ServerSession.__init__",
            (
                "self._callbacks = DocumentCallbackGroup(",
                "self._callbacks.add_session_callbacks(wrapped_callbacks)",
            ),
        ),
        ("bokeh.server.session:ServerSession.subscribe", ("self._subscribed_connections.add(",)),
        ("bokeh.server.session:ServerSession.unsubscribe", ("self._subscribed_connections.discard(",)),
        ("bokeh.server.session:ServerSession._session_callback_added", ("add_session_callback(",)),
        ("bokeh.server.session:ServerSession._session_callback_removed", ("remove_session_callback(",)),
        (
            "bokeh.server.callbacks:DocumentCallbackGroup",
            (
                "add_periodic_callback(callback_obj.callback, callback_obj.period, callback_obj.id)",
                "self._group.remove_periodic_callback(callback_obj.id)",
                "def remove_all_callbacks(self)",
            ),
        ),
        ("bokeh.server.callbacks:PeriodicCallback", ()),
    ),
    "keep_modules": (
        ("bokeh.document.document:Document.destroy", ("self.modules.destroy()",)),
        ("bokeh.document.modules:DocumentModuleManager.add", ()),
        ("bokeh.document.modules:DocumentModuleManager.destroy", ("module.__dict__.clear()",)),
    ),
}


#: Bokeh code that only some verified versions have (a later one fixed it): the piece that
#: replaces it does so only where it is found (``code_found``); elsewhere Bokeh's own code stays.
WHERE_FOUND: dict[str, tuple[str, tuple[str, ...]]] = {
    # next_tick_cycles: Bokeh 3.8 and 3.9 (3.10 keeps the flag in a nonlocal variable)
    "next_tick_self_cycle": (
        "bokeh.util.tornado:_CallbackGroup.add_next_tick_callback",
        ("if wrapper.removed:", "wrapper.removed = True", "self._loop.add_callback(wrapper)"),
    ),
}


@dataclass(frozen=True)
class Status:
    """Whether a piece is on, and why (or why not)."""

    name: str
    active: bool
    reason: str
    #: Differences between this Bokeh's code and what the piece relies on (empty: it matches).
    problems: tuple[str, ...] = ()
    #: Off because a setting says so, not because of this Bokeh.
    by_setting: bool = False


def bokeh_version() -> str:
    """The installed Bokeh's version (tests make this report another one)."""
    return str(bokeh.__version__)


def is_verified(version: str) -> bool:
    """Whether ``version`` (``3.10.2``, ``3.10.0rc1``) is one of ``VERIFIED_BOKEH``."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) in VERIFIED_BOKEH


def _resolve(target: str) -> object:
    """``module:qualified.name``; ``module_a|module_b:name`` takes the first module that has it."""
    module_names, _, qualname = target.partition(":")
    *earlier, last = module_names.split("|")
    for module_name in earlier:
        with contextlib.suppress(ImportError, AttributeError):
            return _resolve(f"{module_name}:{qualname}")
    found: object = importlib.import_module(last)
    for part in qualname.split("."):
        found = inspect.getattr_static(found, part)
    return found


@functools.cache
def _fingerprint_problem(target: str, fragments: tuple[str, ...]) -> str | None:
    """How ``target`` differs from the fingerprint, or None. Cached: the first check (at start) reads
    Bokeh's own code, before ``stall_free`` replaces some of it."""
    try:
        found = _resolve(target)
        if fragments:
            function = getattr(found, "__func__", found)  # static/class methods
            source = inspect.getsource(getattr(function, "fget", function))
            missing = [fragment for fragment in fragments if fragment not in source]
            if missing:
                return f"{target} no longer contains {missing}"
    except (ImportError, AttributeError, OSError, TypeError) as error:
        return f"{target} is missing ({type(error).__name__}: {error})"
    return None


def code_found(name: str) -> bool:
    """Whether this Bokeh has the code ``WHERE_FOUND[name]`` describes."""
    return _fingerprint_problem(*WHERE_FOUND[name]) is None


def source_problems(name: str) -> list[str]:
    """How this Bokeh's code differs from what piece ``name`` relies on (empty: it matches)."""
    found = (_fingerprint_problem(target, fragments) for target, fragments in FINGERPRINTS[name])
    return [problem for problem in found if problem is not None]


def _status(piece: Piece, mode: str, version: str, known: dict[str, Status]) -> Status:
    problems = tuple(source_problems(piece.name))
    if mode == "off":
        return Status(piece.name, False, f"off ({env_var('bokeh_patches')}=off)", problems, by_setting=True)
    if piece.switch and not getattr(get_settings(), piece.switch):
        return Status(piece.name, False, f"off ({env_var(piece.switch)}=false)", problems, by_setting=True)
    off_needs = [known[need] for need in piece.needs if not known[need].active]
    if off_needs:
        reason = f"needs {', '.join(need.name for need in off_needs)}, which is off"
        return Status(piece.name, False, reason, problems, all(need.by_setting for need in off_needs))
    if problems:
        return Status(piece.name, False, f"Bokeh {version}'s code differs: {'; '.join(problems)}", problems)
    if not is_verified(version):
        if mode == "matching":
            return Status(piece.name, True, f"Bokeh {version} is unverified, its code matches ({mode})")
        return Status(piece.name, False, f"Bokeh {version} is not a verified version", problems)
    return Status(piece.name, True, f"verified on Bokeh {version}")


def verified_versions() -> str:
    return ", ".join(f"{major}.{minor}" for major, minor in VERIFIED_BOKEH)


def _report(statuses: dict[str, Status], version: str, mode: str) -> None:
    off = [status for status in statuses.values() if not status.active]
    if not off:
        log.info("Bokeh %s: every runtime piece on (%s)", version, ", ".join(statuses))
        return
    if mode == "off":
        log.info("Bokeh %s: every runtime piece off (%s=off)", version, env_var("bokeh_patches"))
        return
    without = {piece.name: piece.without for piece in PIECES}
    lost = "; ".join(f"{status.name} [{status.reason}]: {without[status.name]}" for status in off)
    if all(status.by_setting for status in off):
        log.warning("Bokeh %s: running WITHOUT %s", version, lost)
        return
    log.warning(
        "Bokeh %s (verified: %s): running WITHOUT %s. Install a verified Bokeh (uv sync --frozen), or set "
        "%s=matching to use every piece whose Bokeh code still matches (test first), or =off for none "
        "and no warning",
        version, verified_versions(), lost, env_var("bokeh_patches"),
    )  # fmt: skip


_decided: dict[str, Status] = {}
_decided_lock = threading.Lock()


def statuses() -> dict[str, Status]:
    """Every piece's status on this Bokeh, decided once per process (the WARNING is logged then)."""
    with _decided_lock:
        if not _decided:
            mode = get_settings().bokeh_patches
            version = bokeh_version()
            for piece in PIECES:
                _decided[piece.name] = _status(piece, mode, version, _decided)
            _report(_decided, version, mode)
        return dict(_decided)


def is_active(name: str) -> bool:
    return statuses()[name].active


def reset() -> None:
    """Decide again at the next question (tests that change settings or the version)."""
    with _decided_lock:
        _decided.clear()


def require_active() -> None:
    """Raise ``SettingsError`` when a piece named in ``REQUIRED_PATCHES`` is off (fail closed)."""
    variable = env_var("required_patches")
    for name in get_settings().required_patches:
        if name not in NAMES:
            raise SettingsError(f"{variable}: unknown piece {name!r}; the pieces are {', '.join(NAMES)}")
        status = statuses()[name]
        if not status.active:
            raise SettingsError(f"{variable}: {name} is off: {status.reason}")


def report() -> dict[str, object]:
    """What ``/healthz`` shows: the Bokeh version and each piece on or off, with the reason."""
    version = bokeh_version()
    return {
        "bokeh": version,
        "bokeh_verified": is_verified(version),
        "patches": {name: {"active": s.active, "reason": s.reason} for name, s in statuses().items()},
    }


def print_report(stream: TextIO | None = None) -> int:
    """``python -m <package> patches``: each piece on or off, with the reason; 1 if any is off."""
    stream = sys.stdout if stream is None else stream
    version = bokeh_version()
    verdict = "verified" if is_verified(version) else "NOT verified"
    mode = f"{env_var('bokeh_patches')}={get_settings().bokeh_patches}"
    print(f"Bokeh {version}: {verdict} (verified: {verified_versions()}); {mode}", file=stream)
    decided = statuses()
    for status in decided.values():
        print(f"  {status.name:<17} {'on ' if status.active else 'OFF'}  {status.reason}", file=stream)
    return 0 if all(status.active for status in decided.values()) else 1
