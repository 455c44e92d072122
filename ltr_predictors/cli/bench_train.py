"""`ltr-predictors bench-train`: compare training variants of one recipe on the same held-out split.

    ltr-predictors bench-train --recipe default --data-dir ../shared/data \\
        --loss listmle --loss margin --loss classification --loss regression
    ltr-predictors bench-train --recipe default --data-dir ../shared/data --train-on castillo --train-on alpacaeval

Every variant reads the recipe's data once, trains on the `train` split of the sources it names (all by default),
and is scored on the `test` split (prompts no recipe trains on) of every source, against the raw target lengths:
cross-dataset tau is a row trained on one source read in another source's column. Prints a Markdown table, with
`--plot` a bar chart, and `--json` the rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

from ..data.examples import Example
from ..training.run import held_out_taus, read_splits
from ..training.trainer import train
from ._common import correlation_text, length_counter, output_file
from ._training_args import add_training_args, recipe_from_args
from .eval import plot_comparison


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench-train", help="compare losses / data / aux targets on one held-out split")
    # the same flags as `train` (a recipe and overrides), without --out; --loss and --aux-weight name the variants
    add_training_args(parser, repeated=("loss", "aux_weight"))
    parser.add_argument("--train-on", action="append", default=None, help="comma-separated source names")
    parser.add_argument("--plot", default=None, help="bar chart of held-out tau (PNG)")
    parser.add_argument("--json", default=None, type=output_file, help="write the rows as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    losses, aux_weights = args.loss or [None], args.aux_weight or [None]
    args.loss, args.aux_weight = None, None
    recipe = recipe_from_args(args)
    counter = length_counter(args.length_tokenizer)
    names = [s.name or s.path for s in recipe.data]
    recipe_weights = [s.aux_weight for s in recipe.data]
    rows: list[dict[str, Any]] = []
    for aux_weight in aux_weights:
        splits: dict[str, dict[str, list[Example]]] = {}
        for source, recipe_weight in zip(recipe.data, recipe_weights, strict=True):
            source.aux_weight = recipe_weight if aux_weight is None else aux_weight
            splits[source.name or source.path] = read_splits(source, recipe, Path(args.data_dir), counter)
        test = [e for name in names for e in splits[name]["test"]]
        for loss_name, train_on in itertools.product(losses, args.train_on or [",".join(names)]):
            chosen = train_on.split(",")
            variant = recipe.override(loss=loss_name)
            train_set = [e for name in chosen for e in splits[name]["train"]]
            val_set = [e for name in chosen for e in splits[name]["val"]]
            spec = variant.loss_spec([e.length for e in train_set])
            trainable = variant.trainable(spec.num_labels)
            started = time.monotonic()
            result = train(trainable, train_set, val_set, spec, variant, device=args.device)
            taus = held_out_taus(trainable, spec, test)
            rows.append(
                {
                    "backbone": variant.backbone,
                    "loss": variant.loss,
                    "train_on": train_on,
                    "aux_weight": aux_weight,
                    "val_kendall_tau": result.val_kendall_tau,
                    "train_seconds": round(time.monotonic() - started, 1),
                    "test": {source: dataclasses.asdict(tau) for source, tau in taus.items()},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows, names))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        flat = [
            {"predictor": f"{r['loss']} / {r['train_on']} / aux {r['aux_weight']}", "data": n, **r["test"][n]}
            for r in rows
            for n in names
            if n in r["test"]
        ]
        plot_comparison(flat, Path(args.plot))
    return 0


def table(rows: list[dict[str, Any]], names: list[str]) -> str:
    head = "| backbone | loss | trained on | aux weight | " + " | ".join(f"test tau {n} (n)" for n in names)
    lines = [head + " | train s |", "|---|---|---|---:|" + "---:|" * len(names) + "---:|"]
    for r in rows:
        cells = " | ".join(_test_cell(r["test"].get(n)) for n in names)
        lines.append(
            f"| {r['backbone']} | {r['loss']} | {r['train_on']} | {r['aux_weight']} | {cells} | {r['train_seconds']} |"
        )
    return "\n".join(lines)


def _test_cell(metrics: dict[str, float] | None) -> str:
    """Held-out tau (n) of one source; `-` where the source has no held-out prompt, `undefined` where tau is."""
    if metrics is None:
        return "-"
    return f"{correlation_text(metrics['kendall_tau'])} ({metrics['n']})"
