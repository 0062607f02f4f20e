"""Full collections on the server's schedule: the startup heap is out of their reach, CPython
runs none by itself, and what died in cycles in the old generation is still collected when due.

How we know these can fail: each test has its control in it. Automatic full collections do run
with CPython's threshold (and not with ours); a young collection leaves a cycle in the old
generation alive; a document freed by reference counting asks for no full collection; one
discard short of paying for a full collection gets none, and so do discards that paid for one
measured with no session live once 999 are; a full collection inside the time budget of the
previous one waits.
"""

from __future__ import annotations

import asyncio
import gc
import math
import types
import weakref
from collections.abc import Callable, Iterator

import pytest

from {{ cookiecutter.package_name }}.server import full_collections, memory

pytestmark = pytest.mark.requires_patch("stall_free")  # conftest installs it where it is on


class _Document:
    """Stands in for a Bokeh document: weak-referenceable, can be put in a cycle."""

    def __init__(self) -> None:
        self.payload = [object() for _ in range(10)]
        self.cycle: _Document | None = None


@pytest.fixture
def clean_slate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Scheduled full collections on (the suite installs them), nothing watched, no budget pending,
    and the last full collection so long that discards do not pay for the next one."""
    assert full_collections.enabled()
    monkeypatch.setattr(full_collections, "_discarded", [])
    monkeypatch.setattr(full_collections, "_previous", [])
    monkeypatch.setattr(full_collections, "_next_allowed_at", 0.0)
    monkeypatch.setattr(full_collections, "_discards", 0)
    monkeypatch.setattr(full_collections, "_cost_per_session_s", 1e6)
    monkeypatch.setattr(full_collections, "_live_sessions", lambda: 0)
    yield
    full_collections.restore_automatic()
    gc.unfreeze()


def _full_collections_while_keeping(count: int) -> int:
    """How many generation-2 collections run while ``count`` new containers survive."""
    seen: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(note)
    try:
        kept = [[n] for n in range(count)]
        del kept
    finally:
        gc.callbacks.remove(note)
    return len(seen)


def test_the_startup_heap_is_frozen_and_automatic_full_collections_are_off(clean_slate: None) -> None:
    startup = [{"n": [n]} for n in range(50_000)]
    assert len(gc.get_objects()) >= 100_000  # control: a full collection would walk them all
    assert full_collections.freeze_startup() >= 100_000
    assert len(gc.get_objects()) < 10_000  # they are out of its reach
    assert _full_collections_while_keeping(400_000) == 0
    full_collections.restore_automatic()
    assert _full_collections_while_keeping(400_000) >= 1  # control: CPython's threshold runs them
    del startup


def test_where_stall_free_is_off_automatic_full_collections_stay_on(
    clean_slate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing would run full collections instead: CPython keeps running its own."""
    monkeypatch.setattr(full_collections, "_enabled", False)
    threshold = gc.get_threshold()
    full_collections.freeze_startup()
    assert gc.get_threshold() == threshold  # control: the test above, where it is on


def _discarded_document_in_the_old_generation(in_cycle: bool) -> weakref.ref[_Document]:
    document = _Document()
    if in_cycle:
        document.cycle = document
    gc.collect(1)  # it survived the young generations: it is in the old one
    full_collections.watch_discarded(document)
    return weakref.ref(document)


def test_a_discarded_document_in_a_cycle_is_collected_in_full_after_the_next_release(
    clean_slate: None,
) -> None:
    done = full_collections.full_collections
    held = _discarded_document_in_the_old_generation(in_cycle=True)
    full_collections.collect()  # the release after the discard: one release of grace
    assert held() is not None  # control: a young collection does not reach the old generation
    assert full_collections.full_collections == done
    full_collections.collect()
    assert held() is None and full_collections.full_collections == done + 1


def test_a_document_freed_by_reference_counting_asks_for_no_full_collection(clean_slate: None) -> None:
    done = full_collections.full_collections
    freed = _discarded_document_in_the_old_generation(in_cycle=False)
    assert freed() is None  # in the old generation, yet freed at once
    full_collections.collect()
    full_collections.collect()
    assert full_collections.full_collections == done


def test_full_collections_keep_to_their_time_budget(
    clean_slate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(full_collections, "TIME_FACTOR", 1e6)
    full_collections.collect_in_full("first")  # the next may only come a million durations later
    monkeypatch.setattr(full_collections, "_cost_per_session_s", 1e6)
    done = full_collections.full_collections
    held = _discarded_document_in_the_old_generation(in_cycle=True)
    for _ in range(3):
        full_collections.collect()
    assert held() is not None and full_collections.full_collections == done  # due, but over budget
    monkeypatch.setattr(full_collections, "_next_allowed_at", 0.0)  # the budget allows it again
    full_collections.collect()
    assert held() is None and full_collections.full_collections == done + 1  # still remembered


def test_discards_pay_for_the_next_full_collection(
    clean_slate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with no session live, 100 discards pay for it
    monkeypatch.setattr(full_collections, "_cost_per_session_s", 100 * full_collections.COST_PER_DISCARD_S)
    done = full_collections.full_collections
    monkeypatch.setattr(full_collections, "_discards", 99)
    full_collections.collect()
    assert full_collections.full_collections == done  # control: one discard short
    monkeypatch.setattr(full_collections, "_discards", 100)
    full_collections.collect()
    assert full_collections.full_collections == done + 1
    assert full_collections._discards == 0  # counted afresh


def test_the_expected_cost_grows_with_the_sessions_a_full_collection_walks(
    clean_slate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection measured with few sessions live is no estimate for one with many: the
    discards that paid for it then would buy a long stall now."""
    live = [0]
    monkeypatch.setattr(full_collections, "_live_sessions", lambda: live[0])
    full_collections.collect_in_full("measured with no session live")
    monkeypatch.setattr(full_collections, "_next_allowed_at", 0.0)  # the time budget is not tested here
    per_session = full_collections.expected_cost_s()
    assert per_session > 0
    live[0] = 999
    assert full_collections.expected_cost_s() == pytest.approx(1000 * per_session)
    # Discards that pay for the collection measured with no session live do not pay for it now.
    needed = max(1, math.ceil(per_session / full_collections.COST_PER_DISCARD_S))
    done = full_collections.full_collections
    monkeypatch.setattr(full_collections, "_discards", needed)
    full_collections.collect()
    assert full_collections.full_collections == done
    live[0] = 0  # control: with no session live they do
    monkeypatch.setattr(full_collections, "_discards", needed)
    full_collections.collect()
    assert full_collections.full_collections == done + 1


def test_a_forced_release_collects_in_full(clean_slate: None) -> None:
    """The memory guard's release: what died in cycles in the old generation goes now."""
    done = full_collections.full_collections
    held = _discarded_document_in_the_old_generation(in_cycle=True)
    memory.release_memory()
    assert held() is not None  # control: a plain release only collects the young generations
    memory.release_memory(force_full=True)
    assert held() is None and full_collections.full_collections == done + 1


def test_the_scheduled_release_gives_the_event_loop_a_turn_between_its_parts(clean_slate: None) -> None:
    """The young collection, the full one that is due and the trim each run in a turn of their own;
    work queued meanwhile runs between them. The same parts in one call (``release_memory``, the
    control) leave no room for it."""
    order: list[str] = []
    steps = (
        lambda: order.append("young") or 0,
        lambda: order.append("old") or 0,
    )

    async def release_beside_other_work(release: Callable[[asyncio.AbstractEventLoop], object]) -> None:
        loop = asyncio.get_running_loop()
        release(loop)
        loop.call_soon(order.append, "other work")  # e.g. a request that came in meanwhile
        await asyncio.sleep(0.1)

    releases = memory.stats.releases
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory, "collection_steps", lambda force_full: steps)
        asyncio.run(release_beside_other_work(lambda _loop: memory.release_memory()))
        assert order == ["young", "old", "other work"]  # the control
        order.clear()
        asyncio.run(release_beside_other_work(memory.release_in_steps))
    assert order == ["young", "other work", "old"]
    assert memory.stats.releases == releases + 2  # both counted once, when done


def _functions_left_in_cycles(release: Callable[[asyncio.AbstractEventLoop], object]) -> list[str]:
    """Functions of this test or of ``memory`` that only the collector could free after ``release``
    ran its course on a loop (with the collector off meanwhile, and releases that collect nothing)."""

    async def release_and_wait(loop_release: Callable[[asyncio.AbstractEventLoop], object]) -> None:
        loop_release(asyncio.get_running_loop())
        await asyncio.sleep(0.05)

    gc.collect()
    gc.disable()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(memory, "collection_steps", lambda force_full: (lambda: 0,))
            patch.setattr(memory, "_trim_heap", lambda: 0)
            asyncio.run(release_and_wait(release))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return [
            found.__qualname__
            for found in gc.garbage
            if isinstance(found, types.FunctionType) and found.__module__ in (memory.__name__, __name__)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_scheduled_release_leaves_no_cycle_for_the_collector(clean_slate: None) -> None:
    """A release in steps schedules its next part without a closure that refers to itself, so it
    leaves nothing to the next full collection. The control, a part that schedules itself from such
    a closure (how it was written before), is found in a cycle."""

    def self_scheduling(loop: asyncio.AbstractEventLoop) -> None:
        def run(index: int) -> None:
            if index < 2:
                loop.call_later(memory.STEP_PAUSE_S, run, index + 1)

        run(0)

    left = _functions_left_in_cycles(self_scheduling)
    assert [name for name in left if name.endswith("self_scheduling.<locals>.run")], left
    assert _functions_left_in_cycles(memory.release_in_steps) == []
