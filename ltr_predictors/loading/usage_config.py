"""vllm-ltr's `usage_config.json`: read the exact 7-field format, keep unknown fields, write it back.

The file is `{"model": {pred_model, num_labels, mtype, activation, path, max_length, max_batch_size}}` as written by
vllm-ltr's `PrefillPredictorConfig`. vllm-ltr reads it with `PrefillModelConfig(**config["model"])` and
`PrefillPredictorConfig(**config)`, so any extra key breaks its readers: our own fields live beside it in
`ltr_config.json` (see `ltr_config.py`), and we only write back unknown keys that were already there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnknownFamilyError, UsageConfigError
from ._json_files import read_json

USAGE_CONFIG_NAME = "usage_config.json"
FAMILIES = ("rank", "class", "regression")
DEFAULT_MAX_LENGTH = 1024
DEFAULT_MAX_BATCH_SIZE = 512
_KNOWN_FIELDS = ("pred_model", "num_labels", "mtype", "activation", "path", "max_length", "max_batch_size")


@dataclass
class UsageConfig:
    """The `model` block of a vllm-ltr `usage_config.json`.

    `mtype` is the family: `rank` (one logit), `class` (length buckets) or `regression` (log length, ours).
    `path` is where training wrote the weights; it is stale once the folder moves, so loaders look for
    `finetuned/` beside the file instead.
    """

    pred_model: str | None
    num_labels: int
    mtype: str
    activation: str | None = None
    path: str = ""
    max_length: int = DEFAULT_MAX_LENGTH
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    extra_model_fields: dict[str, Any] = field(default_factory=dict)
    extra_top_level: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = USAGE_CONFIG_NAME) -> UsageConfig:
        """Validate a parsed file; `where` names it in errors."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise UsageConfigError(f"{where}: expected a JSON object with a 'model' object")
        model = dict(data["model"])
        for name in ("num_labels", "mtype"):
            if name not in model:
                raise UsageConfigError(f"{where}: missing field 'model.{name}'")
        mtype = model["mtype"]
        if mtype not in FAMILIES:
            raise UnknownFamilyError(
                f"{where}: unknown 'model.mtype' {mtype!r}; this library scores {', '.join(FAMILIES)}"
            )
        num_labels = _int_field(model, "num_labels", where, minimum=-1)
        if mtype in ("rank", "regression") and num_labels != 1:
            raise UsageConfigError(f"{where}: 'model.num_labels' must be 1 for mtype {mtype!r}, got {num_labels}")
        if mtype == "class" and num_labels in (0, 1):
            raise UsageConfigError(f"{where}: 'model.num_labels' must be >= 2 for mtype 'class', got {num_labels}")
        pred_model = model.get("pred_model")
        if pred_model is not None and not isinstance(pred_model, str):
            raise UsageConfigError(f"{where}: 'model.pred_model' must be a model id or path, got {pred_model!r}")
        activation = model.get("activation")
        if activation not in (None, "sigmoid", "tanh", "identity"):
            raise UsageConfigError(f"{where}: unsupported 'model.activation' {activation!r}")
        path = model.get("path", "")
        if not isinstance(path, str):
            raise UsageConfigError(f"{where}: 'model.path' must be a string, got {path!r}")
        return cls(
            pred_model=pred_model,
            num_labels=num_labels,
            mtype=mtype,
            activation=activation,
            path=path,
            max_length=_int_field(model, "max_length", where, minimum=1, default=DEFAULT_MAX_LENGTH),
            max_batch_size=_int_field(model, "max_batch_size", where, minimum=1, default=DEFAULT_MAX_BATCH_SIZE),
            extra_model_fields={k: v for k, v in model.items() if k not in _KNOWN_FIELDS},
            extra_top_level={k: v for k, v in data.items() if k != "model"},
        )

    @classmethod
    def from_file(cls, path: str | Path) -> UsageConfig:
        path = Path(path)
        if not path.is_file():
            raise UsageConfigError(f"{path}: no {USAGE_CONFIG_NAME} here")
        return cls.from_dict(read_json(path), where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The file's content: the 7 vllm-ltr fields in their order, then any unknown fields we were given."""
        model = {name: getattr(self, name) for name in _KNOWN_FIELDS}
        model.update(self.extra_model_fields)
        return {"model": model, **self.extra_top_level}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / USAGE_CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def _int_field(model: dict[str, Any], name: str, where: str, minimum: int, default: int | None = None) -> int:
    value = model.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageConfigError(f"{where}: 'model.{name}' must be an integer >= {minimum}, got {value!r}")
    return value
