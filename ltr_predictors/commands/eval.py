"""`ltr-predictors eval`: Kendall tau-b (and Spearman) of predictors against length-labelled traces.

With one predictor and one trace it prints the JSON summary and, last, `kendall_tau=<value>`; with several it
prints one summary per (predictor, trace) pair and a comparison table.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..evaluation import evaluate_scores
from ..traces import read_trace
from ._common import add_predictor_args, length_counter, load_predictor, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="Kendall tau of predictors against real output lengths")
    add_predictor_args(parser, multiple=True)
    parser.add_argument("--data", action="append", required=True, help="trace JSONL/CSV (repeatable)")
    parser.add_argument("--length-tokenizer", default=None, help="tokenizer id/folder to count `generated` texts")
    parser.add_argument("--target", default="mean", choices=["mean", "median", "sample"], help="for sampled lengths")
    parser.add_argument("--target-model", default=None, help="keep only records of this `model`")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    counter = length_counter(args.length_tokenizer)
    traces = {path: read_trace(path, counter, target=args.target, model=args.target_model) for path in args.data}
    results: list[dict[str, Any]] = []
    for spec in args.predictor or ["default"]:
        predictor = load_predictor(spec, args)
        for path, records in traces.items():
            scores = predictor.score([r.prompt for r in records], progress=True)
            results.append({"predictor": spec, "data": path, **evaluate_scores(scores, records)})
    if len(results) == 1:
        print_json(results[0])
    else:
        print_json(results)
        print(f"{'predictor':40s} {'data':40s} {'n':>6s} {'tau':>7s} {'rho':>7s}")
        for row in results:
            print(
                f"{row['predictor'][-40:]:40s} {row['data'][-40:]:40s} {row['n']:6d} "
                f"{row['kendall_tau']:7.3f} {row['spearman']:7.3f}"
            )
    print(f"kendall_tau={results[0]['kendall_tau']:.4f}")
    return 0
