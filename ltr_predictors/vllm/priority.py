"""`LTRPriority`: turn predicted-length scores into vLLM priority ints (LOWER runs first), with bounded wait.

Key layout: one int64 per request (vLLM's `EngineCoreRequest.priority` is a msgspec int, and `X-Vllm-Priority`
is read with `int()`):

    key = client_priority * TIER_SPAN + offset        0 <= offset < TIER_SPAN = 2**48

- `client_priority`, the primary key, is the request's own vLLM `priority` (OpenAI body field, `LLM.generate`
  argument; lower first, default 0), clamped to [-2**15, 2**15 - 1] so that every key fits int64. Requests of
  different client priorities never interleave; the predicted length orders requests of EQUAL client priority.
- offset `PROMOTED_OFFSET` (0): promoted by the scheduler's anti-starvation, ahead of every predicted key of the tier.
- offsets 1 .. 2**48 - 2: the predicted-length key, in one of two modes:
  - pure SJF (`max_extra_wait_s=None`): an order-preserving integer image of the score (its IEEE-754 bits, top 48
    kept: scores closer than ~1e-11 relative tie and fall back to arrival order);
  - bounded wait (`max_extra_wait_s=W`): the static EDF key `arrival_ms + W_ms * q(score)`, where `q` is the
    score's percentile in [0, 1] among the last `window` scores. A request can only be overtaken by requests that
    arrived less than W after it, so reordering delays it by at most about W beyond first-come order.
- offset `PENDING_OFFSET` (2**48 - 1): not scored yet, behind every predicted key of the tier.

A key never changes while it is in vLLM's heap unless the scheduler hook re-keys it (see `scheduler_hook.rekey`).
Scores must be finite (`NonFiniteScoreError` otherwise). All outputs are plain Python ints. A request that no hook
keyed (e.g. a body the middleware passed through untouched) keeps its raw `priority` p as its key, i.e. tier
p // 2**48: near the front of tier 0 for a small p >= 0, at the end of tier -1 for a small p < 0.
"""

from __future__ import annotations

import bisect
import logging
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TypeVar

from ..errors import NonFiniteScoreError
from .settings import LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)
T = TypeVar("T", int, float)

NEUTRAL_PERCENTILE = 0.5
TIER_SPAN = 2**48
CLIENT_PRIORITY_MIN = -(2**15)
CLIENT_PRIORITY_MAX = 2**15 - 1
PROMOTED_OFFSET = 0
PENDING_OFFSET = TIER_SPAN - 1
_LAST_KEY_OFFSET = TIER_SPAN - 2  # the largest offset a predicted key may take
_SJF_SHIFT = 16  # keeps finite scores' keys within [1 + 2**36, 2**48 - 2**36]: never on a sentinel
_BOUNDED_ORIGIN_MS = 2**46  # bounded keys of arrivals up to ~2,000 years before or after the epoch stay in range


def float_key(value: float) -> int:
    """An int with the same order as `value` for every finite float (its IEEE-754 bits, sign-folded)."""
    bits: int = struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


def client_tier(priority: int) -> int:
    """The client priority that keys are built under: `priority` clamped to the range the layout holds."""
    if CLIENT_PRIORITY_MIN <= priority <= CLIENT_PRIORITY_MAX:
        return int(priority)  # a plain int (numpy ints would leak into msgspec)
    tier = min(max(priority, CLIENT_PRIORITY_MIN), CLIENT_PRIORITY_MAX)
    logger.warning(
        "ltr-predictors: client priority %d is outside [%d, %d]; ordered as %d",
        priority, CLIENT_PRIORITY_MIN, CLIENT_PRIORITY_MAX, tier,
    )  # fmt: skip
    return tier


def tier_of(key: int) -> int:
    """The client priority a key was built under."""
    return key // TIER_SPAN


def is_pending(key: int) -> bool:
    return key % TIER_SPAN == PENDING_OFFSET


def pending_priority(client_priority: int = 0) -> int:
    """The key of a request not scored yet: after every scored request of its client priority."""
    return client_tier(client_priority) * TIER_SPAN + PENDING_OFFSET


def promoted_priority(client_priority: int = 0) -> int:
    """The key of a request promoted against starvation: before every scored request of its client priority."""
    return client_tier(client_priority) * TIER_SPAN + PROMOTED_OFFSET


class LTRPriority:
    """Scores (higher = longer) to vLLM priorities. Thread-safe; keeps a sliding window of recent scores."""

    def __init__(self, max_extra_wait_s: float | None = None, *, window: int = 1024, epoch_s: float | None = None):
        if max_extra_wait_s is not None and max_extra_wait_s < 0:
            raise ValueError(f"max_extra_wait_s must be >= 0 or None, got {max_extra_wait_s}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.max_extra_wait_s = max_extra_wait_s
        self.window = window
        self.epoch_s = time.time() if epoch_s is None else epoch_s
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self._lock = threading.Lock()

    @property
    def bounded(self) -> bool:
        return self.max_extra_wait_s is not None

    def priorities(
        self,
        scores: Sequence[float],
        arrival_s: Sequence[float] | float | None = None,
        client_priority: Sequence[int] | int = 0,
    ) -> list[int]:
        """One priority per score. `arrival_s` (wall-clock seconds) and `client_priority` (the requests' own vLLM
        priorities) are one per score or one for all; arrivals default to now."""
        values = _finite(scores)
        arrivals = _per_score(arrival_s if arrival_s is not None else time.time(), len(values), "arrival times")
        tiers = [client_tier(c) for c in _per_score(client_priority, len(values), "client priorities")]
        with self._lock:
            for value in values:
                self._remember(value)
            offsets = [self._offset(v, a) for v, a in zip(values, arrivals, strict=True)]
        return [tier * TIER_SPAN + offset for tier, offset in zip(tiers, offsets, strict=True)]

    def priority(self, score: float, arrival_s: float | None = None, client_priority: int = 0) -> int:
        return self.priorities([score], arrival_s, client_priority)[0]

    def neutral(self, arrival_s: float | None = None, client_priority: int = 0) -> int:
        """The priority of a request that could not be scored: the median of recent requests."""
        arrival = time.time() if arrival_s is None else arrival_s
        with self._lock:
            if self.bounded:
                offset = self._bounded_offset(NEUTRAL_PERCENTILE, arrival)
            else:
                offset = _sjf_offset(self._sorted[len(self._sorted) // 2] if self._sorted else 0.0)
        return client_tier(client_priority) * TIER_SPAN + offset

    def percentile(self, score: float) -> float:
        """Share of the window strictly below `score`, plus half the ties: 0 = shortest seen, 1 = longest."""
        if not self._sorted:
            return NEUTRAL_PERCENTILE
        below = bisect.bisect_left(self._sorted, score)
        ties = bisect.bisect_right(self._sorted, score) - below
        return (below + ties / 2) / len(self._sorted)

    def _remember(self, score: float) -> None:
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def _offset(self, score: float, arrival_s: float) -> int:
        if self.bounded:
            return self._bounded_offset(self.percentile(score), arrival_s)
        return _sjf_offset(score)

    def _bounded_offset(self, q: float, arrival_s: float) -> int:
        assert self.max_extra_wait_s is not None
        key = round((arrival_s - self.epoch_s) * 1000) + round(self.max_extra_wait_s * 1000 * q)
        return 1 + min(max(_BOUNDED_ORIGIN_MS + key, 0), _LAST_KEY_OFFSET - 1)


def _sjf_offset(score: float) -> int:
    return 1 + ((float_key(score) + 2**63) >> _SJF_SHIFT)


def _finite(scores: Sequence[float]) -> list[float]:
    values = [float(s) for s in scores]
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise NonFiniteScoreError(f"score {index} is {value}: scores must be finite numbers")
    return values


def _per_score(value: Sequence[T] | T, count: int, what: str) -> list[T]:
    if isinstance(value, int | float):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"got {len(values)} {what} for {count} scores")
    return values
