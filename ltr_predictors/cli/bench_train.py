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
import itertools
import json
import time
from pathlib import Path
from typing import Any

from ..data.examples import Example, read_examples, split_examples
from ..training.losses import LOSSES
from ..training.trainer import train
from ._common import correlation_text, output_file
from .eval import plot_comparison
from .train import heldout_metrics, recipe_from_args
from .train import register as register_train


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench-train", help="compare losses / data / aux targets on one held-out split")
    # the same options as `train` (a recipe and overrides), minus --out, plus the variants to compare
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    register_train(scratch)
    train_parser = scratch.choices["train"]
    for action in train_parser._actions:
        if action.dest in ("help", "out", "loss", "aux_weight"):
            continue
        parser._add_action(action)
    parser.add_argument("--loss", action="append", choices=LOSSES, default=None, help="losses to compare")
    parser.add_argument("--aux-weight", action="append", type=float, default=None, help="aux weights to compare")
    parser.add_argument("--train-on", action="append", default=None, help="comma-separated source names")
    parser.add_argument("--plot", default=None, help="bar chart of held-out tau (PNG)")
    parser.add_argument("--json", default=None, type=output_file, help="write the rows as JSON")
    parser.set_defaults(func=run, out=None)


def run(args: argparse.Namespace) -> int:
    losses, aux_weights = args.loss or [None], args.aux_weight or [None]
    args.loss, args.aux_weight = None, None
    recipe = recipe_from_args(args)
    names = [s.name or s.path for s in recipe.data]
    recipe_weights = [s.aux_weight for s in recipe.data]
    rows: list[dict[str, Any]] = []
    for aux_weight in aux_weights:
        splits: dict[str, dict[str, list[Example]]] = {}
        for source, recipe_weight in zip(recipe.data, recipe_weights, strict=True):
            source.aux_weight = recipe_weight if aux_weight is None else aux_weight
            splits[source.name or source.path] = split_examples(
                read_examples(source, Path(args.data_dir)), recipe.val_fraction, recipe.test_fraction
            )
        test = [e for name in names for e in splits[name]["test"]]
        for loss_name, train_on in itertools.product(losses, args.train_on or [",".join(names)]):
            chosen = train_on.split(",")
            variant = recipe.override(loss=loss_name)
            train_set = [e for name in chosen for e in splits[name]["train"]]
            val_set = [e for name in chosen for e in splits[name]["val"]]
            spec = variant.loss_spec([e.length for e in train_set])
            trainable = variant.trainable(spec.num_labels)
            started = time.monotonic()
            result = train(trainable, train_set, val_set, variant.train_config(spec))
            metrics = heldout_metrics(trainable, spec, test)
            rows.append(
                {
                    "backbone": variant.backbone,
                    "loss": variant.loss,
                    "train_on": train_on,
                    "aux_weight": aux_weight,
                    "val_kendall_tau": result.val_kendall_tau,
                    "train_seconds": round(time.monotonic() - started, 1),
                    "test": metrics,
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
