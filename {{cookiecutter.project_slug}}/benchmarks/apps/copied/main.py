"""BENCHMARK ONLY: the demo's figure with a private copy of the full dataset in every session.

The project's app reads one read-only dataset loaded once per process; this app calls
``data.generate_dataset()`` in every session instead (sized by ``<PACKAGE>_DATASET_POINTS``, like
the shared one) and keeps it in ``session_context.locals``. Everything is released when the session
ends (the project's app hooks), so the only difference ``benchmarks/memory.py`` measures is the
copy: MB per session, shared versus copied.
"""

from __future__ import annotations

from bokeh.io import curdoc
from bokeh.plotting import figure

from {{ cookiecutter.package_name }}.app import data

doc = curdoc()
store = doc.session_context.locals
store["dataset"] = dataset = data.generate_dataset(data.dataset_points())  # per-session copy
store["working"] = data.session_working_copy(dataset, data.session_payload_mb())

x_values = dataset.x[:: max(dataset.points // data.PLOT_POINTS, 1)][: data.PLOT_POINTS]
plot = figure(title="Smoothed series", height=360, sizing_mode="stretch_width", name="main_plot")
plot.line(x_values, data.smooth(store["working"], 1), line_width=2)
doc.add_root(plot)
doc.title = "copied"
