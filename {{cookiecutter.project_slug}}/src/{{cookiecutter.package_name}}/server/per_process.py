"""Data your app shares by every session of a process: declared by the app, loaded by the runtime.

Each session runs ``main.py`` afresh, so anything built there is built per session. Data every
session only reads (a reference dataset, a model, a lookup table) belongs to the process instead.
The app declares it with ``@per_process`` (in ``app/shared.py``); the runtime loads every
declaration in ``on_server_loaded``, before the first session, and drops them in
``on_server_unloaded``. The runtime never imports the app: the declarations register themselves
when ``app/app_hooks.py`` imports the module that holds them.

    @per_process
    def reference_data() -> pd.DataFrame:
        return pd.read_parquet("reference.parquet")

    frame = reference_data()  # in main.py: the process's one copy, loaded on first use if need be
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, overload

T = TypeVar("T")
log = logging.getLogger(__name__)


class PerProcess(Generic[T]):
    """One value per process, built by ``load`` on first use (thread-safe), released by ``drop``."""

    def __init__(self, load: Callable[[], T], unload: Callable[[T], None] | None = None) -> None:
        self.load = load
        self.unload = unload
        self.name = getattr(load, "__qualname__", repr(load))
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded = False

    def __call__(self) -> T:
        """The value, loaded now if it was not yet."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._value = self.load()
                    self._loaded = True
        return self._value  # type: ignore[return-value]

    @property
    def loaded(self) -> bool:
        return self._loaded

    def drop(self) -> None:
        """Forget the value (after ``unload(value)`` if given); the next call loads it again."""
        with self._lock:
            value, loaded = self._value, self._loaded
            self._value, self._loaded = None, False
        if loaded and self.unload is not None:
            self.unload(value)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"PerProcess({self.name}, loaded={self._loaded})"


_declared: list[PerProcess[object]] = []
_declared_lock = threading.Lock()


@overload
def per_process(load: Callable[[], T], *, unload: Callable[[T], None] | None = None) -> PerProcess[T]: ...
@overload
def per_process(
    load: None = None, *, unload: Callable[[T], None] | None = None
) -> Callable[[Callable[[], T]], PerProcess[T]]: ...
def per_process(
    load: Callable[[], T] | None = None, *, unload: Callable[[T], None] | None = None
) -> PerProcess[T] | Callable[[Callable[[], T]], PerProcess[T]]:
    """Declare ``load()``'s result as shared by every session of the process (usable as decorator)."""

    def declare(function: Callable[[], T]) -> PerProcess[T]:
        shared = PerProcess(function, unload)
        with _declared_lock:
            _declared.append(shared)  # type: ignore[arg-type]
        return shared

    return declare if load is None else declare(load)


def declared() -> list[PerProcess[object]]:
    """Every declaration made so far in this process, in order."""
    with _declared_lock:
        return list(_declared)


def load_all() -> None:
    """Load every declaration (the server calls this before its first session)."""
    for shared in declared():
        value = shared()
        size = getattr(value, "nbytes", None)
        described = f"{size / 2**20:.1f} MB" if isinstance(size, int) else type(value).__name__
        log.info("Per-process data %s loaded (%s)", shared.name, described)


def drop_all() -> None:
    """Drop every declaration (the server calls this when it stops)."""
    for shared in declared():
        shared.drop()
