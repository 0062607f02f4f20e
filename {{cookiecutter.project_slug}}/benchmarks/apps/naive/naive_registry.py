"""The naive app's registry: per-session data kept in an imported module, which outlives sessions.

Bokeh runs ``main.py`` in a fresh module for every session and discards that module with the
session, but a module ``main.py`` imports (found next to it: Bokeh puts the app directory on
``sys.path`` while ``main.py`` runs) is imported once and lives in ``sys.modules`` for the life of
the process. Nothing here is ever removed: this is the leak the memory benchmark shows. The log
lines are the benchmark's evidence: after every session has ended, the registry still holds them.
"""

from __future__ import annotations

import logging
from typing import Any

SESSION_DATA: dict[str, Any] = {}

log = logging.getLogger("naive_registry")
log.setLevel(logging.INFO)  # `bokeh serve` sets the level of Bokeh's own logger only


def report(event: str) -> None:
    """Log how many sessions and MB the registry holds."""
    held_mb = sum(getattr(item, "nbytes", 0) for item in SESSION_DATA.values()) / 2**20
    log.info("naive registry holds %d sessions, %.1f MB (%s)", len(SESSION_DATA), held_mb, event)


def remember(session_id: str, value: Any) -> None:
    """Keep ``value`` for the session, forever."""
    SESSION_DATA[session_id] = value
    report(f"session {session_id} created")


def session_ended(session_context: Any) -> None:
    """A ``doc.on_session_destroyed`` callback that only reports: it frees nothing."""
    report(f"session {session_context.id} ended")
