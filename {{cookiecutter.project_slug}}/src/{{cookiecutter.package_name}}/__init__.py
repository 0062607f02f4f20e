"""A production Bokeh server app whose sessions release their memory when they end."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The Bokeh directory app (``main.py`` + ``app_hooks.py``) served by ``python -m <package> serve``.
APP_DIR = Path(__file__).resolve().parent / "app"
