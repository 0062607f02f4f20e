"""Who each session belongs to when login is on: ``current_user(doc)`` for the app.

The session gate fills the record from the login cookie before a session is built (so ``main.py``
already sees its user), the logout ends every session of a user through it, and the session's end
removes its entry. Without login it stays empty and ``current_user`` returns ``None``. No
third-party import here: the package API exports ``current_user`` whether login is on or not.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class User:
    """Who is logged in: the provider's subject, a display name, the email if given, and until when."""

    sub: str
    name: str
    email: str | None
    expires_at: float

    @classmethod
    def from_claims(cls, claims: dict[str, Any], max_age_s: int) -> User:
        name = claims.get("name") or claims.get("preferred_username") or claims.get("email") or claims["sub"]
        return cls(str(claims["sub"]), str(name), claims.get("email"), time.time() + max_age_s)


class SessionUsers:
    """Which user each live session belongs to (filled before the session is built)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}

    def set(self, session_id: str, user: User) -> None:
        with self._lock:
            self._users[session_id] = user

    def get(self, session_id: str) -> User | None:
        with self._lock:
            return self._users.get(session_id)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._users.pop(session_id, None)

    def sessions_of(self, sub: str) -> set[str]:
        with self._lock:
            return {session_id for session_id, user in self._users.items() if user.sub == sub}


SESSION_USERS = SessionUsers()


def current_user(doc: Any) -> User | None:
    """The logged-in user of ``doc``'s session; ``None`` without login or outside a server session."""
    context = getattr(doc, "session_context", None)
    return None if context is None else SESSION_USERS.get(str(context.id))
