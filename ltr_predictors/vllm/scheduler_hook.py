"""`WaitingScorer`: what `LTRAsyncScheduler` does, written against request-like objects (no vLLM import).

- `on_add(request)`: a score the client sent (`extra_args["ltr_score"]`, OpenAI body `vllm_xargs`) becomes the
  priority at once; otherwise the request gets the neutral priority and is queued for scoring. No model runs here
  (this is the engine's busy loop).
- `before_schedule(waiting)`: at the start of each `schedule()` call, scores up to `max_score_per_step` pending
  requests in one batch (their prompt ids detokenised to text), promotes requests still waiting after
  `starvation_steps` calls (vllm-ltr's anti-starvation), and re-keys exactly those requests in the waiting queue
  through its public `remove_requests`/`add_request`, so the heap never holds a key that changed in place.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .priority import LTRPriority
from .settings import LOGGER_NAME, HookSettings

logger = logging.getLogger(LOGGER_NAME)

SCORE_KEY = "ltr_score"
PROMOTED_PRIORITY = -(2**62)  # below every key LTRPriority produces; ties among promoted go by arrival
PENDING_PRIORITY = 2**62  # above every key LTRPriority produces: not scored yet
WAITING = "WAITING"


class WaitingQueue(Protocol):
    def add_request(self, request: Any) -> None: ...

    def remove_requests(self, requests: Iterable[Any]) -> None: ...


class WaitingScorer:
    """Priorities for a scheduler's requests; `score_texts` and `detokenize` may be None (neutral priorities)."""

    def __init__(
        self,
        settings: HookSettings,
        score_texts: Callable[[list[str]], Iterable[float]] | None,
        detokenize: Callable[[list[int]], str] | None,
        priority: LTRPriority | None = None,
    ) -> None:
        self.settings = settings
        self.score_texts = score_texts
        self.detokenize = detokenize
        self.priority = priority or LTRPriority(settings.max_extra_wait_s)
        self.pending: deque[Any] = deque()
        self.enqueued: deque[tuple[int, Any]] = deque()
        self.step = 0

    def on_add(self, request: Any) -> None:
        score = client_score(request)
        if score is not None:
            request.priority = self.priority.priority(score, request.arrival_time)
        elif self.score_texts is not None and self.detokenize is not None:
            request.priority = PENDING_PRIORITY
            self.pending.append(request)
        else:
            request.priority = self.priority.neutral(request.arrival_time)
        if self.settings.starvation_steps is not None:
            self.enqueued.append((self.step, request))

    def before_schedule(self, waiting: WaitingQueue) -> None:
        self.step += 1
        changed = self._score_pending()
        if self.settings.starvation_steps is not None:
            changed += self._promote_starving(self.settings.starvation_steps)
        if changed:
            lower_keys(waiting, changed)

    def _score_pending(self) -> list[Any]:
        batch: list[Any] = []
        while self.pending and len(batch) < self.settings.max_score_per_step:
            request = self.pending.popleft()
            if _is_waiting(request) and request.prompt_token_ids is not None:
                batch.append(request)
        if not batch:
            return []
        assert self.score_texts is not None and self.detokenize is not None
        try:
            scores = self.score_texts([self.detokenize(list(r.prompt_token_ids)) for r in batch])
        except Exception as exc:  # a predictor failure must not stop the engine: keep the neutral priorities
            logger.warning("ltr-predictors: scoring %d requests failed (%s: %s)", len(batch), type(exc).__name__, exc)
            return []
        priorities = self.priority.priorities([float(s) for s in scores], [r.arrival_time for r in batch])
        for request, priority in zip(batch, priorities, strict=True):
            request.priority = priority
        return batch

    def _promote_starving(self, steps: int) -> list[Any]:
        promoted = []
        while self.enqueued and self.step - self.enqueued[0][0] > steps:  # skipped by `steps` calls
            _, request = self.enqueued.popleft()
            if _is_waiting(request) and request.priority != PROMOTED_PRIORITY:
                request.priority = PROMOTED_PRIORITY
                promoted.append(request)
        return promoted


def lower_keys(waiting: WaitingQueue, requests: list[Any]) -> None:
    """Restore the waiting queue's order after these requests' priorities were LOWERED in place."""
    heap = getattr(waiting, "_heap", None)
    if not isinstance(heap, list):
        waiting.remove_requests(requests)
        for request in requests:
            waiting.add_request(request)
        return
    # Pending requests were pushed last with the largest key, and nothing pops between `add_request` and the next
    # `schedule()`: they sit at the heap's tail. Look there first; anything else costs one C scan.
    tail = max(0, len(heap) - 4 * len(requests) - 16)
    where = {id(r): i for i, r in enumerate(heap[tail:], tail)}
    positions = []
    for request in requests:
        index = where.get(id(request))
        if index is None:
            try:
                index = heap.index(request)
            except ValueError:  # not in this queue (already admitted or aborted)
                continue
        positions.append(index)
    # A sift moves only ancestors (smaller indices) of its start: ascending order keeps later positions valid.
    for index in sorted(positions):
        heapq._siftdown(heap, 0, index)  # type: ignore[attr-defined]  # moves a lowered key toward the root


def client_score(request: Any) -> float | None:
    """`extra_args["ltr_score"]` of the request's sampling params, when the client sent a number."""
    params = getattr(request, "sampling_params", None)
    extra = getattr(params, "extra_args", None) or {}
    value = extra.get(SCORE_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value is not None:
        logger.warning("ltr-predictors: ignoring non-numeric %s=%r", SCORE_KEY, value)
    return None


def _is_waiting(request: Any) -> bool:
    """Never admitted and not finished: the request is in the scheduler's `waiting` queue."""
    return getattr(request.status, "name", None) == WAITING
