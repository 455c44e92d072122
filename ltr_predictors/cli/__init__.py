"""The `ltr-predictors` command line. Each subcommand lives in `ltr_predictors/cli/<name>.py`; the CLI only parses and
prints, the work is in the library.

A command module defines `register(subparsers)`, which adds its parser and sets `func(args) -> int`. Bad input
(an `LTRPredictorError` from the library, `CommandLineError` for flags that argparse cannot check, or a flag that
argparse refuses) becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import LTRPredictorError
from ._common import EXIT_TAU_UNDEFINED

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool its reader stopped reading
EPILOG = (
    f"exit status: 0 success; {EXIT_BAD_INPUT} bad input or usage (one line on stderr names the file, field or "
    f"value); {EXIT_TAU_UNDEFINED} `eval` or `ceiling` ran but Kendall tau is undefined (see `eval --help`); "
    "`upload` has its own (see `upload --help`)"
)


class _OneLineErrors(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="ltr-predictors",
        description="Output-length predictors for LLM scheduling: load, score, evaluate, train, serve with vLLM.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"ltr-predictors {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LTRPredictorError as exc:
        message = " ".join(str(exc).splitlines())  # one line, even where a message quotes a multi-line reason
        print(f"ltr-predictors {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return EXIT_BROKEN_PIPE
