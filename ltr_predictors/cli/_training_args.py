"""The flags of a training run, shared by `train` and `bench-train`: `--recipe`, `--data-dir`, the data-source flags,
`--device`, and one flag per `TrainingConfig` setting and `LoraSettings` field, derived from their fields (type,
choices, bounds and help). Every setting flag defaults to None: the recipe's value stays unless a flag is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from types import UnionType
from typing import Any, get_args, get_type_hints

from ..data.examples import DataSource
from ..errors import CommandLineError, SettingError
from ..training.config import TrainingConfig, check_setting
from ..training.lora import LoraSettings
from ..training.recipes import Recipe, load_recipe, recipe_names

TARGETS = ("mean", "median", "sample")


def add_training_args(parser: argparse.ArgumentParser, repeated: tuple[str, ...] = ()) -> None:
    """Add the flags; those whose destination is in `repeated` take several values, one variant each."""

    def add(flag: str, **options: Any) -> None:
        if flag.lstrip("-").replace("-", "_") in repeated:
            options.update(action="append", help=f"{options.get('help', '')} (repeat to compare)".lstrip())
        parser.add_argument(flag, **options)

    add("--recipe", default=None, help=f"shipped recipe ({', '.join(recipe_names())}) or YAML path")
    add("--data-dir", default=".", help="root the recipe's data paths are relative to")
    add("--data", action="append", default=None, help="trace/records file (repeatable)")
    add("--aux", action="append", default=None, help="file of other models' lengths (repeatable)")
    add("--aux-weight", type=float, default=None, help="blend of auxiliary targets in the label")
    add("--target", choices=TARGETS, default=None, help="reduce sampled lengths to one label")
    add("--target-model", default=None, help="the `model` whose lengths are the target")
    add("--length-tokenizer", default=None, help="tokenizer to count `generated` texts")
    add("--device", default="cpu", help="torch device to train on (cpu, cuda, cuda:1...)")
    hints = get_type_hints(TrainingConfig)
    for setting in dataclasses.fields(TrainingConfig):
        kind = _scalar(hints[setting.name])
        if kind is None:  # `lexical` and `lora` are mappings: the recipe gives them, or the `--lora-*` flags below
            continue
        help_text = setting.metadata["help"]
        flag = "--" + setting.name.replace("_", "-")
        if kind is bool:
            add(flag, action="store_true", default=None, help=help_text)
        elif setting.metadata["choices"]:
            add(flag, choices=setting.metadata["choices"], default=None, help=help_text)
        else:
            add(flag, type=_parser(kind, functools.partial(check_setting, setting)), default=None, help=help_text)
    lora_hints = get_type_hints(LoraSettings)
    for option in dataclasses.fields(LoraSettings):
        kind = _scalar(lora_hints[option.name]) or tuple
        add(
            f"--lora-{option.name}", type=_parser(kind), default=None, help=f"--adapter lora: {option.metadata['help']}"
        )


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe named by `--recipe` (or the defaults), its data replaced by `--data` files, with every flag given."""
    recipe = load_recipe(args.recipe) if args.recipe else Recipe()
    if args.data:
        recipe = recipe.override(data=[DataSource(path=p, aux=list(args.aux or [])) for p in args.data])
    for source in recipe.data:
        source.target_model = args.target_model or source.target_model
        source.target = args.target or source.target
        source.aux_weight = args.aux_weight if args.aux_weight is not None else source.aux_weight
    recipe = recipe.override(**{s.name: getattr(args, s.name, None) for s in dataclasses.fields(TrainingConfig)})
    lora = {f.name: getattr(args, f"lora_{f.name}") for f in dataclasses.fields(LoraSettings)}
    lora = {name: value for name, value in lora.items() if value is not None}
    if not lora:
        return recipe
    if recipe.lora is None:
        raise CommandLineError(f"--lora-{next(iter(lora))} needs --adapter lora (or a recipe with adapter: lora)")
    return recipe.override(lora=dataclasses.replace(recipe.lora, **lora))


def _scalar(hint: Any) -> type | None:
    """The value type of a setting that one flag can give (`X | None` gives X), or None for a mapping or settings."""
    kinds = [kind for kind in (get_args(hint) if isinstance(hint, UnionType) else (hint,)) if kind is not type(None)]
    return kinds[0] if len(kinds) == 1 and kinds[0] in (bool, int, float, str) else None


def _parser(kind: type, check: Callable[[Any], None] | None = None) -> Callable[[str], Any]:
    """argparse `type` of one setting: the text read as `kind` (a tuple: comma-separated), then checked."""

    def parse(text: str) -> Any:
        try:
            value = tuple(p.strip() for p in text.split(",") if p.strip()) if kind is tuple else kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from exc
        try:
            if check is not None:
                check(value)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        return value

    return parse
