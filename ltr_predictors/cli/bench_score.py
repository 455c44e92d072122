"""`ltr-predictors bench-score`: prompts/s and batch latency of batched scoring vs a naive per-prompt loop."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import torch

from ..benchmarks.scoring import SHAPES, run_scoring_bench, synthetic_prompts
from ..data.traces import read_trace
from ..errors import CommandLineError
from ..predictor import DEFAULT_BATCH_SIZE
from ._common import DTYPES, output_file, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench-score", help="benchmark scoring throughput (OPT-125M / BERT-base shapes)")
    parser.add_argument("--data", default=None, help="trace whose prompts to score (default: built-in synthetic mix)")
    parser.add_argument("--num-prompts", type=positive_int, default=256)
    parser.add_argument("--naive-prompts", type=positive_int, default=None, help="time the naive loop on fewer prompts")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument(
        "--dtype", default="float32", choices=DTYPES, help="batched path's dtype (the naive loop stays fp32)"
    )
    parser.add_argument("--device", default=None, help="torch device of both paths, e.g. cuda (default: cpu)")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--output", default=None, type=output_file, help="write the figures as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    shapes = args.shapes.split(",")
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise CommandLineError(f"--shapes: unknown {', '.join(unknown)}; expected {', '.join(SHAPES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data:
        prompts = [r.prompt for r in read_trace(args.data)][: args.num_prompts]
    else:
        prompts = synthetic_prompts(args.num_prompts)
    dtype = getattr(torch, args.dtype)
    results = [
        run_scoring_bench(shape, prompts, args.batch_size, args.naive_prompts, dtype, args.device) for shape in shapes
    ]
    where = args.device or f"cpu, {torch.get_num_threads()} torch threads"
    print(f"device: {where}, prompts: {len(prompts)}, batch size: {args.batch_size}")
    print(
        f"{'shape':10s} {'dtype':>8s} {'tokens':>7s} {'batched/s':>10s} {'naive fp32/s':>12s} {'speedup':>8s} "
        f"{'p50 ms':>8s} {'p99 ms':>8s}"
    )
    for r in results:
        print(
            f"{r.shape:10s} {r.dtype:>8s} {r.mean_tokens:7.1f} {r.batched_prompts_per_s:10.1f} "
            f"{r.naive_prompts_per_s:12.1f} {r.speedup:7.2f}x {r.batch_p50_ms:8.1f} {r.batch_p99_ms:8.1f}"
        )
        if r.kendall_tau_vs_fp32 is not None:
            print(
                f"{'':10s} batching alone (fp32 batched {r.fp32_batched_prompts_per_s:.1f}/s): "
                f"{r.batching_speedup:.2f}x; {r.dtype} vs fp32 scores: Kendall tau {r.kendall_tau_vs_fp32:.4f}, "
                f"max abs diff {r.max_abs_diff_vs_fp32:.3g}"
            )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            records = [{**asdict(r), "speedup": r.speedup, "batching_speedup": r.batching_speedup} for r in results]
            json.dump(records, handle, indent=2)
    return 0
