"""`ltr-predictors ceiling`: reference points for a trace, to read a predictor's Kendall tau against.

Prints, as JSON, how well the other models' lengths of the same prompts (`cross_model`) and the target model's own
other samples (`self_agreement`) rank the target's lengths, then `cross_model_tau=<value>` as its last line:
`undefined`, with exit status 3, where there is no ranking to measure (e.g. no other model's lengths).
"""

from __future__ import annotations

import argparse
import math
import sys

from ..data.examples import DataSource
from ..data.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, SPLITS
from ..evaluation.ceilings import cross_model, self_agreement
from ._common import EXIT_TAU_UNDEFINED, correlation_text, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ceiling", help="how well other models' and the target's own lengths rank a trace")
    parser.add_argument("--data", required=True, help="trace with the target model's lengths (and other models')")
    parser.add_argument("--aux", action="append", default=[], help="more files of other models' lengths (by id)")
    parser.add_argument("--target-model", default=None, help="the `model` whose lengths are ranked")
    parser.add_argument("--target", default="mean", choices=["mean", "median", "sample"], help="for sampled lengths")
    parser.add_argument("--split", default=None, choices=SPLITS, help="keep only prompts of this hash split")
    parser.add_argument(
        "--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, help="split fractions (as in the recipe)"
    )
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = DataSource(path=args.data, target_model=args.target_model, target=args.target, aux=args.aux)
    fractions = (args.val_fraction, args.test_fraction)
    across = cross_model(source, split=args.split, fractions=fractions)
    print_json(
        {"cross_model": across, "self_agreement": self_agreement(args.data, args.target_model, args.split, fractions)}
    )
    print(f"cross_model_tau={correlation_text(across['kendall_tau'], '.4f')}")
    if math.isnan(across["kendall_tau"]):
        print(
            f"ltr-predictors ceiling: cross-model Kendall tau undefined on the {across['n']} prompt(s) that have both "
            "the target's and other models' lengths",
            file=sys.stderr,
        )
        return EXIT_TAU_UNDEFINED
    return 0
