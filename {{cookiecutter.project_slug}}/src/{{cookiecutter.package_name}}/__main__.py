"""``python -m <package>``: the command-line entry point."""

from __future__ import annotations

from .server.cli import main

raise SystemExit(main())
