"""The classic leak: an imported module's registry keeps per-session data after the session ends."""

from __future__ import annotations

from typing import Any

SESSION_DATA: dict[str, Any] = {}
