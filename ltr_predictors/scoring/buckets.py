"""Length buckets of classification predictors, and the expected length they imply.

vllm-ltr labels a completion of L tokens with class `8192 // g - min(8192, L) // g` for a bucket width g, so the
highest class holds the shortest outputs and class 0 everything from `(8192 // g) * g` up. We store the table
explicitly (one `[min_tokens, max_tokens)` pair per class index) so that quantile-balanced tables work too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

VLLM_LTR_MAX_TOKENS = 8192

BucketTable = list[tuple[int, int]]


def vllm_ltr_buckets(num_labels: int, max_tokens: int = VLLM_LTR_MAX_TOKENS) -> BucketTable:
    """vllm-ltr's fixed-width table for `num_labels` classes (width `ceil(max_tokens / num_labels)`).

    For 10 classes: class 9 is 0-819 tokens, class 1 is 6560-7379 and class 0 is 7380 and above.
    """
    width = math.ceil(max_tokens / num_labels)
    top = max_tokens // width  # label of a zero-length output
    table: BucketTable = []
    for label in range(num_labels):
        low = (top - label) * width
        high = max_tokens if label == 0 else low + width
        table.append((max(low, 0), high))
    return table


def quantile_buckets(lengths: Sequence[float], num_labels: int) -> BucketTable:
    """Quantile-balanced table: each class holds about the same share of `lengths`; class 0 is the longest.

    The ordering (higher class = shorter) matches vllm-ltr's so that either kind of table reads the same way.
    """
    values = np.asarray(lengths, dtype=float)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, num_labels + 1)).round().astype(int))
    edges[0] = 0
    edges[-1] = max(int(edges[-1]) + 1, 1)
    ascending = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    return ascending[::-1]


def label_of_length(length: float, table: BucketTable) -> int:
    """The class whose `[min, max)` range holds `length` (clamped to the table's ends)."""
    for label, (low, high) in enumerate(table):
        if low <= length < high:
            return label
    longest = max(range(len(table)), key=lambda i: table[i][1])
    shortest = min(range(len(table)), key=lambda i: table[i][0])
    return longest if length >= table[longest][1] else shortest


def bucket_midpoints(table: BucketTable) -> np.ndarray:
    """Representative length of each class: the middle of its range."""
    return np.array([(low + high) / 2.0 for low, high in table], dtype=np.float64)


def validate_table(table: object, num_labels: int, where: str) -> BucketTable:
    """Check a table read from JSON: `num_labels` pairs of non-negative whole token counts with min < max.

    Booleans, NaN, infinities and fractions are refused: a bucket's midpoint is a score.
    """
    from ..errors import UsageConfigError

    if not isinstance(table, list) or len(table) != num_labels:
        raise UsageConfigError(f"{where}: 'buckets' must list {num_labels} [min_tokens, max_tokens] pairs")
    result: BucketTable = []
    for i, pair in enumerate(table):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(_is_token_count(v) for v in pair)
            or not 0 <= pair[0] < pair[1]
        ):
            raise UsageConfigError(f"{where}: 'buckets[{i}]' must be [min_tokens, max_tokens] with 0 <= min < max")
        result.append((int(pair[0]), int(pair[1])))
    return result


def _is_token_count(value: object) -> bool:
    """A whole, finite number (an int, or a float such as 820.0), not a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
