"""`ltr-predictors eval`: Kendall tau-b (and Spearman) of predictors against length-labelled traces.

With one predictor and one trace it prints the JSON summary and, last, `kendall_tau=<value>`; with several it
prints one summary per (predictor, trace) pair, a comparison table (with per-dataset rows and scoring cost per
prompt, wall-clock and CPU time) and, with `--plot`, a bar chart. `--split test` keeps only the prompts that
recipes hold out by hash. Where tau is undefined (constant scores or lengths) it says so and exits with 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..data.splits import DEFAULT_TEST_FRACTION, SPLITS, split_of
from ..data.traces import TraceRecord, read_trace
from ..errors import TraceFormatError
from ..evaluation.metrics import evaluate_scores, undefined_reason
from ._common import (
    EXIT_TAU_UNDEFINED,
    add_predictor_args,
    correlation_text,
    length_counter,
    load_predictor,
    print_json,
)

EPILOG = (
    f"exit status {EXIT_TAU_UNDEFINED}: every trace was read and scored, but Kendall tau is undefined for a "
    "(predictor, trace) pair: the predictor gives every prompt the same score, or every prompt of the trace has the "
    "same length. There is no ranking to measure, so no number is printed (`kendall_tau=undefined`, `undefined` in "
    "the table) and the status is neither success (0) nor unreadable input (2)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="Kendall tau of predictors against real output lengths", epilog=EPILOG)
    add_predictor_args(parser, multiple=True)
    parser.add_argument("--data", action="append", required=True, help="trace JSONL/CSV (repeatable)")
    parser.add_argument("--length-tokenizer", default=None, help="tokenizer id/folder to count `generated` texts")
    parser.add_argument("--target", default="mean", choices=["mean", "median", "sample"], help="for sampled lengths")
    parser.add_argument("--target-model", default=None, help="keep only records of this `model`")
    parser.add_argument("--split", default=None, choices=SPLITS, help="keep only prompts of this hash split")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="split fractions (as in the recipe)")
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    parser.add_argument("--plot", default=None, help="write a bar chart of tau per predictor and trace (PNG)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    counter = length_counter(args.length_tokenizer)
    traces = {
        path: _select(path, read_trace(path, counter, target=args.target, model=args.target_model), args)
        for path in args.data
    }
    results: list[dict[str, Any]] = []
    for spec in args.predictor or ["default"]:
        predictor = load_predictor(spec, args)
        for path, records in traces.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            scores = predictor.score([r.prompt for r in records], progress=True)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            reason = undefined_reason(scores, [r.length for r in records])
            results.append(
                {
                    "predictor": spec,
                    "data": path,
                    **evaluate_scores(scores, records),
                    **({"tau_undefined": reason} if reason else {}),
                    "ms_per_prompt": 1000.0 * seconds / max(len(records), 1),
                    "cpu_ms_per_prompt": 1000.0 * cpu_seconds / max(len(records), 1),
                }
            )
    if len(results) == 1:
        print_json(results[0])
    else:
        print_json(results)
        print(comparison_table(results))
    if args.plot:
        plot_comparison(results, Path(args.plot))
    print(f"kendall_tau={correlation_text(results[0]['kendall_tau'], '.4f')}")
    undefined = [r for r in results if "tau_undefined" in r]
    if undefined:
        pairs = "; ".join(f"{r['predictor']} on {r['data']}: {r['tau_undefined']}" for r in undefined)
        print(
            f"ltr-predictors eval: Kendall tau undefined for {len(undefined)} of {len(results)} runs ({pairs})",
            file=sys.stderr,
        )
        return EXIT_TAU_UNDEFINED
    return 0


def _select(path: str, records: list[TraceRecord], args: argparse.Namespace) -> list[TraceRecord]:
    if args.split is None:
        return records
    kept = [r for r in records if split_of(r.prompt, args.val_fraction, args.test_fraction) == args.split]
    if not kept:
        raise TraceFormatError(f"{path}: no record in split {args.split!r}")
    return kept


def comparison_table(results: list[dict[str, Any]]) -> str:
    """Markdown table: one row per (predictor, data) and one per dataset inside it."""
    lines = [
        "| predictor | data | dataset | n | tau | rho | ms/prompt | CPU ms/prompt |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['predictor']} | {row['data']} | all | {row['n']} | {correlation_text(row['kendall_tau'])} | "
            f"{correlation_text(row['spearman'])} | {row['ms_per_prompt']:.3f} | {row['cpu_ms_per_prompt']:.3f} |"
        )
        for name, sub in row.get("per_dataset", {}).items():
            lines.append(
                f"| {row['predictor']} | {row['data']} | {name} | {sub['n']} | "
                f"{correlation_text(sub['kendall_tau'])} | {correlation_text(sub['spearman'])} | | |"
            )
    return "\n".join(lines)


def plot_comparison(results: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: Kendall tau of each predictor on each trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictors = list(dict.fromkeys(r["predictor"] for r in results))
    datas = list(dict.fromkeys(r["data"] for r in results))
    width = 0.8 / max(len(predictors), 1)
    fig, ax = plt.subplots(figsize=(max(6, 2 * len(datas)), 4))
    for i, spec in enumerate(predictors):
        taus = [
            next((r["kendall_tau"] for r in results if r["predictor"] == spec and r["data"] == d), 0.0) for d in datas
        ]
        ax.bar([j + i * width for j in range(len(datas))], taus, width, label=Path(spec).name or spec)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(datas))], [Path(d).name for d in datas])
    ax.set_ylabel("Kendall tau-b (higher is better)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
