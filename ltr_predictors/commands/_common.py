"""Arguments and helpers shared by several subcommands: loading predictors, reading prompts and traces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import TraceFormatError
from ..hub import HubOptions, download_tokenizer
from ..predictor import DTYPES, LengthPredictor
from ..traces import LengthCounter, iter_rows, open_text


def add_predictor_args(parser: argparse.ArgumentParser, multiple: bool = False) -> None:
    """`--predictor SPEC` (repeatable when `multiple`) and the loading options."""
    parser.add_argument(
        "--predictor",
        action="append" if multiple else "store",
        default=None if multiple else "default",
        metavar="SPEC",
        help="`default`, `best`, a folder, or REPO[:SUBFOLDER][@REVISION]"
        + (" (repeat to compare)" if multiple else ""),
    )
    add_loading_args(parser)


def add_loading_args(parser: argparse.ArgumentParser) -> None:
    """`--accept-license`, `--device`, `--dtype`, `--batch-size`: how to load whatever predictor the command names."""
    parser.add_argument(
        "--accept-license",
        action="append",
        default=[],
        metavar="ID",
        help="accept a restrictive license, e.g. opt-175b-license (or set LTR_PREDICTORS_ACCEPT_LICENSES)",
    )
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda:0 (default: cpu)")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="transformer weights' dtype (default: float32)")
    parser.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass (default 32)")


def load_predictor(spec: str, args: argparse.Namespace) -> LengthPredictor:
    return LengthPredictor.from_spec(
        spec, accept_license=args.accept_license, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )


def length_counter(tokenizer_id: str | None) -> LengthCounter | None:
    """Token counter for `generated` texts, from a Hub id or a folder (fetched like any backbone tokenizer)."""
    if tokenizer_id is None:
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        download_tokenizer(tokenizer_id, HubOptions()), local_files_only=True, trust_remote_code=False
    )
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def read_prompts(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Prompts of a `.txt` file (one per line; `\\n` inside a prompt written as a literal backslash-n is kept as is)
    or of a JSONL/CSV with a `prompt` field. Returns the prompts and the rows they came from."""
    path = Path(path)
    if path.suffix == ".txt":
        with open_text(path) as handle:
            lines = [line.rstrip("\n") for line in handle]
        return lines, [{} for _ in lines]
    prompts, rows = [], []
    for number, row in iter_rows(path):
        if not isinstance(row.get("prompt"), str):
            raise TraceFormatError(f"{path}:{number}: missing string field 'prompt'")
        prompts.append(row["prompt"])
        rows.append(row)
    return prompts, rows


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
