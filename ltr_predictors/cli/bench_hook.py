"""`ltr-predictors bench-hook`: what the vLLM hooks cost per request and per `schedule()` call."""

from __future__ import annotations

import argparse

from ..benchmarks.hook_overhead import ConstantScorer, middleware_cost, scheduler_hook_cost
from ._common import add_predictor_args, load_predictor, positive_int, read_prompts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench-hook", help="overhead of the vLLM middleware (per request) and scheduler hook (per schedule())"
    )
    add_predictor_args(parser)
    parser.add_argument("--prompts", default=None, help="prompts file (.txt/.jsonl/.csv); default: synthetic")
    parser.add_argument("--requests", type=positive_int, default=512, help="requests through the middleware")
    parser.add_argument("--concurrency", type=positive_int, default=64, help="requests arriving together")
    parser.add_argument("--waiting", type=positive_int, default=10_000, help="waiting requests in the scheduler queue")
    parser.add_argument("--new-per-step", type=positive_int, default=8, help="new requests scored per schedule() call")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prompts = read_prompts(args.prompts)[0] if args.prompts else []
    prompts = prompts or [f"Write a story about topic number {i}, in {i % 7 + 1} paragraphs." for i in range(64)]
    prompts = (prompts * (args.requests // len(prompts) + 1))[: args.requests]
    bare = middleware_cost(ConstantScorer(), prompts, args.concurrency)
    predictor = load_predictor(args.predictor, args)
    scored = middleware_cost(predictor, prompts, args.concurrency)
    hook = scheduler_hook_cost(args.waiting, args.new_per_step)
    hook_scored = scheduler_hook_cost(args.waiting, args.new_per_step, scorer=predictor)
    print(f"middleware, {len(prompts)} requests ({predictor.info.name}):")
    print(f"  scoring excluded: {bare.sequential_ms:.3f} ms alone, {bare.concurrent_ms:.3f} ms/request "
          f"at {args.concurrency} concurrent")  # fmt: skip
    print(f"  scoring included: {scored.sequential_ms:.3f} ms alone, {scored.concurrent_ms:.3f} ms/request "
          f"at {args.concurrency} concurrent")  # fmt: skip
    print(f"scheduler hook, {hook.waiting} waiting requests:")
    print(f"  per schedule() call, nothing new: {hook.idle_us:.1f} us")
    for label, cost in (("excluded", hook), ("included", hook_scored)):
        print(f"  per schedule() call, {cost.new_requests} new requests (scoring {label}): {cost.with_new_us:.1f} us")
    return 0
