"""Read length-labelled traces: which prompt produced how many output tokens.

Formats, one record per JSONL line (`.gz` welcome) or CSV row:
- vllm-ltr traces: `prompt` + `generated` (the completion text; its length is counted with a tokenizer you name);
- our records: `prompt` + `output_tokens` (an int, or a list of sampled lengths: their mean is the target).
Optional fields kept: `id`, `dataset`, `model`.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingError, TraceFormatError


@dataclass
class TraceRecord:
    prompt: str
    length: float
    samples: list[float]
    dataset: str | None = None
    id: str | None = None
    model: str | None = None


LengthCounter = Callable[[str], int]


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, gunzipped when its name ends in `.gz`; line ends are kept.

    Whatever stops the reading (a missing file, a folder, no permission, bytes that are not UTF-8, a corrupt or
    truncated gzip stream) is a `TraceFormatError` naming the file, and the line where one is known.
    """
    path = Path(path)
    number = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TraceFormatError(
                        f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                    ) from exc
                yield number, text
    except OSError as exc:  # gzip.BadGzipFile is one
        raise TraceFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except (EOFError, zlib.error) as exc:
        raise TraceFormatError(f"{path}: corrupt gzip data after line {number} ({exc})") from exc


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a JSONL or CSV file, gzipped or not (see `iter_lines` for the errors)."""
    path = Path(path)
    rows = _csv_rows if ".csv" in path.suffixes else _jsonl_rows
    yield from rows(path, iter_lines(path))


def _jsonl_rows(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceFormatError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        except RecursionError as exc:
            raise TraceFormatError(f"{path}:{number}: not valid JSON (nested too deeply)") from exc
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise TraceFormatError(f"{path}:{number}: not valid JSON ({str(exc).split(';')[0]})") from exc
        if not isinstance(row, dict):
            raise TraceFormatError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _csv_rows(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV with a header line, each numbered by the line it ends on (a quoted field may span lines)."""
    reader = csv.DictReader(text for _, text in lines)
    try:
        for row in reader:
            yield reader.line_num, dict(row)
    except csv.Error as exc:
        hint = "; JSONL has no such limit" if "field limit" in str(exc) else ""
        raise TraceFormatError(f"{path}:{reader.line_num}: not valid CSV ({exc}{hint})") from exc


def prompt_of(row: dict[str, Any], where: str) -> str:
    """The row's `prompt`: a string of valid Unicode text (JSON can spell lone surrogates, which no tokenizer or hash
    takes)."""
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise TraceFormatError(f"{where}: missing string field 'prompt'")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TraceFormatError(
            f"{where}: 'prompt' is not valid Unicode text (a lone surrogate at character {exc.start})"
        ) from exc
    return prompt


def samples_of(row: dict[str, Any], where: str, count_tokens: LengthCounter | None) -> list[float]:
    """The output lengths a row records: its `output_tokens` (see `parse_samples`), else its `generated` text's
    length counted with `count_tokens` (a trace without lengths needs a length tokenizer)."""
    if row.get("output_tokens") not in (None, ""):
        return parse_samples(row["output_tokens"], where)
    if not isinstance(row.get("generated"), str):
        raise TraceFormatError(f"{where}: needs 'output_tokens' or 'generated'")
    if count_tokens is None:
        raise TraceFormatError(
            f"{where}: record has 'generated' text but no 'output_tokens'; its length needs a length tokenizer "
            "(--length-tokenizer)"
        )
    return [float(count_tokens(row["generated"]))]


def parse_samples(value: Any, where: str) -> list[float]:
    """`output_tokens` as a list of floats: a number, a list of numbers, or (from CSV) their text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise TraceFormatError(f"{where}: 'output_tokens' is not a number: {_shown(value)}") from exc
    samples = value if isinstance(value, list) else [value]
    if not samples:
        raise TraceFormatError(f"{where}: 'output_tokens' is an empty list")
    return [_token_count(sample, where) for sample in samples]


def _token_count(value: Any, where: str) -> float:
    """One sampled output length: a finite number >= 0 (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceFormatError(f"{where}: 'output_tokens' must be a number or a list of numbers, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        number = math.inf
    if not (math.isfinite(number) and number >= 0):
        raise TraceFormatError(f"{where}: 'output_tokens' must be a finite number >= 0, got {_shown(value)}")
    return number


def _shown(value: Any, limit: int = 40) -> str:
    """`repr(value)`, cut to `limit` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_trace(
    path: str | Path,
    count_tokens: LengthCounter | None = None,
    target: str = "mean",
    model: str | None = None,
) -> list[TraceRecord]:
    """All records of a trace. `target` reduces sampled lengths: `mean`, `median` or `sample` (the first).

    `model` keeps only records whose `model` field equals it (for files that hold several target models).
    """
    records = []
    for number, row in iter_rows(path):
        where = f"{path}:{number}"
        if model is not None and row.get("model") != model:
            continue
        prompt = prompt_of(row, where)
        samples = samples_of(row, where, count_tokens)
        records.append(
            TraceRecord(
                prompt=prompt,
                length=reduce_samples(samples, target),
                samples=samples,
                dataset=optional_str(row.get("dataset")),
                id=optional_str(row.get("id")),
                model=optional_str(row.get("model")),
            )
        )
    if not records:
        raise TraceFormatError(f"{path}: no records" + (f" for model {model!r}" if model else ""))
    return records


def reduce_samples(samples: list[float], target: str) -> float:
    if target == "mean":
        return float(np.mean(samples))
    if target == "median":
        return float(np.median(samples))
    if target == "sample":
        return samples[0]
    raise SettingError(f"target {target!r}: expected mean, median or sample")


def optional_str(value: Any) -> str | None:
    """A field's text; None for a missing or empty field."""
    return None if value is None or value == "" else str(value)
