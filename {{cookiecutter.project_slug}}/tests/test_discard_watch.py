"""Discarded objects are watched weakly: a freed one leaves nothing behind, a held one is reported
one release after its discard.

How it can fail: a watch that kept an entry per discarded object (a list of weak references, as
before) still counts the freed one; the held object is the control that counting works.
"""

from __future__ import annotations

from {{ cookiecutter.package_name }}.server.discard_watch import DiscardWatch


class _Document:
    """Stands in for a discarded document (any object that takes weak references)."""


def test_a_freed_object_leaves_no_entry_and_a_held_one_is_reported_a_release_later() -> None:
    watch = DiscardWatch()
    freed, held = _Document(), _Document()
    watch.watch(freed, "freed")
    watch.watch(held, "held")
    del freed
    assert len(watch) == 1  # only the held one: the freed one's entry went with it
    assert watch.held_at_release() == []  # one release of grace
    (key,) = watch.held_at_release()
    assert key[1] == "held" and watch.get(key) is held
    watch.forget([key])
    assert len(watch) == 0 and watch.held_at_release() == []
