"""A process-wide record the test apps write to, so tests can see what ran in which session."""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
events: Counter[tuple[str, str]] = Counter()


def record(kind: str, session_id: str) -> None:
    """Count one ``kind`` event for ``session_id``."""
    with _lock:
        events[(kind, str(session_id))] += 1


def sessions_with(kind: str) -> Counter[str]:
    """How many ``kind`` events each session had."""
    with _lock:
        return Counter({session: count for (name, session), count in events.items() if name == kind})


def reset() -> None:
    """Forget every event."""
    with _lock:
        events.clear()
