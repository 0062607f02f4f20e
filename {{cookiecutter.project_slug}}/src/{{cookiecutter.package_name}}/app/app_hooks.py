"""Bokeh directory-app hooks: Bokeh finds these names here and calls them.

They are the runtime's lifecycle hooks, which provide ``session_context.locals``, run every
per-session cleanup once and in isolation, load what ``shared.py`` declares, and hand freed memory
back to the OS. To add your own work to a hook, wrap it and call the runtime's hook first.
"""

from __future__ import annotations

from {{ cookiecutter.package_name }}.app import shared  # noqa: F401 - declares the per-process data
from {{ cookiecutter.package_name }}.server.lifecycle import (  # noqa: F401 - Bokeh looks these names up
    on_server_loaded,
    on_server_unloaded,
    on_session_created,
    on_session_destroyed,
)
