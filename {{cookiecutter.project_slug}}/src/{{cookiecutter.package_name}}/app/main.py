"""The dashboard: a smoothed time series and a slider whose server-side callback re-smooths it.

It exercises, for real, the usual sources of per-session leaks, each released when the session
ends: per-session data and a cache in ``session_context.locals``, a per-session sqlite3
connection closed by a registered cleanup, a periodic callback and a widget callback.
"""

from __future__ import annotations

import html
import sqlite3
import time

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Slider
from bokeh.plotting import figure

from {{ cookiecutter.package_name }} import PROJECT_NAME, current_user, on_session_end, session_locals
from {{ cookiecutter.package_name }}.app.data import PLOT_POINTS, session_payload_mb, session_working_copy, smooth
from {{ cookiecutter.package_name }}.app.shared import dataset as shared_dataset

doc = curdoc()
store = session_locals(doc)  # the same object as doc.session_context.locals
dataset = shared_dataset()  # read-only, one per process

# Per-session data: derived from the shared dataset, released when the session ends.
doc.session_context.locals["working"] = session_working_copy(dataset, session_payload_mb())
store["smoothed"] = {}  # per-session cache: window -> smoothed series

# A per-session resource that must be closed: an audit log of this session's interactions.
connection = sqlite3.connect(":memory:", check_same_thread=False)
connection.execute("CREATE TABLE interactions (at REAL, window INTEGER)")
store["db"] = connection
on_session_end(doc, connection.close)


def smoothed(window: int):
    """The working series smoothed over ``window`` samples, cached for this session."""
    cache = store["smoothed"]
    if window not in cache:
        cache[window] = smooth(store["working"], window)
    return cache[window]


x_values = dataset.x[:: max(dataset.points // PLOT_POINTS, 1)][:PLOT_POINTS]
source = ColumnDataSource(data={"x": x_values, "y": smoothed(1)})
plot = figure(
    title="Smoothed series",
    height=360,
    sizing_mode="stretch_width",
    x_axis_label="day",
    y_axis_label="value",
    name="main_plot",
)
plot.line("x", "y", source=source, line_width=2)
window_slider = Slider(title="Smoothing window", start=1, end=60, value=1, step=1, name="window")
status = Div(text="", name="status")
started_at = time.monotonic()
user = current_user(doc)  # None unless login is on (AUTH=oidc)
greeting = "" if user is None else f"Signed in as {html.escape(user.name)}. "  # the Div renders HTML


def on_window_change(attr: str, old: int, new: int) -> None:
    """Widget callback: re-smooth on the server and record the interaction."""
    source.data = {"x": x_values, "y": smoothed(new)}
    store["db"].execute("INSERT INTO interactions VALUES (?, ?)", (time.time(), new))


def refresh_status() -> None:
    """Periodic callback: show the session's age and interaction count."""
    (count,) = store["db"].execute("SELECT COUNT(*) FROM interactions").fetchone()
    status.text = f"{greeting}Session open {time.monotonic() - started_at:.0f} s, {count} interaction(s)"


window_slider.on_change("value", on_window_change)
doc.add_periodic_callback(refresh_status, 1000)
doc.add_root(column(window_slider, plot, status, sizing_mode="stretch_width"))
doc.title = PROJECT_NAME
