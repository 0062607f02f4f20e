"""The default models Bokeh drops while it builds a document are freed at once, not by the collector.

How it can fail: the control builds the same document with Bokeh's own ``initialize_document``
and finds models in reference cycles (the collector's garbage); with the runtime's build there
must be none of the demo's kinds, and a model the app keeps outside the document must be intact.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bokeh.application.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.document import Document
from bokeh.layouts import column
from bokeh.model import Model
from bokeh.models import ColumnDataSource, Slider, Title
from bokeh.plotting import figure

from {{ cookiecutter.package_name }}.server import default_orphans

pytestmark = pytest.mark.requires_patch("stall_free")

#: The defaults ``figure(title=...)`` makes and drops on every verified Bokeh.
DROPPED_DEFAULTS = {"Title", "DataRange1d", "LinearScale"}


def build(doc: Document, kept_by_the_app: list[Title]) -> None:
    """The demo's kind of document; the app also keeps a model of its own outside the document."""
    source = ColumnDataSource(data={"x": [1, 2, 3], "y": [3, 1, 2]})
    plot = figure(title="Series", height=300, x_axis_label="day", y_axis_label="value")
    plot.line("x", "y", source=source)
    doc.add_root(column(Slider(title="Window", start=1, end=60, value=1, step=1), plot))
    kept_by_the_app.append(Title(text="kept for later"))


@pytest.fixture
def garbage_models() -> Iterator[Callable[[], set[str]]]:
    """The kinds of models the collector finds in cycles (collected, saved for inspection)."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)

    def kinds() -> set[str]:
        gc.collect()
        return {type(item).__name__ for item in gc.garbage if isinstance(item, Model)}

    try:
        yield kinds
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _initialize(initialize: Callable[[Any, Document], None], kept_by_the_app: list[Title]) -> Document:
    doc = Document()
    initialize(Application(FunctionHandler(lambda doc: build(doc, kept_by_the_app))), doc)
    return doc


def test_control_bokeh_leaves_the_dropped_defaults_to_the_collector(
    garbage_models: Callable[[], set[str]],
) -> None:
    kept: list[Title] = []
    doc = _initialize(Application.initialize_document.__wrapped__, kept)  # type: ignore[attr-defined]
    assert garbage_models() >= DROPPED_DEFAULTS
    assert doc.roots


def test_the_runtime_frees_them_during_the_build(garbage_models: Callable[[], set[str]]) -> None:
    assert hasattr(Application.initialize_document, "__wrapped__")  # installed for the suite
    kept_by_the_app: list[Title] = []
    doc = _initialize(Application.initialize_document, kept_by_the_app)
    assert not DROPPED_DEFAULTS & garbage_models()
    assert doc.roots and len(doc.roots[0].children) == 2  # the document is whole
    (kept,) = kept_by_the_app  # referred to from elsewhere: left alone
    assert kept.text == "kept for later" and kept.document is None


def test_a_model_held_only_by_its_own_containers_is_destroyed_and_freed() -> None:
    gc.disable()
    try:
        orphan = Title(text="dropped")
        tags = orphan.tags  # a container, whose owners refer back to the model
        ref = weakref.ref(orphan)
        del orphan, tags
        assert ref() is not None  # control: its cycle keeps it
        assert default_orphans.free_orphans([ref]) == 1
        assert ref() is None  # freed by reference counting
    finally:
        gc.enable()


def test_a_model_with_references_beyond_its_containers_is_not_destroyed() -> None:
    alive = Title(text="still wanted")
    assert alive.tags == []  # it has a container too
    created = [weakref.ref(alive)]
    assert default_orphans.free_orphans(created) == 0
    assert alive.text == "still wanted" and created == []
