"""Measure what the vLLM hooks cost: the middleware per request (scoring excluded and included) and the
scheduler hook per `schedule()` call with many waiting requests. Used by `ltr-predictors bench-hook`."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..vllm.middleware import LTRPriorityMiddleware, ScoresPrompts, quiet_scoring
from ..vllm.scheduler_hook import WaitingScorer
from ..vllm.settings import HookSettings


class ConstantScorer:
    """A predictor that costs nothing: isolates the middleware's own work."""

    def score(self, prompts: Sequence[str]) -> list[float]:
        return [0.0] * len(prompts)


@dataclass
class MiddlewareCost:
    sequential_ms: float  # median added latency of one request alone
    concurrent_ms: float  # wall time per request when `concurrency` arrive together


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass


async def _one(mw: LTRPriorityMiddleware, body: bytes) -> None:
    sent = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return sent.pop() if sent else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}
    await mw(scope, receive, send)


def middleware_cost(scorer: ScoresPrompts, prompts: list[str], concurrency: int = 64) -> MiddlewareCost:
    settings = HookSettings(batch_wait_ms=0.0, batch_size=concurrency, timeout_s=60.0)
    mw = LTRPriorityMiddleware(_noop_app, predictor=scorer, settings=settings)
    bodies = [json.dumps({"model": "m", "prompt": p, "max_tokens": 16}).encode() for p in prompts]

    async def run() -> MiddlewareCost:
        await _one(mw, bodies[0])  # warm-up
        times = []
        for body in bodies:
            start = time.perf_counter()
            await _one(mw, body)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for index in range(0, len(bodies), concurrency):
            await asyncio.gather(*(_one(mw, b) for b in bodies[index : index + concurrency]))
        per_request = (time.perf_counter() - start) / len(bodies)
        return MiddlewareCost(statistics.median(times) * 1000, per_request * 1000)

    return asyncio.run(run())


@dataclass(eq=False)
class _Request:
    """Just what the hook and vLLM's priority heap read of a request."""

    prompt_token_ids: list[int]
    arrival_time: float
    priority: int = 0
    status: Any = None
    sampling_params: Any = None

    def __lt__(self, other: _Request) -> bool:
        return (self.priority, self.arrival_time) < (other.priority, other.arrival_time)


@dataclass
class SchedulerHookCost:
    waiting: int
    idle_us: float  # per schedule() call with nothing new
    new_requests: int
    with_new_us: float  # median per schedule() call that scores and re-keys `new_requests`


class _Waiting:
    name = "WAITING"


def scheduler_hook_cost(
    waiting: int = 10_000, new_requests: int = 8, calls: int = 200, scorer: ScoresPrompts | None = None
) -> SchedulerHookCost:
    """Hook cost on vLLM's own `PriorityRequestQueue` when vLLM is installed, else on an equivalent heap.
    `scorer=None` excludes scoring (a constant predictor); prompts are 16 tokens detokenised to text."""
    queue = _priority_queue()
    settings = HookSettings(starvation_steps=1_000_000)
    words = [f"word{i} " for i in range(256)]
    hook = WaitingScorer(
        settings, quiet_scoring(scorer or ConstantScorer()), lambda ids: "".join(words[i] for i in ids)
    )
    now = time.time()
    for index in range(waiting):
        request = _Request(_ids(index), now + index * 1e-4, status=_Waiting())
        hook.on_add(request)
        queue.add_request(request)
    while hook.pending:  # score the initial backlog (max_score_per_step at a time)
        hook.before_schedule(queue)
    start = time.perf_counter()
    for _ in range(calls):
        hook.before_schedule(queue)
    idle = (time.perf_counter() - start) / calls
    times = []  # median per call: on a shared machine a single preemption would dominate a mean
    for call in range(calls):
        for index in range(new_requests):
            request = _Request(_ids(call * 100 + index), now + 10 + call + index * 1e-4, status=_Waiting())
            hook.on_add(request)
            queue.add_request(request)
        start = time.perf_counter()
        hook.before_schedule(queue)
        times.append(time.perf_counter() - start)
    return SchedulerHookCost(len(queue), idle * 1e6, new_requests, statistics.median(times) * 1e6)


def _ids(seed: int) -> list[int]:
    return [(seed * 31 + k * 7) % 256 for k in range(16)]


def _priority_queue() -> Any:
    try:
        from vllm.v1.core.sched.request_queue import PriorityRequestQueue
    except ImportError:
        from ..vllm._heap_queue import HeapRequestQueue

        return HeapRequestQueue()
    return PriorityRequestQueue()
