"""Training a LoRA adapter: its hyperparameters (`LoraSettings`), wrapping a decoder sequence classifier in a
trainable adapter (peft, task `SEQ_CLS`: low-rank updates on its linear projections, the `score` head trained whole)
and saving only the adapter's two files, a few MB instead of the base's hundreds. `loading.adapters` loads them back
onto the exact base recorded here (id, file, sha256).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import AdapterError
from ..loading.adapters import ADAPTER_WEIGHTS_NAME, HEAD, base_folder, locate_base
from ..loading.gguf import sha256_of
from ..loading.hub import HubOptions
from ..loading.ltr_config import BaseWeights

ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyperparameters: the one definition that the recipe's `lora:` block, the `--lora-*` flags and the
    provenance all come from. `targets`: module names, or `all-linear` (every linear projection but the head)."""

    rank: int = field(default=8, metadata={"help": "rank of the low-rank updates (default 8)"})
    alpha: int = field(default=16, metadata={"help": "the updates are scaled by alpha / rank (default 16)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input while training (default 0)"})
    targets: tuple[str, ...] = field(
        default=(ALL_LINEAR,),
        metadata={"help": "comma-separated module names to adapt, or all-linear (default: every linear but the head)"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise AdapterError(f"lora rank {self.rank!r}: must be an integer >= 1")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int) or self.alpha < 1:
            raise AdapterError(f"lora alpha {self.alpha!r}: must be an integer >= 1")
        if not 0 <= self.dropout < 1:
            raise AdapterError(f"lora dropout {self.dropout!r}: must be in [0, 1)")
        targets = tuple(self.targets) if isinstance(self.targets, list | tuple) else None
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise AdapterError(f"lora targets {self.targets!r}: expected module names or {ALL_LINEAR!r}")
        object.__setattr__(self, "targets", targets)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LoraSettings:
        """From a recipe's `lora:` mapping; unknown keys are refused by name."""
        known = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or set(data) - set(known):
            raise AdapterError(f"{where}: 'lora' must be a mapping of {known}, got {data!r}")
        return cls(**data)


def add_lora(model: Any, settings: LoraSettings, backbone: str, top_layers: int | None = None) -> Any:
    """`model` (a sequence classifier) wrapped in a trainable LoRA adapter, on its top `top_layers` decoder layers
    only when given; refuses models without a decoder head."""
    from peft import LoraConfig, get_peft_model

    if not isinstance(getattr(model, HEAD, None), torch.nn.Linear):
        raise AdapterError(
            f"backbone {backbone!r}: {type(model).__name__} has no decoder `{HEAD}` head (an encoder such as BERT or "
            "MiniLM); --adapter lora needs a decoder backbone (SmolLM2, Llama, Qwen, Mistral...)"
        )
    targets = _linear_names(model) if settings.targets == (ALL_LINEAR,) else list(settings.targets)
    config = LoraConfig(
        task_type="SEQ_CLS",
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        modules_to_save=[HEAD],
        layers_to_transform=None if top_layers is None else _top_layer_indices(model, top_layers),
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules the backbone does not have
        raise AdapterError(f"backbone {backbone!r}: cannot add LoRA on {targets} ({exc})") from exc


def _top_layer_indices(model: Any, top_layers: int) -> list[int]:
    count = int(getattr(model.config, "num_hidden_layers", 0))
    if not 0 < top_layers < count:
        raise AdapterError(
            f"train_top_layers {top_layers}: the backbone has {count} decoder layers; pick 1 to {count - 1}"
        )
    return list(range(count - top_layers, count))


def _linear_names(model: torch.nn.Module) -> list[str]:
    """Names (last component) of every linear layer but the head: q_proj, ..., down_proj for Llama."""
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    return sorted(names - {HEAD})


def training_base(model_id: str, file: str) -> tuple[BaseWeights, Path]:
    """The base a new adapter is trained on (recorded with its sha256) and the folder it loads from."""
    path = locate_base(model_id, file, HubOptions())
    digest = sha256_of(path)
    return BaseWeights(model_id=model_id, file=file, sha256=digest), base_folder(path, digest)


def save_adapter(model: Any, folder: Path, base: BaseWeights) -> None:
    """`adapter_config.json` and `adapter_model.safetensors` (LoRA matrices and the head, never base weights)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    config = copy.deepcopy(model.peft_config["default"])
    config.base_model_name_or_path = base.model_id
    config.inference_mode = True
    config.save_pretrained(str(folder))
    state = get_peft_model_state_dict(model, save_embedding_layers=False)
    tensors = {name: value.detach().to("cpu").contiguous() for name, value in state.items()}
    save_file(tensors, str(folder / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
