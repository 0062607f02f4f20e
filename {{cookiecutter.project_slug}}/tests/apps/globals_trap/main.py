"""Bokeh clears this module's globals before destroy callbacks run; the callback reads one.

Served as a plain script (no app_hooks) the callback raises NameError and records nothing: that is
the naive version. Served as this directory app, the project restores the globals and it records.
"""

from __future__ import annotations

from bokeh.io import curdoc
from bokeh.models import Div

import probe

KIND = "destroyed"


def on_destroyed(session_context) -> None:
    probe.record(KIND, session_context.id)  # `probe` and `KIND` are main.py globals


curdoc().on_session_destroyed(on_destroyed)
curdoc().add_root(Div(text="globals"))
