"""Make the runtime's Bokeh check see another version, in every Python started with this on PYTHONPATH.

``pretend.py`` puts this folder on ``PYTHONPATH`` and sets ``PRETEND_BOKEH_VERSION``; Python imports
``sitecustomize`` at start-up, so servers, test runs and their subprocesses all see that version in
``patches.bokeh_version()``. Bokeh itself is untouched: its own ``__version__`` is needed to find
its resources.
"""

from __future__ import annotations

import os

_version = os.environ.get("PRETEND_BOKEH_VERSION")
if _version:
    from {{ cookiecutter.package_name }}.server import patches

    patches.bokeh_version = lambda: _version
