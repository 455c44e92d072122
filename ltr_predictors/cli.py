"""The `ltr-predictors` command line. Each subcommand lives in `ltr_predictors/commands/<name>.py`.

A command module defines `register(subparsers)`, which adds its parser and sets `func(args) -> int`. Bad input
raised as an `LTRPredictorError` (`CommandLineError` for flags that argparse cannot check) or a missing file
becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import __version__, commands
from .errors import LTRPredictorError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltr-predictors",
        description="Output-length predictors for LLM scheduling: load, score, evaluate, train, serve with vLLM.",
    )
    parser.add_argument("--version", action="version", version=f"ltr-predictors {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (LTRPredictorError, FileNotFoundError) as exc:
        print(f"ltr-predictors {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
