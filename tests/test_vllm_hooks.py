"""The vLLM hooks' pure-Python parts (no vLLM needed): priorities, micro-batching, request text, middleware,
offline `generate`'s policy check and the scheduler hook's scoring/re-keying/promotion."""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from tiny_models import write_seed_predictor, write_tokenizer_repo

import ltr_predictors.vllm as ltr
from ltr_predictors.vllm.batcher import BatcherFull, MicroBatcher
from ltr_predictors.vllm.middleware import load_scorer
from ltr_predictors.vllm.prompt_text import prompt_texts
from ltr_predictors.vllm.scheduler_hook import PROMOTED_PRIORITY, WaitingScorer, lower_keys

# ------------------------------------------------------------------------------------------------- LTRPriority


def test_sjf_priorities_follow_scores_as_python_ints() -> None:
    mapper = ltr.LTRPriority()
    scores = [3.5, -2.0, 0.0, 1e-9, -1e-9, 120.0]
    priorities = mapper.priorities(scores)
    assert all(type(p) is int for p in priorities)
    assert sorted(range(6), key=priorities.__getitem__) == sorted(range(6), key=scores.__getitem__)
    later = mapper.priority(0.5)
    assert priorities[3] < later < priorities[0]  # consistent across calls: no per-batch normalisation


def test_bounded_wait_key_caps_the_extra_wait() -> None:
    """Adversarial arrivals: a long-predicted request at t=0 is only overtaken by requests arriving < W later."""
    mapper = ltr.LTRPriority(max_extra_wait_s=2.0, epoch_s=1000.0)
    mapper.priorities([float(s) for s in range(100)], 999.0)  # warm the window
    long_first = mapper.priority(99.0, 1000.0)
    shortest_later = [mapper.priority(0.0, 1000.0 + t) for t in (0.5, 1.5, 2.0, 2.5, 3.0)]
    assert [p < long_first for p in shortest_later] == [True, True, False, False, False]
    assert 0 < long_first <= 2000  # key = arrival_ms + W_ms * q with q in [0, 1]


def test_bounded_percentile_and_neutral() -> None:
    mapper = ltr.LTRPriority(max_extra_wait_s=10.0, window=4, epoch_s=0.0)
    assert mapper.neutral(1.0) == 1000 + 5000
    mapper.priorities([1.0, 2.0, 3.0, 4.0, 5.0], 0.0)  # window keeps the last 4
    assert mapper.percentile(0.0) == 0.0 and mapper.percentile(9.0) == 1.0
    assert mapper.percentile(2.0) == pytest.approx(0.125)  # 1.0 left the window
    with pytest.raises(ValueError, match="arrival"):
        mapper.priorities([1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="max_extra_wait_s"):
        ltr.LTRPriority(-1.0)


def test_sjf_neutral_is_the_recent_median() -> None:
    mapper = ltr.LTRPriority()
    assert mapper.neutral() == 0
    _, mid, _ = mapper.priorities([1.0, 2.0, 3.0])
    assert mapper.neutral() == mid


# ------------------------------------------------------------------------------------------------ MicroBatcher


def test_micro_batcher_batches_and_reports_errors() -> None:
    calls: list[list[str]] = []
    gate = threading.Event()

    def score(texts: list[str]) -> list[float]:
        gate.wait(5)
        calls.append(texts)
        if "boom" in texts:
            raise RuntimeError("predictor down")
        return [float(len(t)) for t in texts]

    batcher = MicroBatcher(score, max_batch=3, max_wait_ms=50, max_queue=100)
    futures = [batcher.submit(t) for t in ("a", "bb", "ccc", "dddd")]
    gate.set()
    assert [f.result(5) for f in futures] == [1.0, 2.0, 3.0, 4.0]
    assert max(len(c) for c in calls) == 3 and sum(len(c) for c in calls) == 4
    failing = batcher.submit("boom")
    with pytest.raises(RuntimeError, match="predictor down"):
        failing.result(5)
    assert batcher.submit("ok").result(5) == 2.0  # the worker survives a failure


def test_micro_batcher_queue_is_bounded() -> None:
    release = threading.Event()
    batcher = MicroBatcher(lambda texts: release.wait(5) and [0.0] * len(texts), max_batch=1, max_queue=2)
    first = batcher.submit("x")
    time.sleep(0.05)  # the worker holds `first`
    batcher.submit("y")
    batcher.submit("z")
    with pytest.raises(BatcherFull, match="queue full"):
        batcher.submit("w")
    release.set()
    assert first.result(5) == 0.0


# ------------------------------------------------------------------------------------------------ request text


def test_prompt_texts_of_each_route() -> None:
    assert prompt_texts("/v1/completions", {"prompt": "hi"}) == ["hi"]
    assert prompt_texts("/v1/completions", {"prompt": ["a", "b"]}) == ["a", "b"]
    assert prompt_texts("/v1/completions", {"prompt": [1, 2, 3]}) is None
    chat = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "write"}, {"type": "image_url", "image_url": {"url": "x"}}],
            },
        ]
    }
    assert prompt_texts("/v1/chat/completions", chat) == ["be brief\n\nwrite"]
    assert prompt_texts("/v1/chat/completions", {"messages": "nope"}) is None
    responses = {"instructions": "sys", "input": [{"role": "user", "content": [{"type": "input_text", "text": "q"}]}]}
    assert prompt_texts("/v1/responses", responses) == ["sys\n\nq"]
    assert prompt_texts("/v1/responses", {"input": "plain"}) == ["plain"]
    assert prompt_texts("/v1/completions", ["not", "a", "dict"]) is None


# -------------------------------------------------------------------------------------------------- middleware


class LengthScorer:
    """Deterministic predictor: the score is the prompt's length (or a failure on demand)."""

    def __init__(self, fail: bool = False, delay_s: float = 0.0) -> None:
        self.fail, self.delay_s, self.calls = fail, delay_s, 0

    def score(self, prompts: Any) -> list[float]:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("weights corrupted")
        return [float(len(p)) for p in prompts]


class RecordingApp:
    """Downstream ASGI app: records the scope headers and the body it reads, answers 200."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[bytes, bytes], bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append((dict(scope["headers"]), body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]] | None = None, chunks: int = 1) -> None:
    size = max(1, len(body) // chunks + 1)
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200


def middleware(scorer: Any, **settings: Any) -> tuple[ltr.LTRPriorityMiddleware, RecordingApp]:
    inner = RecordingApp()
    return ltr.LTRPriorityMiddleware(inner, predictor=scorer, settings=ltr.HookSettings(**settings)), inner


def test_middleware_sets_priority_and_passes_body_untouched() -> None:
    mw, inner = middleware(LengthScorer())
    bodies = [json.dumps({"model": "m", "prompt": "x" * n}).encode() for n in (50, 5, 20)]
    for body in bodies:
        call(mw, "/v1/completions", body, chunks=3)
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "yy"}]}).encode()
    call(mw, "/v1/chat/completions", chat)
    assert [body for _, body in inner.seen] == [*bodies, chat]
    priorities = [int(h[b"x-vllm-priority"]) for h, _ in inner.seen]
    assert priorities[1] < priorities[2] < priorities[0] and priorities[3] < priorities[1]


def test_middleware_leaves_other_traffic_alone() -> None:
    scorer = LengthScorer()
    mw, inner = middleware(scorer)
    call(mw, "/v1/models", b"")
    call(mw, "/v1/completions", b'{"prompt": "a"}', headers=[(b"X-Vllm-Priority", b"7")])
    assert inner.seen[0][0] == {} and inner.seen[1][0] == {b"X-Vllm-Priority": b"7"}
    assert scorer.calls == 0


@pytest.mark.parametrize(
    ("scorer", "body", "log"),
    [
        (LengthScorer(), b"{not json", "not JSON"),
        (LengthScorer(), b'{"prompt": [1, 2, 3]}', "no prompt text"),
        (LengthScorer(fail=True), b'{"prompt": "abc"}', "predictor failed (RuntimeError: weights corrupted)"),
        (LengthScorer(delay_s=0.5), b'{"prompt": "abc"}', "no score within"),
    ],
)
def test_middleware_falls_back_to_neutral_with_one_log_line(
    scorer: LengthScorer, body: bytes, log: str, caplog: pytest.LogCaptureFixture
) -> None:
    mw, inner = middleware(scorer, max_extra_wait_s=10.0, timeout_s=0.1)
    with caplog.at_level(logging.INFO, logger="ltr_predictors.vllm"):
        call(mw, "/v1/completions", body)
    headers, seen_body = inner.seen[0]
    assert seen_body == body
    neutral = mw.priority.neutral()
    assert abs(int(headers[b"x-vllm-priority"]) - neutral) < 1000  # arrival + W/2, same second
    assert len(caplog.records) == 1 and log in caplog.records[0].getMessage()


def test_hook_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTR_MAX_EXTRA_WAIT_S", "30")
    monkeypatch.setenv("LTR_BATCH_SIZE", "8")
    settings = ltr.HookSettings.from_env()
    assert settings.max_extra_wait_s == 30.0 and settings.batch_size == 8 and settings.predictor == "default"
    monkeypatch.setenv("LTR_BATCH_SIZE", "eight")
    with pytest.raises(ltr.HookConfigError, match="LTR_BATCH_SIZE='eight'"):
        ltr.HookSettings.from_env()
    monkeypatch.setenv("LTR_BATCH_SIZE", "0")
    with pytest.raises(ltr.HookConfigError, match="LTR_BATCH_SIZE=0"):
        ltr.HookSettings.from_env()


def test_hooks_load_the_predictor_on_ltr_device_in_ltr_dtype(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tokenizer = write_tokenizer_repo(tmp_path / "tok", "bert")
    folder = write_seed_predictor(tmp_path / "PARS-bert", "bert", "rank", 1, pred_model=str(tokenizer))
    monkeypatch.setenv("LTR_PREDICTOR", str(folder))
    monkeypatch.setenv("LTR_DEVICE", "cpu")
    monkeypatch.setenv("LTR_DTYPE", "bfloat16")
    settings = ltr.HookSettings.from_env()
    assert (settings.device, settings.dtype, settings.batch_wait_ms) == ("cpu", "bfloat16", 0.0)
    predictor = load_scorer(settings)
    weights = next(predictor.scorer.model.parameters())  # type: ignore[attr-defined]
    assert weights.dtype == torch.bfloat16 and weights.device.type == "cpu"
    assert len(list(predictor.score(["a short prompt", "write a long essay about the sea"]))) == 2
    monkeypatch.setenv("LTR_DTYPE", "int8")
    with pytest.raises(ltr.HookConfigError, match="LTR_DTYPE='int8'"):
        ltr.HookSettings.from_env()


# ----------------------------------------------------------------------------------------------------- offline


class FakeLLM:
    def __init__(self, policy: str) -> None:
        self.llm_engine = SimpleNamespace(vllm_config=SimpleNamespace(scheduler_config=SimpleNamespace(policy=policy)))
        self.priorities: list[int] = []

    def generate(self, prompts: list[Any], params: Any, priority: list[int]) -> list[str]:
        self.priorities = priority
        return [f"out-{p}" for p in prompts]


def test_generate_refuses_fcfs_and_passes_int_priorities() -> None:
    with pytest.raises(ltr.SchedulingPolicyError, match=r"'fcfs'.*scheduling_policy=.priority."):
        ltr.generate(FakeLLM("fcfs"), ["a"], None, predictor=LengthScorer())
    llm = FakeLLM("priority")
    outs = ltr.generate(llm, ["ccc", {"prompt": "a"}, "bb"], None, predictor=LengthScorer())
    assert outs == ["out-ccc", "out-{'prompt': 'a'}", "out-bb"]
    assert all(type(p) is int for p in llm.priorities)
    assert sorted(range(3), key=llm.priorities.__getitem__) == [1, 2, 0]
    with pytest.raises(ltr.PromptTextError, match=r"prompts\[0\]"):
        ltr.generate(llm, [{"prompt_token_ids": [1, 2]}], None, predictor=LengthScorer())


# --------------------------------------------------------------------------------------------- scheduler hook


class HeapQueue:
    """A priority queue with only the public RequestQueue methods: a heap of (priority, arrival_time, id)."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, float, int, Any]] = []

    def add_request(self, request: Any) -> None:
        heapq.heappush(self.heap, (request.priority, request.arrival_time, id(request), request))

    def remove_requests(self, requests: Any) -> None:
        gone = {id(r) for r in requests}
        self.heap = [item for item in self.heap if item[2] not in gone]
        heapq.heapify(self.heap)

    def order(self) -> list[str]:
        return [item[3].name for item in sorted(self.heap)]


def request(name: str, ids: list[int], arrival: float, extra: dict[str, Any] | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        prompt_token_ids=ids,
        arrival_time=arrival,
        priority=0,
        status=SimpleNamespace(name="WAITING"),
        sampling_params=SimpleNamespace(extra_args=extra),
    )


def add(scorer: WaitingScorer, queue: HeapQueue, *requests: SimpleNamespace) -> None:
    for r in requests:
        scorer.on_add(r)
        queue.add_request(r)


def detokenize(ids: list[int]) -> str:
    return "x" * len(ids)


def test_scheduler_hook_scores_in_schedule_not_in_add() -> None:
    scorer_model = LengthScorer()
    hook = WaitingScorer(ltr.HookSettings(), scorer_model.score, detokenize)
    queue = HeapQueue()
    add(hook, queue, request("long", [1] * 9, 1.0), request("short", [1], 2.0), request("mid", [1] * 4, 3.0))
    add(hook, queue, request("client", [1] * 99, 4.0, {"ltr_score": 0.5}))
    assert scorer_model.calls == 0
    hook.before_schedule(queue)
    assert scorer_model.calls == 1
    assert queue.order() == ["client", "short", "mid", "long"]
    hook.before_schedule(queue)
    assert scorer_model.calls == 1  # nothing new to score


def test_scheduler_hook_promotes_starving_requests_and_survives_failures() -> None:
    hook = WaitingScorer(ltr.HookSettings(starvation_steps=2), LengthScorer().score, detokenize)
    queue = HeapQueue()
    add(hook, queue, request("long", [1] * 9, 1.0))
    hook.before_schedule(queue)
    add(hook, queue, request("short", [1], 2.0))
    hook.before_schedule(queue)
    assert queue.order() == ["short", "long"]
    hook.before_schedule(queue)  # `long` was passed over by 2 schedule() calls
    assert queue.order() == ["long", "short"] and queue.heap[0][0] == PROMOTED_PRIORITY

    broken = WaitingScorer(ltr.HookSettings(), LengthScorer(fail=True).score, detokenize)
    add(broken, queue, request("third", [1, 1], 3.0))
    broken.before_schedule(queue)
    assert "third" in queue.order()


class Req(SimpleNamespace):
    def __lt__(self, other: Req) -> bool:
        return (self.priority, self.arrival_time) < (other.priority, other.arrival_time)


def test_lower_keys_repairs_a_vllm_style_heap_in_place() -> None:
    queue = SimpleNamespace(_heap=[])
    requests = [Req(name=str(i), priority=p, arrival_time=float(i)) for i, p in enumerate([5, 9, 7, 8, 6, 10, 3])]
    for r in requests:
        heapq.heappush(queue._heap, r)
    requests[5].priority, requests[1].priority = 0, 4  # lowered in place
    lower_keys(queue, [requests[5], requests[1], Req(name="absent", priority=0, arrival_time=0.0)])
    order = [heapq.heappop(queue._heap).name for _ in range(len(requests))]
    assert order == ["5", "6", "1", "0", "4", "2", "3"]
