"""The vLLM hooks' pure-Python parts (no vLLM needed): priorities, micro-batching, request text, middleware,
offline `generate`'s policy check and the scheduler hook's scoring/re-keying/promotion."""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from tiny_models import write_seed_predictor, write_tokenizer_repo

import ltr_predictors as ltr_errors
import ltr_predictors.vllm as ltr
from ltr_predictors import LengthPredictor
from ltr_predictors.vllm.batcher import BatcherFull, MicroBatcher, score_each
from ltr_predictors.vllm.middleware import load_scorer
from ltr_predictors.vllm.priority import (
    CLIENT_PRIORITY_MAX,
    CLIENT_PRIORITY_MIN,
    pending_priority,
    promoted_priority,
    tier_of,
)
from ltr_predictors.vllm.prompt_text import prompt_texts
from ltr_predictors.vllm.scheduler_hook import WaitingScorer, rekey

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
    assert 0 < long_first - mapper.priority(-1.0, 1000.0) <= 2000  # key = arrival_ms + W_ms * q, q in [0, 1]


def test_bounded_percentile_and_neutral() -> None:
    mapper = ltr.LTRPriority(max_extra_wait_s=10.0, window=4, epoch_s=0.0)
    assert mapper.neutral(1.0) - mapper.neutral(0.0) == 1000  # arrival_ms + W_ms * 0.5
    assert mapper.neutral(0.0) - ltr.LTRPriority(max_extra_wait_s=0.0, epoch_s=0.0).neutral(0.0) == 5000
    mapper.priorities([1.0, 2.0, 3.0, 4.0, 5.0], 0.0)  # window keeps the last 4
    assert mapper.percentile(0.0) == 0.0 and mapper.percentile(9.0) == 1.0
    assert mapper.percentile(2.0) == pytest.approx(0.125)  # 1.0 left the window
    with pytest.raises(ValueError, match="arrival"):
        mapper.priorities([1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="max_extra_wait_s"):
        ltr.LTRPriority(-1.0)


def test_sjf_neutral_is_the_recent_median() -> None:
    mapper = ltr.LTRPriority()
    assert mapper.neutral() == ltr.LTRPriority().priority(0.0)  # nothing seen yet: the key of score 0
    _, mid, _ = mapper.priorities([1.0, 2.0, 3.0])
    assert mapper.neutral() == mid


WIDE_SCORES = [-1.7e308, -1e300, -5.0, -2.5, -1e-300, 0.0, 1e-300, 1e-9, 2.0, 2.5, 3.0, 1e6, 1e300, 1.7e308]


@pytest.mark.parametrize("max_extra_wait_s", [None, 30.0])
def test_keys_of_any_score_stay_inside_their_client_tier_between_the_sentinels(max_extra_wait_s: float | None) -> None:
    """The key layout: client priority first, predicted length second, sentinels outside every predicted key of
    their tier, everything int64 (msgspec int, `X-Vllm-Priority`)."""
    mapper = ltr.LTRPriority(max_extra_wait_s, epoch_s=1000.0)
    ordered: list[int] = []
    for client in (CLIENT_PRIORITY_MIN, -1, 0, 7, CLIENT_PRIORITY_MAX):
        keys = [mapper.priority(s, 1000.0, client) for s in WIDE_SCORES]
        keys += [mapper.neutral(1000.0, client), *(mapper.priority(0.0, at, client) for at in (1e12, -1e12))]
        assert promoted_priority(client) < min(keys) and max(keys) < pending_priority(client)
        tier = [promoted_priority(client), *sorted(keys), pending_priority(client)]
        assert {tier_of(k) for k in tier} == {client}
        ordered += tier
    assert ordered == sorted(ordered)  # tiers never interleave
    assert all(type(k) is int and -(2**63) <= k < 2**63 for k in ordered)
    if max_extra_wait_s is None:  # pure SJF: every distinct score keeps its place, whatever its magnitude
        keys = mapper.priorities(WIDE_SCORES)
        assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_client_priority_is_the_primary_key_and_is_clamped_to_the_layout(caplog: pytest.LogCaptureFixture) -> None:
    mapper = ltr.LTRPriority()
    assert mapper.priority(1e300, client_priority=-1) < mapper.priority(-1e300) < mapper.priority(-1e300, None, 1)
    with caplog.at_level(logging.WARNING, logger="ltr_predictors.vllm"):
        assert mapper.priority(0.0, client_priority=10**12) == mapper.priority(0.0, client_priority=CLIENT_PRIORITY_MAX)
    assert "client priority 1000000000000 is outside" in caplog.text
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ltr_errors.NonFiniteScoreError, match=r"score 1 is (nan|inf|-inf)"):
            mapper.priorities([1.0, bad])


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
    with pytest.raises(ltr_errors.PromptScoringError, match="prompt 0: RuntimeError: predictor down") as error:
        failing.result(5)
    assert isinstance(error.value.__cause__, RuntimeError)
    assert batcher.submit("ok").result(5) == 2.0  # the worker survives a failure


def test_score_each_pins_each_failure_to_its_prompt() -> None:
    """One bad prompt fails only itself, found by halving the batch (not one call per prompt)."""
    calls: list[int] = []

    def score(texts: list[str]) -> list[float]:
        calls.append(len(texts))
        if any("\ud800" in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return [math.nan if t == "nan" else float(len(t)) for t in texts]

    texts = [f"prompt {i}" for i in range(32)]
    texts[13], texts[20] = "lone \ud800", "nan"
    results = score_each(score, texts)
    failed = {i: r for i, r in enumerate(results) if isinstance(r, ltr_errors.PromptScoringError)}
    assert sorted(failed) == [13, 20] and failed[13].index == 13
    assert isinstance(failed[13].__cause__, TypeError) and "prompt 20: score is nan" in str(failed[20])
    assert [r for i, r in enumerate(results) if i not in failed] == [float(len(t)) for t in texts if t[0] == "p"]
    assert len(calls) <= 1 + 2 * 5  # log2(32) levels, two halves each

    assert score_each(lambda texts: [0.0], ["a", "b"]) == [0.0, 0.0]  # a wrong count is a failure of the batch
    for result in score_each(lambda texts: [], ["a", "b"]):
        assert isinstance(result, ltr_errors.PromptScoringError) and "returned 0 scores for 1 prompts" in str(result)


def test_micro_batcher_drops_prompts_whose_caller_stopped_waiting() -> None:
    seen: list[str] = []
    release = threading.Event()

    def score(texts: list[str]) -> list[float]:
        seen.extend(texts)
        if "hold" in texts:
            release.wait(5)
        return [0.0] * len(texts)

    batcher = MicroBatcher(score, max_batch=1)
    hold = batcher.submit("hold")  # no deadline: the worker is simply busy, not stalled
    time.sleep(0.05)
    late = batcher.submit("late", timeout_s=0.01)
    cancelled = batcher.submit("cancelled", timeout_s=10)
    assert cancelled.cancel()
    time.sleep(0.05)  # `late`'s caller has given up
    release.set()
    assert hold.result(5) == 0.0 and batcher.submit("next").result(5) == 0.0
    assert seen == ["hold", "next"] and late.cancelled()


def test_a_stalled_batch_does_not_hold_the_prompts_behind_it() -> None:
    """A batch still scoring after its callers' deadline: prompts queued behind it fail at that deadline, new ones
    at once (BatcherStalled), instead of waiting their own full timeout."""
    release = threading.Event()
    batcher = MicroBatcher(lambda texts: release.wait(10) and [1.0] * len(texts), max_batch=1)
    slow = batcher.submit("slow", timeout_s=0.2)
    time.sleep(0.05)  # the worker is scoring `slow`
    queued = batcher.submit("queued", timeout_s=10)
    start = time.monotonic()
    with pytest.raises(ltr_errors.BatcherStalled, match="callers all timed out"):
        queued.result(5)
    assert time.monotonic() - start < 0.5  # at `slow`'s deadline (~0.15 s), not after its own 10 s
    start = time.monotonic()
    with pytest.raises(ltr_errors.BatcherStalled):
        batcher.submit("new", timeout_s=10)
    assert time.monotonic() - start < 0.01
    release.set()
    assert slow.result(5) == 1.0
    deadline = time.monotonic() + 5
    while True:  # the worker takes prompts again as soon as the slow batch returns
        try:
            assert batcher.submit("after", timeout_s=5).result(5) == 1.0
            break
        except ltr_errors.BatcherStalled:
            assert time.monotonic() < deadline
            time.sleep(0.01)


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

    def __init__(self, fail: bool = False, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.fail, self.delay_s, self.fail_on, self.calls = fail, delay_s, fail_on, 0

    def score(self, prompts: Any) -> list[float]:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.fail or self.fail_on in prompts:
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
    asyncio.run(call_async(app, path, body, headers, chunks))


async def call_async(
    app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]] | None = None, chunks: int = 1
) -> None:
    size = max(1, len(body) // chunks + 1)
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers or []}
    await app(scope, receive, send)
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
        (LengthScorer(), b'{"prompt": [1, 2, 3]}', "no prompt text"),
        (LengthScorer(fail=True), b'{"prompt": "abc"}', "prompt 0 of 1 failed to score (RuntimeError: weights corrupt"),
        (LengthScorer(delay_s=0.5), b'{"prompt": "abc"}', "no score within"),
        (LengthScorer(fail_on="bad"), b'{"prompt": ["ok", "bad", "fine"]}', "prompt 1 of 3 failed to score (Runtime"),
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


@pytest.mark.parametrize(
    ("body", "log"),
    [
        (b"[" * 100_000, "not JSON (RecursionError)"),
        (b'{"prompt": "' + b"[" * 100_000 + b'", "x": ' + b"[" * 100_000 + b"}", "not JSON (RecursionError)"),
        (b"{not json", "not JSON (JSONDecodeError)"),
        (b'\xff\xfe{"prompt": "\xff"}', "not JSON (UnicodeDecodeError)"),
        (b'"just a string"', "not a JSON object"),
        (b'{"prompt": "abc", "priority": "5"}', "'priority' is not an int64"),
        (b'{"prompt": "abc", "priority": 1.5}', "'priority' is not an int64"),
        (b'{"prompt": "abc", "priority": true}', "'priority' is not an int64"),
        (b'{"prompt": "abc", "priority": 9223372036854775808}', "'priority' is not an int64"),
        (b'{"prompt": "' + b"x" * 400_000 + b'"}', "body over 300000 bytes"),
    ],
)
def test_middleware_passes_unreadable_bodies_through_untouched(
    body: bytes, log: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the body, the server sees exactly what the client sent, without the header: it answers as it would
    without the middleware (vLLM's 400 stays 400; the middleware itself never fails the request)."""
    scorer = LengthScorer()
    mw, inner = middleware(scorer, max_body_bytes=300_000)
    with caplog.at_level(logging.INFO, logger="ltr_predictors.vllm"):
        call(mw, "/v1/completions", body, chunks=4)
    assert inner.seen == [({}, body)] and scorer.calls == 0
    assert len(caplog.records) == 1 and log in caplog.records[0].getMessage()


def test_middleware_keeps_the_clients_priority_as_the_primary_key() -> None:
    mw, inner = middleware(LengthScorer())
    sent = [(0, 50), (0, 5), (-1, 500), (2, 1), (-1, 5)]  # (client priority, prompt length)
    for client, length in sent:
        call(mw, "/v1/completions", json.dumps({"prompt": "x" * length, "priority": client}).encode())
    keys = [int(h[b"x-vllm-priority"]) for h, _ in inner.seen]
    assert [tier_of(k) for k in keys] == [client for client, _ in sent]
    assert sorted(range(len(sent)), key=keys.__getitem__) == sorted(range(len(sent)), key=sent.__getitem__)


class RecordingScorer:
    """A real predictor that records the batches it is given."""

    def __init__(self, predictor: Any) -> None:
        self.predictor, self.batches = predictor, []  # type: list[list[str]]

    def score(self, prompts: Any) -> Any:
        self.batches.append(list(prompts))
        return self.predictor.score(prompts, progress=False)


def test_one_bad_prompt_fails_only_itself_with_a_transformer_predictor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """30 good concurrent requests and one the tokenizer rejects (a lone surrogate) share a micro-batch: the good
    ones get their predicted priorities, the bad one the neutral priority, and the log names it."""
    tokenizer = write_tokenizer_repo(tmp_path / "tok", "opt")
    folder = write_seed_predictor(tmp_path / "opt", "opt", "rank", 1, pred_model=str(tokenizer))
    predictor = LengthPredictor.from_pretrained(folder)
    scorer = RecordingScorer(predictor)
    mw, inner = middleware(scorer, batch_size=64, batch_wait_ms=200, timeout_s=60)
    good = [" ".join(["hello", "world", "sea", "ship"][: 1 + i % 4]) + f" {i}" * (1 + i % 7) for i in range(30)]
    bad = json.dumps({"prompt": "lone \ud800 surrogate"}).encode()

    async def burst() -> None:
        bodies = [json.dumps({"prompt": t}).encode() for t in good]
        await asyncio.gather(*(call_async(mw, "/v1/completions", b) for b in [*bodies[:15], bad, *bodies[15:]]))

    with caplog.at_level(logging.INFO, logger="ltr_predictors.vllm"):
        asyncio.run(burst())
    assert any(len(batch) > 1 and "lone \ud800 surrogate" in batch for batch in scorer.batches)
    assert [r.getMessage() for r in caplog.records] == [
        "ltr-predictors: prompt 0 of 1 failed to score (TypeError: TextEncodeInput must be Union[TextInputSequence, "
        "Tuple[InputSequence, InputSequence]]); neutral priority"
    ]
    keys = {json.loads(body)["prompt"]: int(headers[b"x-vllm-priority"]) for headers, body in inner.seen}
    scores = dict(zip(good, predictor.score(good).tolist(), strict=True))
    for a in good:  # the predicted order, wherever two scores are told apart beyond float noise
        for b in good:
            if scores[a] < scores[b] - 1e-4:
                assert keys[a] < keys[b], (a, b)


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
    ltr.generate(llm, ["ccc", "a", "bb"], None, predictor=LengthScorer(), client_priority=[-1, 0, 0])
    assert sorted(range(3), key=llm.priorities.__getitem__) == [0, 1, 2]  # the client's priority first
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

    def __iter__(self) -> Any:
        return (item[3] for item in sorted(self.heap))

    def order(self) -> list[str]:
        return [item[3].name for item in sorted(self.heap)]


def request(
    name: str,
    ids: list[int] | None,
    arrival: float,
    extra: dict[str, Any] | None = None,
    priority: int = 0,
    status: str = "WAITING",
) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        request_id=name,
        prompt_token_ids=ids,
        arrival_time=arrival,
        priority=priority,
        status=SimpleNamespace(name=status),
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


def test_scheduler_hook_keeps_the_clients_priority_as_the_primary_key(caplog: pytest.LogCaptureFixture) -> None:
    hook = WaitingScorer(ltr.HookSettings(), LengthScorer().score, detokenize)
    queue = HeapQueue()
    add(hook, queue, request("p0-long", [1] * 50, 1.0), request("p0-short", [1], 2.0))
    add(hook, queue, request("p1-short", [1], 3.0, priority=1), request("p-1-long", [1] * 90, 4.0, priority=-1))
    add(hook, queue, request("p-1-sent", [1], 5.0, {"ltr_score": 1e300}, priority=-1))
    with caplog.at_level(logging.WARNING, logger="ltr_predictors.vllm"):
        add(hook, queue, request("clamped", [1], 6.0, {"ltr_score": float("nan")}, priority=2**40))
    hook.before_schedule(queue)
    assert queue.order() == ["p-1-long", "p-1-sent", "p0-short", "p0-long", "p1-short", "clamped"]
    assert "ignoring ltr_score=nan" in caplog.text and "client priority 1099511627776 is outside" in caplog.text


def test_scheduler_hook_scores_every_state_that_can_be_admitted() -> None:
    """Waiting for a grammar or for remote KV, preempted, running (a preemption victim is chosen by priority): all
    get scored. A request that cannot be scored (no prompt ids, a predictor failure) gets the neutral priority of
    its client priority, never the pending key."""

    def score(texts: list[str]) -> list[float]:
        if "x" * 7 in texts:
            raise RuntimeError("cannot encode")
        return [float(len(t)) for t in texts]

    hook = WaitingScorer(ltr.HookSettings(), score, detokenize)
    queue = HeapQueue()
    states = ["WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR", "WAITING_FOR_REMOTE_KVS", "PREEMPTED", "RUNNING", "WAITING"]
    scored = [request(state, [1] * (i + 1), float(i), status=state) for i, state in enumerate(states)]
    embeds = request("embeds", None, 10.0, priority=3)
    failing = request("failing", [1] * 7, 11.0, priority=-2)
    aborted = request("aborted", [1] * 8, 12.0, status="FINISHED_ABORTED")
    add(hook, queue, *scored, embeds, failing, aborted)
    hook.before_schedule(queue)
    for r in scored:
        assert r.priority == hook.priority.priority(float(len(r.prompt_token_ids)), r.arrival_time), r.name
    assert embeds.priority == hook.priority.neutral(10.0, client_priority=3)
    assert failing.priority == hook.priority.neutral(11.0, client_priority=-2)
    assert aborted.priority == pending_priority(0)  # finished: nothing to order any more
    assert queue.order()[:2] == ["failing", "WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR"]


def test_scheduler_hook_promotes_starving_requests_and_survives_failures() -> None:
    hook = WaitingScorer(ltr.HookSettings(starvation_steps=2), LengthScorer().score, detokenize)
    queue = HeapQueue()
    add(hook, queue, request("long", [1] * 9, 1.0))
    hook.before_schedule(queue)
    add(hook, queue, request("short", [1], 2.0))
    hook.before_schedule(queue)
    assert queue.order() == ["short", "long"]
    hook.before_schedule(queue)  # `long` was passed over by 2 schedule() calls
    assert queue.order() == ["long", "short"] and queue.heap[0][0] == promoted_priority(0)

    broken = WaitingScorer(ltr.HookSettings(), LengthScorer(fail=True).score, detokenize)
    third = request("third", [1, 1], 3.0)
    add(broken, queue, third)
    broken.before_schedule(queue)
    assert "third" in queue.order() and third.priority == broken.priority.neutral(3.0)


class Req(SimpleNamespace):
    def __lt__(self, other: Req) -> bool:
        return (self.priority, self.arrival_time) < (other.priority, other.arrival_time)


@pytest.mark.parametrize("seed", range(20))
def test_rekey_keeps_a_vllm_style_heap_valid_whichever_way_keys_move(seed: int) -> None:
    """Keys raised, lowered, set to either sentinel, in any order: the heap is valid after every re-key and pops in
    key order; requests in no queue just take their key."""
    rng = random.Random(seed)
    keys = [rng.choice([pending_priority(0), promoted_priority(0)]) if rng.random() < 0.3 else rng.randrange(2**60)
            for _ in range(rng.randrange(1, 200))]  # fmt: skip
    queue = SimpleNamespace(_heap=[])
    requests = [Req(name=str(i), priority=k, arrival_time=float(i)) for i, k in enumerate(keys)]
    for r in requests:
        heapq.heappush(queue._heap, r)
    moved = rng.sample(requests, rng.randrange(1, len(requests) + 1))
    outside = Req(name="running", priority=0, arrival_time=0.0)
    changes = [(r, rng.choice([pending_priority(0), promoted_priority(0), rng.randrange(2**60)])) for r in moved]
    rekey([None, queue], [*changes, (outside, 5)])
    assert all(not queue._heap[i] < queue._heap[(i - 1) // 2] for i in range(1, len(queue._heap)))
    assert [r.priority for r in moved] == [key for _, key in changes] and outside.priority == 5
    popped = [heapq.heappop(queue._heap) for _ in range(len(requests))]
    assert popped == sorted(requests, key=lambda r: (r.priority, r.arrival_time))
