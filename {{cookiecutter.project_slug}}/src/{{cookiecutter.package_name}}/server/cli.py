"""Command line of the server: ``serve`` (``bokeh serve`` with this project's defaults) and ``patches``
(which runtime pieces are on for the installed Bokeh; exit status 1 if any is off)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import patches
from .serve import ProductionServe
from .settings import PACKAGE, SettingsError


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    serve_parser = subparsers.add_parser(ProductionServe.name, help=ProductionServe.help)
    serve_parser.set_defaults(invoke=ProductionServe(parser=serve_parser).invoke)
    report = "Which runtime pieces that use Bokeh internals are on here, and why (exit 1: one is off)"
    patches_parser = subparsers.add_parser("patches", help=report, description=report)
    patches_parser.set_defaults(invoke=lambda args: patches.print_report())
    return parser


def _root_cause(error: BaseException) -> BaseException:
    """The first exception of a chain (Bokeh reports a bad ``--address`` as a ``KeyError`` raised
    while handling the ``socket.gaierror`` that says what is wrong)."""
    while (earlier := error.__cause__ or error.__context__) is not None:
        error = earlier
    return error


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit code.

    A bad setting exits 2, any other error that stops the server exits 1; both print one line,
    not a traceback (``--log-level debug`` lets the traceback through).
    """
    args = None
    try:
        parser = build_parser(prog=f"python -m {PACKAGE}")
        args = parser.parse_args(argv)
        result = args.invoke(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if getattr(args, "log_level", None) in ("debug", "trace"):
            raise
        cause = _root_cause(error)
        print(
            f"error: the server stopped: {type(cause).__name__}: {cause} (--log-level debug shows where)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)
