"""`LTRPriority`: turn predicted-length scores into vLLM priority ints (LOWER runs first), with bounded wait.

Two modes:
- pure SJF (`max_extra_wait_s=None`): the priority is an order-preserving integer image of the score itself
  (IEEE-754 bits), so shorter predicted outputs run first across batches and ties fall back to arrival order.
- bounded wait (`max_extra_wait_s=W`): the static EDF key `arrival_ms + W_ms * q(score)`, where `q` is the
  score's percentile in [0, 1] among the last `window` scores. A request can only be overtaken by requests that
  arrived less than W after it, so reordering delays it by at most about W beyond first-come order; the key never
  changes after it is computed, which keeps vLLM's priority heap valid.

All outputs are plain Python ints (vLLM's `EngineCoreRequest.priority` is a msgspec int).
"""

from __future__ import annotations

import bisect
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence

NEUTRAL_PERCENTILE = 0.5


def float_key(value: float) -> int:
    """An int with the same order as `value` for every finite float (its IEEE-754 bits, sign-folded)."""
    bits: int = struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


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

    def priorities(self, scores: Sequence[float], arrival_s: Sequence[float] | float | None = None) -> list[int]:
        """One priority per score. `arrival_s` (wall-clock seconds, one per score or one for all) defaults to now."""
        arrivals = _arrivals(arrival_s, len(scores))
        with self._lock:
            for score in scores:
                self._remember(float(score))
            return [self._key(float(s), a) for s, a in zip(scores, arrivals, strict=True)]

    def priority(self, score: float, arrival_s: float | None = None) -> int:
        return self.priorities([score], arrival_s)[0]

    def neutral(self, arrival_s: float | None = None) -> int:
        """The priority of a request that could not be scored: the median of recent requests."""
        arrival = time.time() if arrival_s is None else arrival_s
        with self._lock:
            if self.bounded:
                return self._bounded_key(NEUTRAL_PERCENTILE, arrival)
            if not self._sorted:
                return 0
            return float_key(self._sorted[len(self._sorted) // 2])

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

    def _key(self, score: float, arrival_s: float) -> int:
        if self.bounded:
            return self._bounded_key(self.percentile(score), arrival_s)
        return float_key(score)

    def _bounded_key(self, q: float, arrival_s: float) -> int:
        assert self.max_extra_wait_s is not None
        arrival_ms = round((arrival_s - self.epoch_s) * 1000)
        return int(arrival_ms + round(self.max_extra_wait_s * 1000 * q))


def _arrivals(arrival_s: Sequence[float] | float | None, count: int) -> list[float]:
    if arrival_s is None:
        return [time.time()] * count
    if isinstance(arrival_s, int | float):
        return [float(arrival_s)] * count
    arrivals = [float(a) for a in arrival_s]
    if len(arrivals) != count:
        raise ValueError(f"got {len(arrivals)} arrival times for {count} scores")
    return arrivals
