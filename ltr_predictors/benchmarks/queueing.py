"""What a ranking buys: latency of a burst of requests on a batched LLM server, under three orders.

A small simulator of a continuous-batching server (vLLM-like): at most `max_num_seqs` requests decode together,
every running request gains one token per step, a step lasts `step_base_s + step_per_seq_s * running` seconds,
and a finished request frees its slot for the next one in the queue at once. Prefill and preemption are left
out. All requests arrive at time 0 (a burst), so latency = completion time. The queue order is:

- `fcfs`: the trace's order (first come, first served);
- `predicted`: shortest predicted first (ascending predictor score);
- `oracle`: shortest real output first (the best any length predictor can do).

The server's timings come from a calibration file (JSON): the one shipped in `ltr_predictors/demo/` or saved
`ltr-predictors bench` results with the same fields (see `ServerModel.from_file`).
"""

from __future__ import annotations

import heapq
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import CalibrationError

DEFAULT_CALIBRATION = Path(__file__).parents[1] / "demo" / "data" / "calibration.json"
POLICIES = ("fcfs", "predicted", "oracle")


@dataclass(frozen=True)
class ServerModel:
    """Decode-step timing of a batched server: `step_base_s + step_per_seq_s * batch` seconds per step."""

    max_num_seqs: int
    step_base_s: float
    step_per_seq_s: float
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path = DEFAULT_CALIBRATION) -> ServerModel:
        """Read a calibration file. Fields: `max_num_seqs` and either the two step timings (`step_base_s`,
        `step_per_seq_s`) or `decode_tokens_per_s`, the server's total decode throughput at a full batch, which
        gives `step_per_seq_s = 1 / decode_tokens_per_s` and no fixed part. A saved `ltr-predictors bench`
        `results.json` works as it is (see `calibration_from_bench`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
            raise CalibrationError(f"{path}: cannot read a calibration JSON ({exc})") from exc
        if isinstance(data, dict) and "policies" in data and "config" in data:
            data = calibration_from_bench(data, str(path))
        if not isinstance(data, dict) or not isinstance(data.get("max_num_seqs"), int) or data["max_num_seqs"] < 1:
            raise CalibrationError(f"{path}: needs a positive integer 'max_num_seqs'")
        if "step_per_seq_s" in data:
            base, per_seq = data.get("step_base_s", 0.0), data["step_per_seq_s"]
        elif "decode_tokens_per_s" in data:
            base, per_seq = 0.0, 1.0 / float(data["decode_tokens_per_s"])
        else:
            raise CalibrationError(f"{path}: needs 'step_per_seq_s' (and 'step_base_s') or 'decode_tokens_per_s'")
        if not all(isinstance(v, int | float) and v >= 0 for v in (base, per_seq)) or base + per_seq <= 0:
            raise CalibrationError(f"{path}: step timings must be non-negative numbers, not both zero")
        return cls(
            max_num_seqs=data["max_num_seqs"],
            step_base_s=float(base),
            step_per_seq_s=float(per_seq),
            description=str(data.get("description", path.name)),
            provenance=dict(data.get("provenance", {})),
        )

    def step_seconds(self, batch: int) -> float:
        return self.step_base_s + self.step_per_seq_s * batch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_from_bench(results: dict[str, Any], where: str = "bench results") -> dict[str, Any]:
    """The server model a `bench` run measured: its `max_num_seqs`, and the decode throughput of a full batch
    under FCFS (`max_num_seqs / mean TPOT`: every running request gains one token per step)."""
    try:
        max_num_seqs = int(results["config"]["engine"]["max_num_seqs"])
        fcfs = results["policies"]["fcfs"]
        tpot = float(fcfs["tpot"]["mean"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(
            f"{where}: bench results need config.engine.max_num_seqs and policies.fcfs.tpot.mean ({exc})"
        ) from exc
    if tpot <= 0:
        raise CalibrationError(f"{where}: policies.fcfs.tpot.mean must be positive, got {tpot}")
    return {
        "description": f"ltr-predictors bench: {results['config'].get('title', where)}",
        "max_num_seqs": max_num_seqs,
        "decode_tokens_per_s": max_num_seqs / tpot,
        "provenance": {"bench_config": results["config"], "fcfs_tpot_mean_s": tpot},
    }


def simulate(lengths: ArrayLike, order: ArrayLike, server: ServerModel) -> np.ndarray:
    """Completion time (s) of each request, all arriving at t=0 and admitted in `order`."""
    remaining_tokens = np.maximum(np.rint(np.asarray(lengths, dtype=np.float64)), 1).astype(np.int64)
    queue = [int(i) for i in np.asarray(order)]
    queue.reverse()  # pop() from the end = next in order
    finish = np.zeros(len(remaining_tokens))
    running: list[tuple[int, int]] = []  # heap of (token count at which it finishes, request)
    now, tokens_done = 0.0, 0  # tokens_done: steps every running request has advanced since t=0
    while queue or running:
        while queue and len(running) < server.max_num_seqs:
            request = queue.pop()
            heapq.heappush(running, (tokens_done + int(remaining_tokens[request]), request))
        target = running[0][0]
        now += (target - tokens_done) * server.step_seconds(len(running))
        tokens_done = target
        while running and running[0][0] == tokens_done:
            finish[heapq.heappop(running)[1]] = now
    return finish


def policy_orders(lengths: ArrayLike, scores: ArrayLike) -> dict[str, np.ndarray]:
    """Admission orders: trace order, ascending predicted score, ascending real length (stable ties)."""
    lengths_arr = np.asarray(lengths, dtype=np.float64)
    return {
        "fcfs": np.arange(len(lengths_arr)),
        "predicted": np.argsort(np.asarray(scores, dtype=np.float64), kind="stable"),
        "oracle": np.argsort(lengths_arr, kind="stable"),
    }


def latency_summary(lengths: ArrayLike, scores: ArrayLike, server: ServerModel) -> dict[str, dict[str, float]]:
    """Mean and p90 latency (s) per policy for one predictor's scores on one trace."""
    summary = {}
    for policy, order in policy_orders(lengths, scores).items():
        finish = simulate(lengths, order, server)
        summary[policy] = {"mean_s": float(finish.mean()), "p90_s": float(np.percentile(finish, 90))}
    return summary
