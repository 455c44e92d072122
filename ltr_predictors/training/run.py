"""One training run from a recipe: read and split its data, train, measure Kendall tau on the held-out prompts, and
write the predictor with its license block and its `Provenance` (built here, and only here).

`ltr-predictors train` is `train_recipe`; `ltr-predictors bench-train` trains variants from the same pieces
(`read_splits`, `held_out_taus`).
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any

import torch

from ..data.examples import DataSource, Example, read_examples, split_examples
from ..data.traces import LengthCounter
from ..errors import RecipeError
from ..evaluation.metrics import kendall_tau
from ..licensing.terms import KNOWN_LICENSES, LicenseInfo, license_of_backbone
from ..predictor import LengthPredictor
from .config import TrainingConfig
from .distillation import distil
from .losses import LossSpec
from .provenance import HeldOutTau, Provenance, TrainResult
from .recipes import Recipe
from .trainables import LEXICAL, Trainable
from .trainer import scores_of, train, write_predictor


def train_recipe(
    recipe: Recipe,
    out: str | Path,
    *,
    data_dir: str | Path = ".",
    device: str = "cpu",
    count_tokens: LengthCounter | None = None,
) -> TrainResult:
    """Train `recipe` (data paths relative to `data_dir`) on `device` and write the predictor to `out`; returns what
    the run achieved, as its provenance records it. `count_tokens` counts `generated` texts in traces without lengths.
    """
    if not recipe.data:
        raise RecipeError(f"recipe {recipe.name!r}: no data sources to train on")
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for source in recipe.data:
        for name, part in read_splits(source, recipe, Path(data_dir), count_tokens).items():
            splits[name].extend(part)
    teacher = None if recipe.teacher is None else LengthPredictor.from_spec(recipe.teacher)
    if teacher is not None:
        splits["train"] = distil(splits["train"], teacher, recipe.teacher_weight)
    loss = recipe.loss_spec([e.length for e in splits["train"]])
    trainable = recipe.trainable(loss.num_labels)
    result = train(trainable, splits["train"], splits["val"], loss, recipe, device=device)
    result = dataclasses.replace(
        result, seconds=round(result.seconds, 1), test_kendall_tau=held_out_taus(trainable, loss, splits["test"])
    )
    write_predictor(
        out,
        trainable,
        loss,
        max_length=recipe.max_length,
        license_block=license_block(recipe, trainable.pred_model, None if teacher is None else teacher.info.license),
        provenance=provenance_of(recipe, trainable.pred_model, result),
    )
    return result


def read_splits(
    source: DataSource, config: TrainingConfig, root: Path, count_tokens: LengthCounter | None = None
) -> dict[str, list[Example]]:
    """The examples of one source by hash split (`train`, `val`, `test`), at the config's split fractions."""
    return split_examples(read_examples(source, root, count_tokens), config.val_fraction, config.test_fraction)


def held_out_taus(trainable: Trainable, loss: LossSpec, test: list[Example]) -> dict[str, HeldOutTau]:
    """Kendall tau on the held-out (`test`) prompts of each source, against the raw target lengths."""
    taus = {}
    for source in sorted({e.source or "" for e in test}):
        part = [e for e in test if e.source == source and e.target is not None]
        if not part:
            continue
        scores = scores_of(trainable, trainable.encode([e.prompt for e in part]), loss)
        taus[source] = HeldOutTau(n=len(part), kendall_tau=kendall_tau(scores, [e.target or 0.0 for e in part]))
    return taus


def license_block(recipe: Recipe, pred_model: str | None, teacher: LicenseInfo | None = None) -> dict[str, Any]:
    """The weights' license (the backbone's when it has one) and every data source's terms. A distilled student is
    never under looser terms than its teacher: a teacher whose license forbids commercial use, or is unknown, gives
    the student its own license."""
    license_id = license_of_backbone(pred_model) or recipe.license
    data = [{"source": s.name or s.path, "license": s.license, "attribution": s.attribution} for s in recipe.data]
    if teacher is not None:
        data.append({"source": f"teacher {recipe.teacher}", "license": teacher.license, "attribution": None})
        if not teacher.commercial_use:
            license_id = teacher.license or "unknown"
    return {"license": license_id, "data_licenses": data}


def provenance_of(recipe: Recipe, pred_model: str | None, result: TrainResult) -> Provenance:
    """The record of a run: backbone and its license, recipe, data, every setting, results, software."""
    backbone_license = license_of_backbone(pred_model)
    return Provenance(
        backbone=pred_model or LEXICAL,
        backbone_license=backbone_license
        or ("none: trained from scratch" if pred_model is None else "unknown: check its card"),
        backbone_license_link=KNOWN_LICENSES[backbone_license].link if backbone_license else None,
        recipe=recipe.name,
        description=recipe.description or None,
        target_models=sorted({s.target_model or "(single-model file)" for s in recipe.data}),
        data=[s.describe() for s in recipe.data],
        hyperparameters=recipe.hyperparameters(),
        training=result,
        environment={"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()},
    )
