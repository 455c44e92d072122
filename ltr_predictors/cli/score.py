"""`ltr-predictors score`: score a file of prompts and write one JSON line per prompt.

Each line keeps the row's `id`, the prompt's index, score, rank and `prompt_sha1`, by which `bench --scores` replays it.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..benchmarks.serving.replayed_scores import prompt_sha1
from ._common import add_predictor_args, load_predictor, output_file, read_prompts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score prompts (higher = longer expected output)")
    add_predictor_args(parser)
    parser.add_argument("--input", required=True, help="prompts.txt (one per line) or prompts.jsonl/.csv")
    parser.add_argument("--output", default="-", type=output_file, help="scores.jsonl (default: stdout)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prompts, rows = read_prompts(args.input)
    predictor = load_predictor(args.predictor, args)
    scores = predictor.score(prompts, progress=True)
    ranks = scores.argsort(kind="stable").argsort(kind="stable")
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for index, (prompt, row, score, rank) in enumerate(zip(prompts, rows, scores, ranks, strict=True)):
            record = {"index": index, "score": float(score), "rank": int(rank), "prompt_sha1": prompt_sha1(prompt)}
            if "id" in row:
                record = {"id": row["id"], **record}
            out.write(json.dumps(record) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output != "-":
        print(f"wrote {len(prompts)} scores to {args.output} ({predictor.info.name})", file=sys.stderr)
    return 0
