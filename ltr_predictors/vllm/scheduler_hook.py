"""`WaitingScorer`: what `LTRAsyncScheduler` does, written against request-like objects (no vLLM import).

- `on_add(request)`: the request's own `priority` (the client's, lower first) becomes the primary key of its
  priority (layout: `ltr_predictors.vllm.priority`). A score the client sent (`extra_args["ltr_score"]`, OpenAI body
  `vllm_xargs`) orders it at once; otherwise it gets the pending key (after every scored request of its client
  priority) and is queued for scoring. No model runs here (this is the engine's busy loop).
- `before_schedule(*queues)`: at the start of each `schedule()` call, scores up to `max_score_per_step` pending
  requests in one batch (their prompt ids detokenised to text), whatever their state (waiting for a grammar, for
  remote KV, preempted, running: every one of them can be admitted or picked as a preemption victim by priority); a
  request that cannot be scored gets the neutral priority. Then it promotes requests still waiting after
  `starvation_steps` calls (vllm-ltr's anti-starvation) and re-keys exactly the changed requests in the waiting
  queues (`rekey`), so that each heap stays valid whichever way a key moved.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from ..errors import PromptScoringError
from .batcher import failure_reason, score_each
from .priority import LTRPriority, client_tier, is_pending, pending_priority, promoted_priority, tier_of
from .settings import LOGGER_NAME, HookSettings

logger = logging.getLogger(LOGGER_NAME)

SCORE_KEY = "ltr_score"


class WaitingQueue(Protocol):
    def add_request(self, request: Any) -> None: ...

    def remove_requests(self, requests: Iterable[Any]) -> None: ...

    def __iter__(self) -> Any: ...


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
        client = client_tier(request.priority)
        score = client_score(request)
        if score is not None:
            request.priority = self.priority.priority(score, request.arrival_time, client)
        elif self.score_texts is not None and self.detokenize is not None:
            request.priority = pending_priority(client)
            self.pending.append(request)
        else:
            request.priority = self.priority.neutral(request.arrival_time, client)
        if self.settings.starvation_steps is not None:
            self.enqueued.append((self.step, request))

    def before_schedule(self, *queues: WaitingQueue | None) -> None:
        self.step += 1
        changes = self._score_pending()
        if self.settings.starvation_steps is not None:
            changes += self._promote_starving(self.settings.starvation_steps)
        if changes:
            rekey(queues, changes)

    def _score_pending(self) -> list[tuple[Any, int]]:
        """(request, new key) for up to `max_score_per_step` pending requests, oldest first."""
        batch: list[Any] = []
        while self.pending and len(batch) < self.settings.max_score_per_step:
            request = self.pending.popleft()
            if not _is_finished(request) and is_pending(request.priority):
                batch.append(request)  # (a promotion that replaced the pending key stays)
        if not batch:
            return []
        assert self.score_texts is not None and self.detokenize is not None
        texts = [_prompt_text(self.detokenize, r, i) for i, r in enumerate(batch)]
        scored = iter(score_each(self.score_texts, [t for t in texts if isinstance(t, str)]))
        results = [next(scored) if isinstance(t, str) else t for t in texts]
        ok = [(r, s) for r, s in zip(batch, results, strict=True) if not isinstance(s, PromptScoringError)]
        failed = [(r, e) for r, e in zip(batch, results, strict=True) if isinstance(e, PromptScoringError)]
        if failed:
            logger.warning(
                "ltr-predictors: %d of %d requests could not be scored (first: %s: %s); neutral priority",
                len(failed), len(batch), failed[0][0].request_id, failure_reason(failed[0][1]),
            )  # fmt: skip
        keys = self.priority.priorities(
            [s for _, s in ok], [r.arrival_time for r, _ in ok], [tier_of(r.priority) for r, _ in ok]
        )
        neutral = [(r, self.priority.neutral(r.arrival_time, tier_of(r.priority))) for r, _ in failed]
        return [(r, key) for (r, _), key in zip(ok, keys, strict=True)] + neutral

    def _promote_starving(self, steps: int) -> list[tuple[Any, int]]:
        promoted = []
        while self.enqueued and self.step - self.enqueued[0][0] > steps:  # skipped by `steps` calls
            _, request = self.enqueued.popleft()
            key = promoted_priority(tier_of(request.priority))
            if _never_admitted(request) and request.priority != key:
                promoted.append((request, key))
        return promoted


def rekey(queues: Sequence[WaitingQueue | None], changes: Sequence[tuple[Any, int]]) -> None:
    """Give each request its new key and keep every queue holding it ordered, whichever way the key moved.

    vLLM's `PriorityRequestQueue` is a binary heap in `_heap`: each change is one sift, toward the root or toward
    the leaves, in place (valid before, valid after). A queue without a visible heap gets the public
    `remove_requests` / `add_request`. Requests in no queue (running) just take their new key."""
    remaining = list(changes)
    for queue in queues:
        if queue is None or not remaining:
            continue
        heap = getattr(queue, "_heap", None)
        remaining = _rekey_heap(heap, remaining) if isinstance(heap, list) else _rekey_queue(queue, remaining)
    for request, key in remaining:
        request.priority = key


def _rekey_heap(heap: list[Any], changes: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Re-key the requests of `changes` found in `heap`; return the others."""
    # Pending requests were pushed last with their tier's largest key and rarely move far up: look at the tail
    # first, and verify each hint (earlier sifts move entries); anything else costs one C scan.
    tail = max(0, len(heap) - 4 * len(changes) - 16)
    hints = {id(r): i for i, r in enumerate(heap[tail:], tail)}
    absent = []
    for request, key in changes:
        index = _position(heap, request, hints.get(id(request)))
        if index is None:
            absent.append((request, key))
            continue
        request.priority = key
        heapq._siftdown(heap, 0, index)  # type: ignore[attr-defined]  # toward the root if now below its parent
        if heap[index] is request and _above_a_child(heap, index):
            heapq._siftup(heap, index)  # type: ignore[attr-defined]  # toward the leaves
    return absent


def _above_a_child(heap: list[Any], index: int) -> bool:
    child = 2 * index + 1
    if child >= len(heap):
        return False
    return bool(heap[child] < heap[index] or (child + 1 < len(heap) and heap[child + 1] < heap[index]))


def _position(heap: list[Any], request: Any, hint: int | None) -> int | None:
    if hint is not None and hint < len(heap) and heap[hint] is request:
        return hint
    try:
        index = heap.index(request)  # C scan; vLLM's Request compares equal only to itself
    except ValueError:
        return None
    if heap[index] is request:
        return index
    return next((i for i, r in enumerate(heap) if r is request), None)


def _rekey_queue(queue: WaitingQueue, changes: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    members = {id(r) for r in queue}
    inside = [(r, key) for r, key in changes if id(r) in members]
    queue.remove_requests([r for r, _ in inside])
    for request, key in inside:
        request.priority = key
        queue.add_request(request)
    return [(r, key) for r, key in changes if id(r) not in members]


def _prompt_text(detokenize: Callable[[list[int]], str], request: Any, index: int) -> str | PromptScoringError:
    try:
        return detokenize(list(request.prompt_token_ids))
    except Exception as exc:  # prompt embeddings only (no ids), ids the tokenizer rejects
        error = PromptScoringError(index, "cannot detokenise the prompt")
        error.__cause__ = exc
        return error


def client_score(request: Any) -> float | None:
    """`extra_args["ltr_score"]` of the request's sampling params, when the client sent a finite number."""
    params = getattr(request, "sampling_params", None)
    extra = getattr(params, "extra_args", None) or {}
    value = extra.get(SCORE_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if value is not None:
        logger.warning("ltr-predictors: ignoring %s=%r (not a finite number)", SCORE_KEY, value)
    return None


def _status(request: Any) -> str:
    return str(getattr(request.status, "name", ""))


def _is_finished(request: Any) -> bool:
    return _status(request).startswith("FINISHED")


def _never_admitted(request: Any) -> bool:
    """Waiting in the scheduler's queues since it arrived (WAITING or WAITING_FOR_*: grammar, remote KV, ...)."""
    return _status(request).startswith("WAITING")
