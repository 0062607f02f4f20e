"""Command line: ``serve`` (``bokeh serve`` with this project's defaults) and future subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import monitor
from .serve import ProductionServe
from .settings import SettingsError


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    serve_parser = subparsers.add_parser(ProductionServe.name, help=ProductionServe.help)
    serve_parser.set_defaults(invoke=ProductionServe(parser=serve_parser).invoke)
    monitor_parser = subparsers.add_parser("monitor", help=monitor.HELP, description=monitor.DESCRIPTION)
    monitor.add_arguments(monitor_parser).set_defaults(invoke=monitor.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit code."""
    package = __name__.rpartition(".")[0]
    try:
        parser = build_parser(prog=f"python -m {package}")
        args = parser.parse_args(argv)
        result = args.invoke(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)
