"""Read length-labelled traces: which prompt produced how many output tokens.

Formats, one record per JSONL line (`.gz` welcome) or CSV row:
- vllm-ltr traces: `prompt` + `generated` (the completion text; its length is counted with a tokenizer you name);
- our records: `prompt` + `output_tokens` (an int, or a list of sampled lengths: their mean is the target).
Optional fields kept: `id`, `dataset`, `model`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TraceFormatError


@dataclass
class TraceRecord:
    prompt: str
    length: float
    samples: list[float]
    dataset: str | None = None
    id: str | None = None
    model: str | None = None


LengthCounter = Callable[[str], int]


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a JSONL or CSV file, gzipped or not."""
    path = Path(path)
    if not path.is_file():
        raise TraceFormatError(f"{path}: no such file")
    is_csv = ".csv" in path.suffixes
    with open_text(path) as handle:
        if is_csv:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield number, dict(row)
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise TraceFormatError(f"{path}:{number}: expected a JSON object")
            yield number, row


def parse_samples(value: Any, where: str) -> list[float]:
    """`output_tokens` as a list of floats: an int, a list of ints, or (from CSV) their text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TraceFormatError(f"{where}: 'output_tokens' is not a number: {value!r}") from exc
    samples = value if isinstance(value, list) else [value]
    if not samples or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in samples):
        raise TraceFormatError(f"{where}: 'output_tokens' must be a non-negative number or a list of them")
    return [float(v) for v in samples]


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
        prompt = row.get("prompt")
        if not isinstance(prompt, str):
            raise TraceFormatError(f"{where}: missing string field 'prompt'")
        if row.get("output_tokens") not in (None, ""):
            samples = parse_samples(row["output_tokens"], where)
        elif isinstance(row.get("generated"), str):
            if count_tokens is None:
                raise TraceFormatError(
                    f"{where}: record has 'generated' text but no 'output_tokens'; "
                    "name a tokenizer to count its tokens (--length-tokenizer)"
                )
            samples = [float(count_tokens(row["generated"]))]
        else:
            raise TraceFormatError(f"{where}: needs 'output_tokens' or 'generated'")
        records.append(
            TraceRecord(
                prompt=prompt,
                length=reduce_samples(samples, target),
                samples=samples,
                dataset=_optional_str(row.get("dataset")),
                id=_optional_str(row.get("id")),
                model=_optional_str(row.get("model")),
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
    raise ValueError(f"unknown target {target!r}; expected mean, median or sample")


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
