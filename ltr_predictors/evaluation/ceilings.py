"""Reference points for a length predictor: how well lengths that no prompt-only predictor sees rank the target's.

Two figures on the prompts a predictor is evaluated on (optionally one hash split):

- `cross_model`: the other models' lengths for each prompt, mapped onto the target model's scale and averaged
  (the auxiliary estimate of `data.examples`). A predictor reading only the prompt would have to know how a
  dozen other LLMs answer it to match this.
- `self_agreement`: the target model against itself, where records hold several samples: the mean of the first
  half of the samples against the mean of the second half, and one sample against another.

They say how much headroom a Kendall tau goal leaves; they are reference points, not strict bounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.examples import DataSource, read_labels
from ..data.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, split_of
from ..data.traces import read_trace
from .metrics import rank_correlation


def cross_model(
    source: DataSource,
    root: Path | None = None,
    split: str | None = None,
    fractions: tuple[float, float] = (DEFAULT_VAL_FRACTION, DEFAULT_TEST_FRACTION),
) -> dict[str, float | int]:
    """Rank correlation of the other models' estimate with the target model's length, over prompts having both."""
    labels = read_labels(source, root)
    keys = [
        key
        for key in labels.targets
        if key in labels.aux and (split is None or split_of(labels.prompts.get(key, ""), *fractions) == split)
    ]
    return rank_correlation([labels.aux[k] for k in keys], [labels.targets[k] for k in keys])


def self_agreement(
    path: str | Path,
    model: str | None = None,
    split: str | None = None,
    fractions: tuple[float, float] = (DEFAULT_VAL_FRACTION, DEFAULT_TEST_FRACTION),
) -> dict[str, Any] | None:
    """The target model's samples against each other, over records with at least two samples (None: no such record)."""
    records = [
        r
        for r in read_trace(path, model=model)
        if len(r.samples) >= 2 and (split is None or split_of(r.prompt, *fractions) == split)
    ]
    if not records:
        return None
    halves = [(np.mean(r.samples[: len(r.samples) // 2]), np.mean(r.samples[len(r.samples) // 2 :])) for r in records]
    return {
        "half_means": rank_correlation([a for a, _ in halves], [b for _, b in halves]),
        "sample_vs_sample": rank_correlation([r.samples[0] for r in records], [r.samples[1] for r in records]),
    }
