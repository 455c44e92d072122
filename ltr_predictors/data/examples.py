"""Training examples from length-labelled files: one (prompt, length) per prompt for a target model.

Reads every format `traces.py` knows (vllm-ltr traces with `generated`, our `output_tokens` records, CASTILLO-style
records with 10 sampled lengths and a `model` per record) and files that label prompts by `id` only (AlpacaEval's
`lengths.csv.gz`). Lengths of other models on the same prompt are auxiliary targets: mapped onto the target
model's scale (per-model mean and spread of log length) and averaged, they de-noise the label
(`aux_weight` blends them in) and label prompts the target model never answered (`aux_only`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TraceFormatError
from .splits import split_of
from .traces import LengthCounter, iter_rows, optional_str, prompt_of, reduce_samples, samples_of


@dataclass
class Example:
    """One training prompt. `length` is the training label in target-model tokens; `target` the raw one (or None)."""

    prompt: str
    length: float
    target: float | None
    dataset: str | None = None
    source: str | None = None


@dataclass
class DataSource:
    """One labelled file and how to read it (a recipe's `data` entry, or one `--data` of the CLI)."""

    path: str
    target_model: str | None = None
    target: str = "mean"
    aux: list[str] = field(default_factory=list)
    aux_weight: float = 0.0
    aux_only: bool = False
    name: str | None = None
    license: str | None = None
    attribution: str | None = None

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], False)}


@dataclass
class _Row:
    key: str
    model: str | None
    length: float
    prompt: str | None
    dataset: str | None


@dataclass
class Labels:
    """What one source says about its prompts (keyed by `id` or prompt text): the target model's lengths and, from
    the other models in the same files, log-length estimates on the target's scale (see `_aux_estimates`)."""

    target_model: str | None
    prompts: dict[str, str]
    datasets: dict[str, str | None]
    targets: dict[str, float]
    aux: dict[str, float]


def read_labels(
    source: DataSource, root: Path | None = None, count_tokens: LengthCounter | None = None, with_aux: bool = True
) -> Labels:
    """The target model's lengths of one source, and the other models' estimates when `with_aux`."""
    main_path = _resolve(source.path, root)
    rows = _read_rows(main_path, source.target, count_tokens)
    aux_rows = [row for path in source.aux for row in _read_rows(_resolve(path, root), source.target, count_tokens)]
    target_model = source.target_model or _single_model(rows, main_path)
    prompts: dict[str, str] = {}
    datasets: dict[str, str | None] = {}
    for row in rows + aux_rows:
        if row.prompt is not None:
            prompts.setdefault(row.key, row.prompt)
            datasets.setdefault(row.key, row.dataset)
    by_model: dict[str | None, dict[str, float]] = defaultdict(dict)
    for row in rows + aux_rows:
        by_model[row.model].setdefault(row.key, row.length)
    if target_model not in by_model:
        known = sorted(str(m) for m in by_model)
        raise TraceFormatError(f"{main_path}: no records for target model {target_model!r}; models: {known}")
    targets = by_model.pop(target_model)
    aux = _aux_estimates(targets, by_model) if by_model and with_aux else {}
    return Labels(target_model, prompts, datasets, targets, aux)


def read_examples(
    source: DataSource, root: Path | None = None, count_tokens: LengthCounter | None = None
) -> list[Example]:
    """Examples of one source; file paths are relative to `root` when given."""
    labels = read_labels(source, root, count_tokens, with_aux=source.aux_weight > 0 or source.aux_only)
    examples = []
    for key in sorted(set(labels.targets) | (set(labels.aux) if source.aux_only else set())):
        if key not in labels.prompts:
            continue
        raw = labels.targets.get(key)
        examples.append(
            Example(
                prompt=labels.prompts[key],
                length=_blend(raw, labels.aux.get(key), source.aux_weight),
                target=raw,
                dataset=labels.datasets.get(key),
                source=source.name or source.path,
            )
        )
    if not examples:
        raise TraceFormatError(f"{_resolve(source.path, root)}: no examples for target model {labels.target_model!r}")
    return examples


def split_examples(examples: Iterable[Example], val_fraction: float, test_fraction: float) -> dict[str, list[Example]]:
    """Examples by split (`train`, `val`, `test`), assigned by prompt text hash (see `splits.py`)."""
    out: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for example in examples:
        out[split_of(example.prompt, val_fraction, test_fraction)].append(example)
    return out


def _resolve(path: str, root: Path | None) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or root is None else root / candidate


def _read_rows(path: Path, target: str, count_tokens: LengthCounter | None) -> list[_Row]:
    """Every record of one file (none is an error: a file named but empty is a mistake)."""
    rows = [_row_of(row, f"{path}:{number}", target, count_tokens) for number, row in iter_rows(path)]
    if not rows:
        raise TraceFormatError(f"{path}: no records")
    return rows


def _row_of(row: dict[str, Any], where: str, target: str, count_tokens: LengthCounter | None) -> _Row:
    prompt = prompt_of(row, where) if isinstance(row.get("prompt"), str) else None
    if prompt is None and not isinstance(row.get("id"), str):
        raise TraceFormatError(f"{where}: needs a string 'prompt' (or an 'id' that another file names)")
    return _Row(
        key=_key_of(row, prompt),
        model=optional_str(row.get("model")),
        length=reduce_samples(samples_of(row, where, count_tokens), target),
        prompt=prompt,
        dataset=optional_str(row.get("dataset")) or optional_str(row.get("source")),
    )


def _key_of(row: dict[str, Any], prompt: Any) -> str:
    """Rows join on `id` when they have one (AlpacaEval files share ids), else on the prompt text."""
    ident = row.get("id")
    return f"id:{ident}" if isinstance(ident, str) and ident else f"prompt:{prompt}"


def _single_model(rows: list[_Row], path: Path) -> str | None:
    models = sorted({str(r.model) for r in rows if r.model is not None})
    if len(models) > 1:
        raise TraceFormatError(f"{path}: holds several models ({', '.join(models[:5])}...): name --target-model")
    return models[0] if models else None


def _aux_estimates(targets: dict[str, float], others: dict[str | None, dict[str, float]]) -> dict[str, float]:
    """Per prompt, the other models' log lengths mapped onto the target's scale, averaged.

    Each model's map is the linear one that matches its mean and spread of log length to the target's on the
    prompts both answered (models sharing fewer than 10 prompts with the target are skipped).
    """
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for lengths in others.values():
        common = [key for key in lengths if key in targets]
        if len(common) < 10:
            continue
        scale, shift = matched_scale(
            np.log1p([lengths[key] for key in common]), np.log1p([targets[key] for key in common])
        )
        for key, value in lengths.items():
            sums[key] += shift + scale * math.log1p(value)
            counts[key] += 1
    return {key: sums[key] / counts[key] for key in sums}


def matched_scale(values: np.ndarray, target_logs: np.ndarray) -> tuple[float, float]:
    """(scale, shift) of the linear map that gives `values` the mean and spread of `target_logs` (log lengths):
    how another model's log lengths, or a predictor's scores, are put on the target model's scale."""
    scale = float(np.std(target_logs)) / (float(np.std(values)) or 1.0)
    return scale, float(np.mean(target_logs)) - scale * float(np.mean(values))


def _blend(target: float | None, aux_log: float | None, weight: float) -> float:
    """The label in tokens: the target, its log blended with the auxiliary estimate, or the estimate alone."""
    if aux_log is None or (weight == 0.0 and target is not None):
        assert target is not None
        return target
    if target is None:
        return math.expm1(aux_log)
    return math.expm1((1.0 - weight) * math.log1p(target) + weight * aux_log)
