"""Bokeh directory-app hooks: Bokeh finds these names here and calls them.

They delegate to the package's lifecycle module, which provides ``session_context.locals``, runs
every per-session cleanup once and in isolation, and hands freed memory back to the OS.
"""

from __future__ import annotations

from {{ cookiecutter.package_name }}.lifecycle import (  # noqa: F401 - Bokeh looks these names up
    on_server_loaded,
    on_server_unloaded,
    on_session_created,
    on_session_destroyed,
)
