"""Run the project as if another Bokeh were installed: how the tests reach an unverified Bokeh.

Rewriting ``bokeh.__version__`` breaks Bokeh itself (it looks up its resources' hashes by it), so
only the runtime's own check (``patches.bokeh_version``) is made to report ``version``, through
``pretend_bokeh/sitecustomize.py``, in this process's children::

    with project_server(env=pretend_bokeh_env("3.11.0")) as server: ...
    PRETEND_BOKEH_VERSION=3.11.0 PYTHONPATH=<this folder>/pretend_bokeh python -m pytest
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SITE_DIR = Path(__file__).resolve().with_name("pretend_bokeh")
VARIABLE = "PRETEND_BOKEH_VERSION"


def pretend_bokeh_env(version: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that make a child Python's runtime see Bokeh ``version`` (to add to ``environ``)."""
    environ = os.environ if environ is None else environ
    path = os.pathsep.join(part for part in (str(SITE_DIR), environ.get("PYTHONPATH", "")) if part)
    return {VARIABLE: version, "PYTHONPATH": path}
