"""Present benchmark results: the printed table and the plot (latency vs rate per policy, latency CDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = ("done", "lat mean", "lat p50", "lat p90", "lat p99", "ttft mean", "ttft p99", "tpot p99", "max wait")


def table(results: dict[str, Any]) -> str:
    lines = []
    for label, run in results["by_rate"].items():
        lines.append(f"rate {label}" + ("" if label == "burst" else " req/s") + " (seconds)")
        lines.append(f"  {'policy':<8}" + "".join(f"{c:>10}" for c in COLUMNS))
        for policy, m in run["policies"].items():
            cells = [
                f"{m['completed']}/{m['expected']}",
                *(f"{m['latency'][s]:.2f}" for s in ("mean", "p50", "p90", "p99")),
                f"{m['ttft']['mean']:.2f}",
                f"{m['ttft']['p99']:.2f}",
                f"{m['tpot']['p99'] * 1000:.0f}ms",
                f"{m['longest_wait_s']:.2f}",
            ]
            lines.append(f"  {policy:<8}" + "".join(f"{c:>10}" for c in cells))
        for policy, share in run["oracle_gain_captured"].items():
            if share is not None:
                lines.append(f"  {policy} captures {share:.0%} of the oracle's mean-latency gain over FCFS")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = results["by_rate"]
    labels = list(runs)
    policies = list(next(iter(runs.values()))["policies"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for policy in policies:
        means = [runs[label]["policies"][policy]["latency"]["mean"] for label in labels]
        left.plot(labels, means, marker="o", label=policy)
    left.set_xlabel("request rate (req/s) or burst")
    left.set_ylabel("mean end-to-end latency (s)")
    left.set_title("latency vs rate")
    left.legend()
    last = labels[-1]
    for policy in policies:
        values = np.sort(np.asarray(runs[last]["latencies"][policy]))
        right.plot(values, np.arange(1, len(values) + 1) / max(1, len(values)), label=policy)
    right.set_xlabel("end-to-end latency (s)")
    right.set_ylabel("share of requests")
    right.set_title(f"latency CDF (rate {last})")
    right.legend()
    fig.suptitle(results["config"]["title"], fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
