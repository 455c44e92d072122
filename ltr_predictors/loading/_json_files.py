"""Read a JSON config file safely: one named error for anything that is not a plain, shallow JSON document.

Every config a predictor folder holds (`usage_config.json`, `ltr_config.json`, `lexical_config.json`, the weights'
`config.json`, a shard index) goes through `read_json`, so a file that is not UTF-8, not JSON, or nests deeper than
any real config does, is refused with the file named instead of surfacing as a raw `JSONDecodeError` or
`RecursionError`. Python writes `NaN` for an undefined metric (our own provenance blocks hold some), so non-finite
numbers are read by default and each reader checks the numbers it uses; `finite=True` refuses them outright, for
files where any number feeds the model (a transformers `config.json`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import LTRPredictorError, UsageConfigError

# Real configs nest a few levels (a transformers config with a quantization or rope block: ~4); deeper is refused
# before any reader recurses into it.
MAX_DEPTH = 32


def read_json(path: Path, error: type[LTRPredictorError] = UsageConfigError, *, finite: bool = False) -> Any:
    """The parsed content of `path`, or `error` naming the file and what is wrong with it; `finite` refuses `NaN`,
    `Infinity` and numbers too large for a float."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read it as UTF-8 text ({exc})") from exc
    try:
        data = (_FINITE if finite else _PLAIN).decode(text)
    except RecursionError as exc:
        raise error(f"{path}: nested deeper than {MAX_DEPTH} levels") from exc
    except (json.JSONDecodeError, ValueError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc
    if _depth(data) > MAX_DEPTH:
        raise error(f"{path}: nested deeper than {MAX_DEPTH} levels")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config may hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a float")
    return value


def _depth(data: Any) -> int:
    """How deep containers nest in `data` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((child, level + 1) for child in children)
    return deepest


_PLAIN = json.JSONDecoder()
_FINITE = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
