"""Arguments and helpers shared by several subcommands: loading predictors, reading prompts and traces."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..data.traces import LengthCounter, iter_lines, iter_rows, prompt_of
from ..errors import LTRPredictorError, SettingError, TraceFormatError
from ..loading.hub import HubOptions, download_tokenizer
from ..predictor import DEFAULT_BATCH_SIZE, DTYPES, LengthPredictor

EXIT_TAU_UNDEFINED = 3  # the command read and scored everything, but the rank correlation it reports is undefined


def positive_int(text: str) -> int:
    """argparse `type` of a count or size: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse `type` of a rate, scale or duration: a finite number > 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def output_file(text: str) -> str:
    """argparse `type` of a file to write (`-`: stdout): refused at once when its folder is missing or it is a folder,
    rather than after the work whose result it would hold."""
    path = Path(text)
    if text != "-" and path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file to write")
    if text != "-" and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: no folder {str(path.parent)!r}")
    return text


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
    parser.add_argument(
        "--batch-size", type=positive_int, default=None, help=f"prompts per forward pass (default {DEFAULT_BATCH_SIZE})"
    )


def load_predictor(spec: str, args: argparse.Namespace) -> LengthPredictor:
    return LengthPredictor.from_spec(
        spec, accept_license=args.accept_license, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )


def length_counter(tokenizer_id: str | None) -> LengthCounter | None:
    """Token counter for `generated` texts, from a Hub id or a folder (fetched like any backbone tokenizer)."""
    if tokenizer_id is None:
        return None
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            download_tokenizer(tokenizer_id, HubOptions()), local_files_only=True, trust_remote_code=False
        )
    except LTRPredictorError:
        raise
    except (OSError, ValueError) as exc:  # a folder without tokenizer files, an id the Hub client refuses
        raise SettingError(f"length tokenizer {tokenizer_id!r}: cannot load it ({exc})") from exc
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def read_prompts(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Prompts of a `.txt` file (one per line; `\\n` inside a prompt written as a literal backslash-n is kept as is)
    or of a JSONL/CSV with a `prompt` field. Returns the prompts and the rows they came from; no prompt is an error."""
    path = Path(path)
    if path.suffix == ".txt":
        prompts = [line.rstrip("\r\n") for _, line in iter_lines(path)]
        rows: list[dict[str, Any]] = [{} for _ in prompts]
    else:
        numbered = list(iter_rows(path))
        prompts = [prompt_of(row, f"{path}:{number}") for number, row in numbered]
        rows = [row for _, row in numbered]
    if not prompts:
        raise TraceFormatError(f"{path}: no prompts")
    return prompts, rows


def correlation_text(value: float, spec: str = ".3f") -> str:
    """A rank correlation as text; NaN (no ranking to measure, see `evaluation.undefined_reason`) as `undefined`."""
    return "undefined" if math.isnan(value) else format(value, spec)


def print_json(data: Any) -> None:
    """`data` as indented JSON; NaN and infinities, which JSON cannot spell, as null."""
    print(json.dumps(_json_safe(data), indent=2, default=str))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
