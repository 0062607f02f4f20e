"""Stall-free expiry: the Bokeh patches are in place and keep Bokeh's leak diagnostic.

The whole suite runs with the patches installed (conftest.py), so the leak tests also prove that
sessions are still freed without Bokeh's per-document ``gc.collect()``. Where this Bokeh is not
verified (``server/patches.py``), the patches are off and these tests skip, saying why.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import types
from collections.abc import Callable
from typing import Any

import bokeh.document.document as bokeh_document
import pytest

from {{ cookiecutter.package_name }}.server import full_collections, memory, stall_free

pytestmark = pytest.mark.requires_patch("stall_free")


def test_patches_are_installed_for_this_suite() -> None:
    assert isinstance(bokeh_document.gc, stall_free._CoalescedGC)
    requests = memory.stats.requests
    assert bokeh_document.gc.collect() == 0  # no heap walk here ...
    assert memory.stats.requests == requests + 1  # ... a batched release instead


def _discard(module: types.ModuleType) -> None:
    manager = types.SimpleNamespace(_modules=[module])
    stall_free._destroy_modules(manager)
    assert manager._modules == []


def test_a_referenced_session_module_is_reported_after_collection(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The report runs a full collection first; an earlier test's one must not hold it back by the
    # time budget (tested in test_full_collections).
    monkeypatch.setattr(full_collections, "_next_allowed_at", 0.0)
    stall_free.report_leaked_modules()
    stall_free.report_leaked_modules()  # start from empty batches
    kept = types.ModuleType("bokeh_app_kept_on_purpose")
    kept_alive = [kept]  # a registry holding the session's module: the leak
    _discard(kept)
    _discard(types.ModuleType("bokeh_app_released"))
    caplog.set_level(logging.ERROR)
    assert stall_free.report_leaked_modules() == 0  # one release of grace
    assert stall_free.report_leaked_modules() == 1
    assert "bokeh_app_kept_on_purpose" in caplog.text and "still referenced" in caplog.text
    assert kept_alive


def _objects_left_in_cycles_by_stopped_runners(stop: Callable[[Any], None], runners: int = 20) -> int:
    """Start ``runners`` periodic callback runners, stop them with ``stop`` as a discarded session
    does, let their tasks finish, and count the objects only a full collection would free."""
    from tornado.ioloop import IOLoop

    async def start_and_stop() -> None:
        started = [stall_free._AsyncPeriodic(lambda: None, 1000, IOLoop.current()) for _ in range(runners)]
        if not hasattr(started[0], "_task"):
            pytest.skip("this Bokeh's periodic runner (before 3.10) has no task to forget")
        for runner in started:
            runner.start()
        await asyncio.sleep(0.01)
        for runner in started:
            stop(runner)
        await asyncio.sleep(0.05)

    gc.collect()
    gc.disable()
    try:
        asyncio.run(start_and_stop())
        return gc.collect()
    finally:
        gc.enable()


def test_a_stopped_periodic_runner_leaves_nothing_for_a_full_collection() -> None:
    """Bokeh 3.10's cancelled runner task keeps its CancelledError, whose traceback's frames hold the
    runner, which holds the task. How we know this can fail: Bokeh's own ``stop`` (the control)
    leaves that cycle, several objects per runner; the patched one must leave less than one."""
    left_by_bokeh = _objects_left_in_cycles_by_stopped_runners(stall_free._AsyncPeriodic.stop.__wrapped__)
    left_by_patch = _objects_left_in_cycles_by_stopped_runners(stall_free._AsyncPeriodic.stop)
    assert left_by_bokeh >= 5 * 20, left_by_bokeh
    assert left_by_patch < 20, left_by_patch
