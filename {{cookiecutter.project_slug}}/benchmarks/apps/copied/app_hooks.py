"""Benchmark app hooks: the project's lifecycle, exactly as the real app uses it."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.server.lifecycle import (  # noqa: F401 - Bokeh looks these names up
    on_server_loaded,
    on_server_unloaded,
    on_session_created,
    on_session_destroyed,
)
