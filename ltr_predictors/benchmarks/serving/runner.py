"""Run the replayed workload on one vLLM engine (`AsyncLLM`, priority scheduling) under each admission policy.

One engine serves every policy, so they differ only in the priorities they send: `fcfs` sends 0 (vLLM breaks ties
by arrival), `oracle` the true output length, `random` a random number, `ltr` the predictor's score (pure
shortest-predicted-first) and `ltr-bw` the predictor's score with bounded wait. LTR scores each request when it
arrives, on the micro-batching worker the middleware uses, so its scoring time is inside its TTFT and latency.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...errors import SettingError
from ...vllm.batcher import MicroBatcher
from ...vllm.middleware import ScoresPrompts, quiet_scoring
from ...vllm.priority import LTRPriority
from .metrics import RequestTiming
from .workload import BenchRequest

POLICIES = ("fcfs", "ltr", "ltr-bw", "oracle", "random")
PriorityFn = Callable[[BenchRequest, float], Awaitable[int]]


@dataclass
class EngineOptions:
    model: str
    max_num_seqs: int = 8
    max_model_len: int = 2048
    max_prompt_tokens: int = 256
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = True
    prefix_caching: bool = False  # on, the policy run first would warm the cache for every later one
    seed: int = 0


class BenchEngine:
    """An `AsyncLLM` under `scheduling_policy="priority"` and the target model's tokenizer."""

    def __init__(self, options: EngineOptions) -> None:
        import torch
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.options = options
        memory = options.gpu_memory_utilization or (0.85 if torch.cuda.is_available() else 0.1)
        args = AsyncEngineArgs(
            model=options.model,
            scheduling_policy="priority",
            max_num_seqs=options.max_num_seqs,
            max_model_len=options.max_model_len,
            gpu_memory_utilization=memory,
            enforce_eager=options.enforce_eager,
            enable_prefix_caching=options.prefix_caching,
            seed=options.seed,
            disable_log_stats=False,
        )
        self.engine: Any = AsyncLLM.from_engine_args(args)
        self.tokenizer = AutoTokenizer.from_pretrained(options.model)
        self._ids = 0

    def prompt_ids(self, request: BenchRequest) -> list[int]:
        """The prompt's token ids, truncated so that prompt + output fit `max_model_len`."""
        room = self.options.max_model_len - min(request.output_tokens, self.options.max_model_len // 2)
        ids: list[int] = self.tokenizer(request.prompt, add_special_tokens=True)["input_ids"]
        return ids[: max(1, min(self.options.max_prompt_tokens, room))]

    def max_tokens(self, request: BenchRequest, prompt_len: int) -> int:
        return max(1, min(request.output_tokens, self.options.max_model_len - prompt_len))

    async def run(
        self, requests: list[BenchRequest], offsets: list[float], priority: PriorityFn, on_done: Callable[[], None]
    ) -> tuple[list[RequestTiming], float]:
        """Send each request at its offset; return per-request timings and the makespan (s)."""
        start = time.perf_counter()
        tasks = [
            asyncio.create_task(self._one(request, start + offset, priority, on_done))
            for request, offset in zip(requests, offsets, strict=True)
        ]
        timings = [t for t in await asyncio.gather(*tasks) if t is not None]
        return timings, time.perf_counter() - start

    async def _one(
        self, request: BenchRequest, send_at: float, priority: PriorityFn, on_done: Callable[[], None]
    ) -> RequestTiming | None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        await asyncio.sleep(max(0.0, send_at - time.perf_counter()))
        arrived = time.perf_counter()
        value = await priority(request, time.time())
        ids = self.prompt_ids(request)
        params = SamplingParams(
            max_tokens=self.max_tokens(request, len(ids)),
            ignore_eos=True,
            temperature=1.0,
            seed=request.index,
            output_kind=RequestOutputKind.DELTA,
        )
        self._ids += 1
        first = None
        tokens = 0
        last: Any = None
        async for output in self.engine.generate(
            TokensPrompt(prompt_token_ids=ids), params, f"bench-{self._ids}", priority=value
        ):
            tokens += len(output.outputs[0].token_ids)
            if first is None and tokens:
                first = time.perf_counter()
            last = output
        on_done()
        if last is None or first is None or not last.finished:
            return None
        end = time.perf_counter()
        return RequestTiming(request.index, tokens, first - arrived, end - arrived, _queue_wait(last))

    def shutdown(self) -> None:
        """Shut the engine down and drop it now, while the interpreter is whole: left to interpreter exit, its
        `__del__` would run a second shutdown against half-torn-down modules and print a traceback."""
        engine, self.engine = self.engine, None
        engine.shutdown()
        del engine


def _queue_wait(output: Any) -> float | None:
    metrics = getattr(output, "metrics", None)
    queued, scheduled = getattr(metrics, "queued_ts", 0.0), getattr(metrics, "scheduled_ts", 0.0)
    return scheduled - queued if queued and scheduled else None


def priority_function(
    policy: str,
    *,
    predictor: ScoresPrompts | None = None,
    max_extra_wait_s: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> PriorityFn:
    """How `policy` turns a request (and its wall-clock arrival) into a vLLM priority."""
    if policy == "fcfs":

        async def fcfs(request: BenchRequest, arrival: float) -> int:
            return 0

        return fcfs
    if policy in ("oracle", "random"):
        mapper = LTRPriority()
        rng = random.Random(seed)

        async def known(request: BenchRequest, arrival: float) -> int:
            return mapper.priority(float(request.output_tokens) if policy == "oracle" else rng.random(), arrival)

        return known
    if policy in ("ltr", "ltr-bw"):
        if predictor is None:
            raise SettingError(f"policy {policy!r} needs a predictor")
        if policy == "ltr-bw" and max_extra_wait_s is None:
            raise SettingError("policy 'ltr-bw' needs max_extra_wait_s")
        mapper = LTRPriority(max_extra_wait_s if policy == "ltr-bw" else None)
        batcher = MicroBatcher(quiet_scoring(predictor), max_batch=batch_size, max_queue=1_000_000)

        async def predicted(request: BenchRequest, arrival: float) -> int:
            score = await asyncio.wrap_future(batcher.submit(request.prompt))
            return mapper.priority(score, arrival)

        return predicted
    raise SettingError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
