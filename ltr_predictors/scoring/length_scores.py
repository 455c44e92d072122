"""Turn a predictor's raw head outputs into one score per prompt where HIGHER means a LONGER expected output.

Each family speaks its own language: vllm-ltr rank heads give a logit where higher means shorter, class heads give
logits over length buckets, regression heads give a log length. The library hides all three behind one direction.
"""

from __future__ import annotations

import numpy as np

from .buckets import BucketTable, bucket_midpoints

DEFAULT_DIRECTION = {"rank": "higher_is_shorter", "regression": "higher_is_longer", "class": "higher_is_longer"}


def apply_activation(raw: np.ndarray, activation: str | None) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-raw))
    if activation == "tanh":
        return np.tanh(raw)
    return raw


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def length_scores(
    raw: np.ndarray,
    family: str,
    *,
    direction: str | None = None,
    buckets: BucketTable | None = None,
    activation: str | None = None,
) -> np.ndarray:
    """Scores `(n,)`, higher = longer, from raw outputs `(n, num_labels)`.

    - `rank`: the (activated) logit, negated when the head's direction is `higher_is_shorter`;
    - `class`: the expected length in tokens under the softmax over bucket midpoints;
    - `regression`: the predicted log length (negated if a config says `higher_is_shorter`).
    """
    if family == "class":
        if buckets is None:
            raise ValueError("a class predictor needs a bucket table")
        return softmax(raw) @ bucket_midpoints(buckets)
    values = apply_activation(raw[:, 0], activation)
    if (direction or DEFAULT_DIRECTION[family]) == "higher_is_shorter":
        return -values
    return values
