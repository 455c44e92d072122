"""`LTRSyncScheduler` / `LTRAsyncScheduler` driven the way vLLM's own scheduler unit tests drive a `Scheduler`: a
real `VllmConfig` over the tiny target LM, a KV cache of a few blocks (so that running requests get preempted),
synthetic model-runner outputs, and the real `default` predictor plus client scores over the whole float range.

Apart from the intended order, the classes must keep every upstream invariant. After every `schedule()`: each
waiting heap is valid, every key lies in its client priority's tier and none is left pending, the requests admitted
in that step come before every request left waiting, and no request is lost or duplicated. At the end every
request produced exactly `max_tokens` tokens, once, and every KV block is free again."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vllm_support import require_vllm, tiny_lm

from ltr_predictors import LengthPredictor
from ltr_predictors.vllm.priority import CLIENT_PRIORITY_MAX, CLIENT_PRIORITY_MIN, pending_priority, tier_of

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
require_vllm()

BLOCK_SIZE = 16
PHRASES = (
    "write a long essay about the history of Rome with many details and sections hi list all prime numbers",
    "explain each one in detail story poem yes no summarize translate code python function",
)
WORDS = [word for phrase in PHRASES for word in phrase.split()]
WIDE_SCORES = [-1.7e308, -1e300, -5.0, 0.0, 2.5, 3.0, 1e6, 1e300, 1.7e308]
CLIENT_PRIORITIES = [0, 0, 0, -1, 2, 10**6]  # 10**6 is outside the key layout: clamped, still last


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_lm(tmp_path_factory.mktemp("scheduler-invariants"))


@pytest.fixture(autouse=True)
def default_predictor(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LTR_PREDICTOR", "LTR_MAX_EXTRA_WAIT_S", "LTR_STARVATION_STEPS", "LTR_MAX_SCORE_PER_STEP"):
        monkeypatch.delenv(name, raising=False)


def make_scheduler(model: Path, class_name: str, *, num_blocks: int, max_num_seqs: int) -> Any:
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    import ltr_predictors.vllm as ltr

    config = VllmConfig(
        model_config=ModelConfig(model=str(model), dtype="float32", seed=0, max_model_len=512),
        scheduler_config=SchedulerConfig(
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=64,
            max_model_len=512,
            enable_chunked_prefill=True,
            policy="priority",
            is_encoder_decoder=False,
            async_scheduling=class_name == "LTRAsyncScheduler",
        ),
        cache_config=CacheConfig(block_size=BLOCK_SIZE),
    )
    config.cache_config.num_gpu_blocks = num_blocks
    spec = FullAttentionSpec(block_size=BLOCK_SIZE, num_kv_heads=1, head_size=1, dtype=torch.float32)
    groups = [KVCacheGroupSpec(["layer"], spec)]
    kv_cache = KVCacheConfig(num_blocks=num_blocks, kv_cache_tensors=[], kv_cache_groups=groups)
    return getattr(ltr, class_name)(
        vllm_config=config,
        kv_cache_config=kv_cache,
        structured_output_manager=StructuredOutputManager(config),
        block_size=BLOCK_SIZE,
        log_stats=True,
    )


class Requests:
    """Builds vLLM `Request`s from text through the target model's tokenizer."""

    def __init__(self, model: Path) -> None:
        from transformers import AutoTokenizer
        from vllm.utils.hashing import sha256_cbor
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

        init_none_hash(sha256_cbor)
        self.hasher = get_request_block_hasher(BLOCK_SIZE, sha256_cbor)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model))
        self.clients: dict[str, int] = {}  # request id -> the client priority it was sent with

    def make(self, request_id: str, text: str, max_tokens: int, priority: int = 0, **params: Any) -> Any:
        from vllm import SamplingParams
        from vllm.v1.request import Request

        self.clients[request_id] = priority
        return Request(
            request_id=request_id,
            prompt_token_ids=self.tokenizer.encode(text, add_special_tokens=False),
            sampling_params=SamplingParams(max_tokens=max_tokens, ignore_eos=True, **params),
            pooling_params=None,
            priority=priority,
            block_hasher=self.hasher,
        )


def waiting_queues(scheduler: Any) -> list[Any]:
    return [scheduler.waiting, scheduler.kv_holding_waiting]


def check_step(scheduler: Any, output: Any, clients: dict[str, int], waiting_before: set[str]) -> None:
    for queue in waiting_queues(scheduler):
        heap = queue._heap
        assert all(not heap[i] < heap[(i - 1) // 2] for i in range(1, len(heap))), "waiting heap invalid"
    waiting = [r for queue in waiting_queues(scheduler) for r in queue._heap]
    ids = [r.request_id for r in [*waiting, *scheduler.running]]
    assert sorted(ids) == sorted(scheduler.requests), "a request was lost or duplicated"
    for request in scheduler.requests.values():
        client = min(max(clients[request.request_id], CLIENT_PRIORITY_MIN), CLIENT_PRIORITY_MAX)
        assert tier_of(request.priority) == client and request.priority != pending_priority(client)
    admitted = [scheduler.requests[i] for i in output.num_scheduled_tokens if i in waiting_before]
    ready = [r for r in waiting if r not in scheduler.deferred_waiting]  # deferred: skipped by vLLM on purpose
    for request in admitted:
        assert not any(other < request for other in ready), f"{request.request_id} admitted out of key order"


class Run:
    """What `drive` saw: output tokens per request, and the step at which each request was first scheduled."""

    def __init__(self) -> None:
        self.tokens: dict[str, int] = {}
        self.first_step: dict[str, int] = {}
        self.finished: set[str] = set()


def drive(scheduler: Any, arrivals: Iterator[list[Any]], clients: dict[str, int], token: int = 7) -> Run:
    """Add each step's arrivals, schedule, check, and feed back `token` for each request past its prefill (one
    step later under async scheduling, as the engine does)."""
    from vllm.v1.outputs import ModelRunnerOutput

    depth = 2 if scheduler.__class__.__name__ == "LTRAsyncScheduler" else 1
    in_flight: deque[tuple[Any, dict[str, list[int]]]] = deque()
    run = Run()
    for step in range(5000):
        for request in next(arrivals, None) or []:
            scheduler.add_request(request)
        waiting_before = {r.request_id for queue in waiting_queues(scheduler) for r in queue._heap}
        output = scheduler.schedule()
        check_step(scheduler, output, clients, waiting_before)
        for request_id in output.num_scheduled_tokens:
            run.first_step.setdefault(request_id, step)
        if output.total_num_scheduled_tokens:
            scheduled = output.num_scheduled_tokens
            sampled = {i: [] if scheduler.requests[i].is_prefill_chunk else [token] for i in scheduled}
            in_flight.append((output, sampled))
        if len(in_flight) >= depth or (in_flight and not output.total_num_scheduled_tokens):
            done, done_sampled = in_flight.popleft()
            ids = list(done.num_scheduled_tokens)
            runner = ModelRunnerOutput(
                req_ids=ids,
                req_id_to_index={i: n for n, i in enumerate(ids)},
                sampled_token_ids=[done_sampled[i] for i in ids],
            )
            for engine_outputs in scheduler.update_from_output(done, runner).values():
                for out in engine_outputs.outputs:
                    run.tokens[out.request_id] = run.tokens.get(out.request_id, 0) + len(out.new_token_ids)
                    if out.finish_reason is not None:
                        assert out.request_id not in run.finished, f"{out.request_id} finished twice"
                        run.finished.add(out.request_id)
        if len(run.finished) == len(clients) and not in_flight and not scheduler.has_unfinished_requests():
            return run
    raise AssertionError(f"not done after 5000 steps: {len(run.finished)} of {len(clients)} requests finished")


@pytest.mark.parametrize("class_name", ["LTRSyncScheduler", "LTRAsyncScheduler"])
@pytest.mark.parametrize("seed", [0, 1])
def test_scheduler_classes_keep_vllms_invariants(model: Path, class_name: str, seed: int) -> None:
    scheduler = make_scheduler(model, class_name, num_blocks=10, max_num_seqs=4)
    free_at_start = scheduler.kv_cache_manager.block_pool.get_num_free_blocks()
    rng = random.Random(seed)
    requests = Requests(model)
    made = []
    for index in range(60):  # at most 80 prompt + 40 output tokens: always fits the 9 usable blocks alone
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))[:80]
        extra = {"ltr_score": rng.choice(WIDE_SCORES)} if index % 3 == 0 else None
        client = rng.choice(CLIENT_PRIORITIES)
        made.append(requests.make(f"r{index}", text, rng.randint(1, 40), client, extra_args=extra))
    pending = list(made)

    def arrivals() -> Iterator[list[Any]]:
        while pending:
            yield [pending.pop(0) for _ in range(min(len(pending), rng.randint(0, 3)))]

    run = drive(scheduler, arrivals(), requests.clients)
    assert {r.request_id: r.max_tokens for r in made} == run.tokens
    assert all(r.num_output_tokens == r.max_tokens and r.status.name == "FINISHED_LENGTH_CAPPED" for r in made)
    assert sum(r.num_preemptions for r in made) > 0, "the KV cache must be small enough to preempt"
    assert not scheduler.requests and not scheduler.running and not scheduler.waiting
    assert scheduler.kv_cache_manager.block_pool.get_num_free_blocks() == free_at_start


@pytest.mark.parametrize("class_name", ["LTRSyncScheduler", "LTRAsyncScheduler"])
def test_a_request_waiting_for_its_grammar_is_scored_like_any_other(model: Path, class_name: str) -> None:
    """A structured-output request starts in WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR; once its grammar compiles, it
    is admitted by its predicted length, before the requests that arrived later predicted longer."""
    from vllm.sampling_params import StructuredOutputsParams

    scheduler = make_scheduler(model, class_name, num_blocks=40, max_num_seqs=1)
    requests = Requests(model)
    short, longer = "hi", ["Write a 5000 word story", "yes no", "poem story"]
    scores = LengthPredictor.default().score([short, *longer])
    assert scores[0] < min(scores[1:]), "the grammar request must be predicted shortest"
    grammar = StructuredOutputsParams(regex="a+")
    grammar._backend = "xgrammar"  # what vLLM's input processor sets
    letter_a = requests.tokenizer.encode("a", add_special_tokens=False)[0]

    blocker = requests.make("blocker", "hello", 3, -1)
    constrained = requests.make("grammar", short, 2, structured_outputs=grammar)
    assert constrained.status.name == "WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR"
    late = [requests.make(f"late{i}", text, 2) for i, text in enumerate(longer)]

    def arrivals() -> Iterator[list[Any]]:
        yield [blocker, constrained]
        yield []
        yield late
        scheduler.structured_output_manager.grammar_init(constrained)  # compiles now, after the later arrivals
        deadline = time.monotonic() + 30
        while constrained.structured_output_request.grammar is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    run = drive(scheduler, arrivals(), requests.clients, token=letter_a)  # the grammar accepts only "a"
    assert run.first_step["grammar"] < min(run.first_step[r.request_id] for r in late)
    assert constrained.status.name == "FINISHED_LENGTH_CAPPED" and run.tokens["grammar"] == 2
