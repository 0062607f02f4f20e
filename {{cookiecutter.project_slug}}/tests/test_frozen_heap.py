"""The frozen heap: full collections skip what survived, and a discarded document a reference
cycle keeps frozen is still freed, by a reclaim after the next release.

How we know these can fail: each test has its control in it. Frozen objects really are out of
the collector's reach (a plain ``gc.collect()`` leaves the frozen cycle alive), a document freed
by reference counting asks for no reclaim, and a reclaim inside the time budget of the previous
one waits.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from {{ cookiecutter.package_name }}.server import frozen_heap

pytestmark = pytest.mark.requires_patch("stall_free")  # conftest installs it where it is on


class _Document:
    """Stands in for a Bokeh document: weak-referenceable, can be put in a cycle."""

    def __init__(self) -> None:
        self.payload = [object() for _ in range(10)]
        self.cycle: _Document | None = None


@pytest.fixture
def clean_slate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Frozen heap on (the suite installs it), no documents watched, no time budget pending."""
    assert frozen_heap.enabled()
    monkeypatch.setattr(frozen_heap, "_discarded", [])
    monkeypatch.setattr(frozen_heap, "_previous", [])
    monkeypatch.setattr(frozen_heap, "_next_reclaim_at", 0.0)
    monkeypatch.setattr(frozen_heap, "_discards", 0)
    monkeypatch.setattr(frozen_heap, "_garbage_per_discard", frozen_heap.GARBAGE_PER_DISCARD)
    frozen_heap.freeze_all()
    yield


def test_survivors_are_frozen_out_of_full_collections(clean_slate: None) -> None:
    survivors = [{"n": [n]} for n in range(50_000)]
    assert len(gc.get_objects()) >= 100_000  # control: a full collection would walk them all
    frozen_heap.freeze_survivors()
    assert len(gc.get_objects()) < 10_000  # they are out of its reach
    assert gc.get_freeze_count() >= 100_000
    del survivors


def _frozen_discarded_document(in_cycle: bool) -> weakref.ref[_Document]:
    document = _Document()
    if in_cycle:
        document.cycle = document
    frozen_heap.freeze_survivors()
    frozen_heap.watch_discarded(document)
    return weakref.ref(document)


def test_a_discarded_document_in_a_frozen_cycle_is_reclaimed_after_the_next_release(
    clean_slate: None,
) -> None:
    reclaims = frozen_heap.reclaims
    held = _frozen_discarded_document(in_cycle=True)
    gc.collect()
    assert held() is not None  # control: no collection reaches a frozen cycle
    frozen_heap.after_release(0.0)  # the release after the discard: one release of grace
    assert held() is not None and frozen_heap.reclaims == reclaims
    frozen_heap.after_release(0.0)
    assert held() is None and frozen_heap.reclaims == reclaims + 1


def test_a_document_freed_by_reference_counting_asks_for_no_reclaim(clean_slate: None) -> None:
    reclaims = frozen_heap.reclaims
    freed = _frozen_discarded_document(in_cycle=False)
    assert freed() is None  # frozen, yet freed at once
    frozen_heap.after_release(0.0)
    frozen_heap.after_release(0.0)
    assert frozen_heap.reclaims == reclaims


def test_reclaims_keep_to_their_time_budget(clean_slate: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen_heap, "RECLAIM_TIME_FACTOR", 1e6)
    frozen_heap.reclaim("first")  # the next one may only come a million reclaim-times later
    reclaims = frozen_heap.reclaims
    held = _frozen_discarded_document(in_cycle=True)
    for _ in range(3):
        frozen_heap.after_release(0.0)
    assert held() is not None and frozen_heap.reclaims == reclaims  # due, but over the budget
    monkeypatch.setattr(frozen_heap, "_next_reclaim_at", 0.0)  # the budget allows it again
    frozen_heap.after_release(0.0)
    assert held() is None and frozen_heap.reclaims == reclaims + 1  # it was still remembered


def test_garbage_estimated_at_the_live_heap_asks_for_a_reclaim(
    clean_slate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = frozen_heap._baseline  # alive after the last full collection (the fixture's)
    per_discard = frozen_heap.GARBAGE_PER_DISCARD
    reclaims = frozen_heap.reclaims
    below = int(frozen_heap.RECLAIM_SHARE * frozen / per_discard) - 100
    monkeypatch.setattr(frozen_heap, "_discards", below)
    frozen_heap.after_release(0.0)
    assert frozen_heap.reclaims == reclaims  # control: just below the share
    monkeypatch.setattr(frozen_heap, "_discards", below + 400)  # 12,000 objects past the share
    frozen_heap.after_release(0.0)
    assert frozen_heap.reclaims == reclaims + 1
    assert frozen_heap._discards == 0  # counted afresh; the reclaim measured what they left
