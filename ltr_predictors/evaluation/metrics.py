"""How well a predictor orders prompts by output length: Kendall tau-b, Spearman, per-dataset breakdown.

Kendall tau goes through the `evaluate` metric module shipped in `ltr_predictors/evaluation/kendall_tau`, which
loads offline. Scores are higher = longer, so a positive tau is good, whatever the predictor's family.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import spearmanr

from ..data.traces import TraceRecord

KENDALL_TAU_MODULE = Path(__file__).parent / "kendall_tau"


@lru_cache(maxsize=1)
def kendall_tau_metric() -> Any:
    import evaluate

    return evaluate.load(str(KENDALL_TAU_MODULE))


def undefined_reason(scores: ArrayLike, lengths: ArrayLike) -> str | None:
    """Why no rank correlation exists between `scores` and `lengths` (None: it does): fewer than two prompts, or
    one side giving every prompt the same value, so that there is no order to compare."""
    scores_arr = np.asarray(scores, dtype=np.float64)
    lengths_arr = np.asarray(lengths, dtype=np.float64)
    if len(scores_arr) < 2:
        return f"{len(scores_arr)} prompt(s): ranking needs at least two"
    if np.ptp(scores_arr) == 0:
        return f"the predictor gives all {len(scores_arr)} prompts the same score"
    if np.ptp(lengths_arr) == 0:
        return f"all {len(lengths_arr)} prompts have the same length"
    return None


def rank_correlation(scores: ArrayLike, lengths: ArrayLike) -> dict[str, float | int]:
    """n, Kendall tau-b with its p-value, and Spearman rho; NaN where `undefined_reason` gives a reason."""
    scores_arr = np.asarray(scores, dtype=np.float64)
    lengths_arr = np.asarray(lengths, dtype=np.float64)
    if undefined_reason(scores_arr, lengths_arr) is not None:
        return {"n": len(scores_arr), "kendall_tau": float("nan"), "p_value": float("nan"), "spearman": float("nan")}
    tau = kendall_tau_metric().compute(predictions=scores_arr, references=lengths_arr, return_pvalue=True)
    rho = spearmanr(scores_arr, lengths_arr).statistic
    return {"n": len(scores_arr), "kendall_tau": tau["kendall_tau"], "p_value": tau["p_value"], "spearman": float(rho)}


def kendall_tau(scores: ArrayLike, lengths: ArrayLike) -> float:
    """Kendall tau-b of `scores` against `lengths` (NaN where undefined): the one figure training selects and reports
    by, through the same metric as `rank_correlation`."""
    return float(rank_correlation(scores, lengths)["kendall_tau"])


def evaluate_scores(scores: ArrayLike, records: Sequence[TraceRecord]) -> dict[str, Any]:
    """Overall correlation plus one entry per `dataset` when records carry that field."""
    summary: dict[str, Any] = dict(rank_correlation(scores, [r.length for r in records]))
    datasets = sorted({r.dataset for r in records if r.dataset})
    if datasets:
        scores_arr = np.asarray(scores)
        summary["per_dataset"] = {
            name: rank_correlation(
                scores_arr[[i for i, r in enumerate(records) if r.dataset == name]],
                [r.length for r in records if r.dataset == name],
            )
            for name in datasets
        }
    return summary
