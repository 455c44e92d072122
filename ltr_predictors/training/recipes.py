"""Training recipes: YAML files shipped in `ltr_predictors/training/recipes/` (or any path) naming data relative to a
root.

A recipe fixes everything a run needs (the `TrainingConfig` settings, data sources with their licenses) so that
`ltr-predictors train --recipe default --data-dir ../shared/data --out DIR` is reproducible; command-line options
override single settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from ..data.examples import DataSource
from ..errors import RecipeError, SettingError
from .config import TrainingConfig
from .lora import LoraSettings
from .losses import LossSpec, bucket_table
from .trainables import Trainable, make_trainable

RECIPES_DIR = Path(__file__).parent / "recipes"


@dataclass
class Recipe(TrainingConfig):
    """A named `TrainingConfig` with the data it trains on and the license its weights get by default."""

    name: str = "custom"
    description: str = ""
    license: str = "apache-2.0"
    data: list[DataSource] = field(default_factory=list)

    def override(self, **values: Any) -> Recipe:
        """A copy with every non-None value of a known field replaced."""
        known = {f.name for f in fields(self)}
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None and k in known})

    def loss_spec(self, train_lengths: list[float]) -> LossSpec:
        """The loss; a classification loss gets its bucket table from the training lengths (for `quantile:N`)."""
        buckets = bucket_table(self.buckets, train_lengths) if self.loss == "classification" else None
        return LossSpec(name=self.loss, margin=self.margin, delta=self.delta, buckets=buckets)

    def trainable(self, num_labels: int) -> Trainable:
        """The backbone this recipe trains, with a fresh head of `num_labels` outputs."""
        return make_trainable(
            self.backbone,
            num_labels,
            self.max_length,
            self.seed,
            self.lexical,
            self.chat_template,
            self.train_top_layers,
            self.lora,
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
    try:
        return Recipe(data=sources, **typed)
    except SettingError as exc:
        raise RecipeError(f"{path}: {exc}") from exc


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
