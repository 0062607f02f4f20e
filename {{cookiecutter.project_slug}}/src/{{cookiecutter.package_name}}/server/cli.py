"""Command line of the server: ``serve`` (``bokeh serve`` with this project's defaults)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .serve import ProductionServe
from .settings import PACKAGE, SettingsError


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    serve_parser = subparsers.add_parser(ProductionServe.name, help=ProductionServe.help)
    serve_parser.set_defaults(invoke=ProductionServe(parser=serve_parser).invoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit code."""
    try:
        parser = build_parser(prog=f"python -m {PACKAGE}")
        args = parser.parse_args(argv)
        result = args.invoke(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)
