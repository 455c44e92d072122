"""Training losses for length predictors, in torch. Scores are HIGHER = LONGER for every loss here.

- `listmle`: one list per batch, Plackett-Luce likelihood of the longest-first order (ties shuffled), as vllm-ltr;
- `margin`: PARS pairwise hinge `max(0, margin - (s_long - s_short))` over pairs whose relative length difference
  `|Li - Lj| / max(Li, Lj)` is at least `delta` (closer pairs are dropped);
- `classification`: cross-entropy over length buckets (vllm-ltr's fixed width, or quantile-balanced);
- `regression`: mean squared error on `log(1 + length)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import LossConfigError
from ..scoring.buckets import VLLM_LTR_MAX_TOKENS, BucketTable, label_of_length, quantile_buckets, vllm_ltr_buckets

LOSSES: tuple[str, ...] = ("listmle", "margin", "classification", "regression")


def listmle_loss(scores: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Negative log-likelihood of the longest-first permutation, averaged over list positions.

    Ties in `lengths` are broken at random (by `generator`) so that no tie order is learnt.
    """
    shuffle = torch.randperm(len(scores), generator=generator).to(scores.device)  # the generator is a CPU one
    s, y = scores[shuffle], lengths[shuffle]
    order = torch.argsort(y, descending=True, stable=True)
    ordered = s[order]
    # log sum_{k >= i} exp(s_k): reverse cumulative logsumexp
    tail = torch.logcumsumexp(ordered.flip(0), dim=0).flip(0)
    return (tail - ordered).mean()


def margin_loss(scores: torch.Tensor, lengths: torch.Tensor, margin: float = 1.0, delta: float = 0.2) -> torch.Tensor:
    """PARS hinge over every pair (long, short) kept by the delta filter; 0 (with a graph) when none is kept."""
    longer = lengths[:, None] > lengths[None, :]
    relative = (lengths[:, None] - lengths[None, :]).abs() / torch.maximum(lengths[:, None], lengths[None, :]).clamp(
        min=1.0
    )
    keep = longer & (relative >= delta)
    if not bool(keep.any()):
        return scores.sum() * 0.0
    gaps = scores[:, None] - scores[None, :]
    return F.relu(margin - gaps[keep]).mean()


def classification_loss(logits: torch.Tensor, lengths: torch.Tensor, buckets: BucketTable) -> torch.Tensor:
    """Cross-entropy of `(n, num_buckets)` logits against the bucket of each length."""
    labels = torch.tensor([label_of_length(float(v), buckets) for v in lengths], device=logits.device)
    return F.cross_entropy(logits, labels)


def regression_loss(scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the score and `log(1 + length)`."""
    return F.mse_loss(scores, torch.log1p(lengths))


def bucket_table(spec: str, lengths: Sequence[float]) -> BucketTable:
    """`820` (vllm-ltr's fixed width in tokens: 10 classes up to 8192) or `quantile:N` (balanced on `lengths`)."""
    try:
        if spec.startswith("quantile:"):
            return quantile_buckets(lengths, int(spec.split(":", 1)[1]))
        width = int(spec)
    except ValueError as exc:
        raise LossConfigError(f"--buckets {spec!r}: expected a width in tokens (820) or quantile:N") from exc
    if not 0 < width < VLLM_LTR_MAX_TOKENS:
        raise LossConfigError(f"--buckets {spec!r}: width must be in 1..{VLLM_LTR_MAX_TOKENS - 1}")
    return vllm_ltr_buckets(math.ceil(VLLM_LTR_MAX_TOKENS / width))


@dataclass
class LossSpec:
    """Which loss and its options; `buckets` only for classification."""

    name: str = "listmle"
    margin: float = 1.0
    delta: float = 0.2
    buckets: BucketTable | None = None

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise LossConfigError(f"unknown loss {self.name!r}; expected one of {', '.join(LOSSES)}")
        if self.name == "classification" and not self.buckets:
            raise LossConfigError("the classification loss needs a bucket table")
        if not 0.0 <= self.delta < 1.0:
            raise LossConfigError(f"delta must be in [0, 1), got {self.delta}")

    @property
    def num_labels(self) -> int:
        return len(self.buckets) if self.name == "classification" and self.buckets else 1

    @property
    def mtype(self) -> str:
        """The usage-config family the trained head belongs to."""
        return {"classification": "class", "regression": "regression"}.get(self.name, "rank")

    def __call__(
        self, outputs: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Loss of raw head outputs `(n, num_labels)` against lengths in tokens `(n,)`."""
        if self.name == "classification":
            assert self.buckets is not None
            return classification_loss(outputs, lengths, self.buckets)
        scores = outputs[:, 0]
        if self.name == "listmle":
            return listmle_loss(scores, lengths, generator)
        if self.name == "margin":
            return margin_loss(scores, lengths, self.margin, self.delta)
        return regression_loss(scores, lengths)
