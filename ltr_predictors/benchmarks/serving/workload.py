"""The replayed workload: which prompts, how many output tokens each must produce, and when each arrives.

Every policy replays exactly the same requests at exactly the same offsets. Lengths are the trace's recorded
output lengths (mean of the samples), capped at `max_output_tokens` if given (the `max_tokens` limit every deployment
sets; vLLM's own `benchmark_serving.py` drops requests whose prompt + output exceed 2,048 tokens), then scaled by
`length_scale` for small machines, at least 1 token. Arrivals are
a burst (all at t=0) or a gamma process at `rate` requests/s with coefficient of variation `cv` (cv=1: Poisson),
as in vllm-ltr's `benchmark_serving_real.py`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.splits import split_of
from ...data.traces import read_trace
from ...errors import SettingError, TraceFormatError

BURST = "burst"


@dataclass(frozen=True)
class BenchRequest:
    index: int
    prompt: str
    output_tokens: int


def load_requests(
    path: str | Path,
    *,
    num_requests: int | None,
    length_scale: float,
    max_output_tokens: int | None = None,
    model: str | None = None,
    split: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> list[BenchRequest]:
    """Records of the trace (optionally one target `model`, and only prompts of the hash `split` that training
    used, so that a predictor is benchmarked on prompts it never saw), shuffled, at most `num_requests`."""
    if length_scale <= 0:
        raise SettingError(f"length_scale must be > 0, got {length_scale}")
    if max_output_tokens is not None and max_output_tokens < 1:
        raise SettingError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
    cap = float(max_output_tokens) if max_output_tokens is not None else float("inf")
    records = read_trace(path, model=model)
    if split is not None:
        records = [r for r in records if split_of(r.prompt, val_fraction, test_fraction) == split]
        if not records:
            raise TraceFormatError(f"{path}: no record in split {split!r}")
    # A seeded shuffle even when all records are kept: trace files are often grouped (by dataset, by length),
    # and the order of a burst is the FCFS order.
    records = random.Random(seed).sample(records, min(num_requests or len(records), len(records)))
    return [
        BenchRequest(index, record.prompt, max(1, round(min(record.length, cap) * length_scale)))
        for index, record in enumerate(records)
    ]


def parse_rates(text: str) -> list[str | float]:
    """`burst`, or comma-separated request rates (requests/s), possibly mixed: `burst,4,8`."""
    rates: list[str | float] = []
    for item in (part.strip() for part in text.split(",")):
        if item == BURST:
            rates.append(BURST)
            continue
        try:
            rate = float(item)
        except ValueError as exc:
            raise SettingError(f"request rate {item!r} is neither 'burst' nor a number") from exc
        if not (math.isfinite(rate) and rate > 0):
            raise SettingError(f"request rate {item!r} must be a finite number > 0")
        rates.append(rate)
    return rates


def arrival_offsets(count: int, rate: str | float, cv: float = 1.0, seed: int = 0) -> list[float]:
    """Seconds after the start at which each request is sent."""
    if rate == BURST:
        return [0.0] * count
    if cv <= 0:
        raise SettingError(f"cv must be > 0, got {cv}")
    shape = 1.0 / (cv * cv)
    gaps = np.random.default_rng(seed).gamma(shape, 1.0 / (float(rate) * shape), size=count)
    return np.concatenate([[0.0], np.cumsum(gaps[:-1])]).tolist() if count else []


def rate_label(rate: str | float) -> str:
    return rate if isinstance(rate, str) else f"{rate:g}"
