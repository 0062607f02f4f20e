"""The slow leak: an imported module outlives sessions, so what it keeps is never released."""

from __future__ import annotations

KEPT: list[bytearray] = []


def keep(size: int) -> None:
    """Keep ``size`` bytes forever (touched, so they count in RSS)."""
    KEPT.append(bytearray(b"x" * size))
