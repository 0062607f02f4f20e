"""Which discarded objects (documents, session modules) are still alive one release later.

A discarded document or session module that outlives the next memory release is either waiting
for a full collection (it is in a reference cycle) or leaked: ``full_collections`` collects in full
for the first, ``stall_free`` reports the second. Both watch the objects weakly, here, in a
``WeakValueDictionary``: a freed object's entry goes with it, during the discards. Kept as a list
of weak references until the next release, a batch of 2,000 discards left 4,000 dead references
and their tuples for the full collection after the batch to walk, almost half of what it walked
(Bokeh 3.10.2, 2 cores).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterable
from typing import Any

#: How a watched object is known: its number in discard order, and a label (its name).
Key = tuple[int, str]


class DiscardWatch:
    """Objects watched weakly from their discard, numbered in discard order."""

    def __init__(self) -> None:
        # Keys are (number, label) tuples of atoms: the collector does not track them.
        self._alive: weakref.WeakValueDictionary[Key, Any] = weakref.WeakValueDictionary()
        self._numbers = itertools.count()
        self._first_since_release = 0  # objects numbered from here were discarded since the last release
        self._lock = threading.Lock()  # never taken in a weak-reference callback

    def watch(self, discarded: Any, label: str = "") -> None:
        """Watch ``discarded`` (weakly) from now; ``label`` names it once it cannot say (a cleared
        module has lost its ``__name__``)."""
        with self._lock:
            self._alive[next(self._numbers), label] = discarded

    def held_at_release(self) -> list[Key]:
        """At a release: the keys of the objects discarded before the previous release that are
        still alive. Those discarded since then have until the next release."""
        with self._lock:
            before = self._first_since_release
            self._first_since_release = next(self._numbers)
            return sorted(key for key in list(self._alive.keys()) if key[0] < before)

    def get(self, key: Key) -> Any | None:
        """The object watched under ``key`` if it is still alive."""
        return self._alive.get(key)

    def forget(self, keys: Iterable[Key]) -> None:
        """Stop watching these (a leak already reported, or collected in full)."""
        with self._lock:
            for key in keys:
                self._alive.pop(key, None)

    def __len__(self) -> int:
        return len(self._alive)
