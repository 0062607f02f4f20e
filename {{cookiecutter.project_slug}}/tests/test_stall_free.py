"""Stall-free expiry: the Bokeh patches are in place and keep Bokeh's leak diagnostic.

The whole suite runs with the patches installed (conftest.py), so the leak tests also prove that
sessions are still freed without Bokeh's per-document ``gc.collect()``. Where this Bokeh is not
verified (``server/patches.py``), the patches are off and these tests skip, saying why.
"""

from __future__ import annotations

import logging
import types

import bokeh.document.document as bokeh_document
import pytest

from {{ cookiecutter.package_name }}.server import memory, stall_free

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


def test_a_referenced_session_module_is_reported_after_collection(caplog: pytest.LogCaptureFixture) -> None:
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
