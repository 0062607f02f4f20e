"""The guide's snippets (sections 2 and 3) verbatim; only ``load_large_dataframe`` is ours."""

import sqlite3

import numpy as np
from bokeh.io import curdoc
from bokeh.plotting import figure


class Frame(dict):
    """Stands in for a DataFrame: column attributes, truthiness and ``clear()`` as the guide uses."""

    __getattr__ = dict.__getitem__


def load_large_dataframe():
    x = np.arange(2**17, dtype=float)  # two 1 MB columns (the plot sends them to the browser)
    return Frame(x=x, y=x * 2.0)


def cleanup_resources(session_context):
    # Example: close DB connection, clear caches
    db_conn = session_context.locals.get("db_conn")
    if db_conn:
        db_conn.close()
    cache = session_context.locals.get("data_cache")
    if cache:
        cache.clear()


def modify_doc(doc):
    # Store large DataFrame in session_context, not module global
    df = load_large_dataframe()
    doc.session_context.locals["data_cache"] = df
    p = figure()
    p.line(df.x, df.y)
    doc.add_root(p)


doc = curdoc()
doc.session_context.locals["db_conn"] = sqlite3.connect(":memory:", check_same_thread=False)
modify_doc(doc)
# Register the hook on the current Document
curdoc().on_session_destroyed(cleanup_resources)
