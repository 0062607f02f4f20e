"""BENCHMARK ONLY: the demo's figure written the naive way, per-session data in a module registry.

Served with plain ``bokeh serve benchmarks/apps/naive`` (no app hooks, no cleanups). Each session
derives the same working array as the project's app (``<PACKAGE>_SESSION_PAYLOAD_MB``) and draws
the same smoothed line, but keeps the array in ``naive_registry`` keyed by session id, a common
pattern for "look the session's data up later" that no session end ever empties.
"""

from __future__ import annotations

import naive_registry
from bokeh.io import curdoc
from bokeh.plotting import figure

from {{ cookiecutter.package_name }}.app import data
from {{ cookiecutter.package_name }}.app.shared import dataset as shared_dataset

doc = curdoc()
dataset = shared_dataset()
working = data.session_working_copy(dataset, data.session_payload_mb())
naive_registry.remember(doc.session_context.id, working)  # the leak
doc.on_session_destroyed(naive_registry.session_ended)  # reports only; frees nothing

x_values = dataset.x[:: max(dataset.points // data.PLOT_POINTS, 1)][: data.PLOT_POINTS]
plot = figure(title="Smoothed series", height=360, sizing_mode="stretch_width", name="main_plot")
plot.line(x_values, data.smooth(working, 1), line_width=2)
doc.add_root(plot)
doc.title = "naive"
