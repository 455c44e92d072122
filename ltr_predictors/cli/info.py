"""`ltr-predictors info SPEC`: what a predictor is, license first."""

from __future__ import annotations

import argparse

from ._common import add_loading_args, load_predictor, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="show a predictor's license, family, backbone and source")
    parser.add_argument("spec", help="`default`, a folder, or REPO[:SUBFOLDER][@REVISION]")
    add_loading_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print_json(load_predictor(args.spec, args).info.to_dict())
    return 0
