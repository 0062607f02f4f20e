"""Cleanups of every kind, one of them raising, all recording into ``probe`` (a main.py global)."""

from __future__ import annotations

from bokeh.io import curdoc
from bokeh.models import Div

from {{ cookiecutter.package_name }}.server.cleanup import on_session_end

import probe

doc = curdoc()
session_id = doc.session_context.id


def record_registered() -> None:
    probe.record("registered", session_id)


def fail_loudly() -> None:
    raise RuntimeError("this cleanup fails on purpose")


def record_document_level(session_context) -> None:
    probe.record("document", session_context.id)


on_session_end(doc, record_registered)
on_session_end(doc, fail_loudly)  # runs first (last registered first) and must not stop the others
doc.on_session_destroyed(record_document_level)
probe.record("created", session_id)
doc.add_root(Div(text="cleanups"))
