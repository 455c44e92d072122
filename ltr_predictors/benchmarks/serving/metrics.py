"""Per-request timings to the benchmark's figures: TTFT, TPOT, latency, normalized latency, waits, throughput."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STATS = ("mean", "p50", "p90", "p99", "max")


@dataclass
class RequestTiming:
    """Seconds from the request's scheduled arrival (scoring time included for LTR)."""

    index: int
    output_tokens: int
    ttft: float
    latency: float
    queue_wait: float | None  # engine queue time (scheduled - queued) when vLLM reports it


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {name: float("nan") for name in STATS}
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


def policy_metrics(timings: list[RequestTiming], expected: int, makespan_s: float) -> dict[str, Any]:
    """The figures of one policy at one rate (the JSON schema of `results.json`)."""
    tpot = [(t.latency - t.ttft) / (t.output_tokens - 1) for t in timings if t.output_tokens > 1]
    waits = [t.queue_wait for t in timings if t.queue_wait is not None]
    tokens = sum(t.output_tokens for t in timings)
    return {
        "completed": len(timings),
        "expected": expected,
        "latency": summary([t.latency for t in timings]),
        "ttft": summary([t.ttft for t in timings]),
        "tpot": summary(tpot),
        "normalized_latency": summary([t.latency / max(1, t.output_tokens) for t in timings]),
        "longest_wait_s": max(waits) if waits else max((t.ttft for t in timings), default=float("nan")),
        "longest_wait_source": "engine queue time" if waits else "ttft",
        "throughput_rps": len(timings) / makespan_s if makespan_s > 0 else float("nan"),
        "throughput_tokens_per_s": tokens / makespan_s if makespan_s > 0 else float("nan"),
        "makespan_s": makespan_s,
    }


def oracle_gain_captured(policies: dict[str, dict[str, Any]], policy: str = "ltr") -> float | None:
    """(FCFS - policy) / (FCFS - oracle) on mean latency: the share of the oracle's gain the policy captures."""
    if not {"fcfs", "oracle", policy} <= policies.keys():
        return None
    fcfs, oracle = policies["fcfs"]["latency"]["mean"], policies["oracle"]["latency"]["mean"]
    if fcfs - oracle <= 0:
        return None
    return (fcfs - policies[policy]["latency"]["mean"]) / (fcfs - oracle)
