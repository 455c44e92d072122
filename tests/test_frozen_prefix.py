"""`train --train-top-layers K`: the frozen layers run once per prompt and only the top K layers, norm and head learn.

The backbone is the tiny random Llama of `test_labeling` given four layers; the split forward (states after the
frozen layers, then the top layers) must give the whole model's scores, so that training optimises what the saved
predictor computes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_chat_template import PROMPTS, train_tiny
from test_labeling import write_tiny_causal_lm
from test_training import tiny_bert_backbone
from transformers import LlamaConfig, LlamaForCausalLM

from ltr_predictors.predictor import LengthPredictor
from ltr_predictors.training.frozen_prefix import FrozenPrefixError
from ltr_predictors.training.trainables import BackboneError, make_trainable

LAYERS = 4


@pytest.fixture(scope="module")
def four_layer_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama-4"))
    config = LlamaConfig.from_pretrained(folder)
    config.num_hidden_layers = LAYERS
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("batch_tokens", [None, 30])  # 30: prompts go through the top layers in several groups
def test_split_forward_gives_the_whole_models_scores(four_layer_llama: Path, batch_tokens: int | None) -> None:
    trainable = make_trainable(str(four_layer_llama), 1, 24, chat_template=True, train_top_layers=1)
    trainable.scorer().max_batch_tokens = batch_tokens
    prompts = [*PROMPTS, "a much longer prompt " * 9]
    with torch.inference_mode():
        split = trainable.forward(trainable.encode(prompts)).numpy()[:, 0]
    whole = trainable.scorer().raw(prompts)[:, 0]
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)
    assert np.ptp(whole) > 0  # the prompts score differently, so the comparison can fail


def test_only_the_top_layers_norm_and_head_learn(four_layer_llama: Path, tmp_path: Path) -> None:
    out = train_tiny(four_layer_llama, tmp_path / "top2", "--chat-template", "--train-top-layers", "2", "--lr", "1e-2")
    before = LlamaForCausalLM.from_pretrained(four_layer_llama).state_dict()
    after = load_file(out / "finetuned" / "model.safetensors")
    changed = {name for name, value in after.items() if name in before and not torch.equal(value, before[name])}
    assert changed, "nothing was trained"
    assert all(name.startswith(("model.layers.2.", "model.layers.3.", "model.norm.")) for name in changed)
    assert any(name.startswith("model.layers.2.") for name in changed)
    assert "score.weight" in after
    config = json.loads((out / "ltr_config.json").read_text())
    assert config["provenance"]["hyperparameters"]["train_top_layers"] == 2
    assert LengthPredictor.from_pretrained(out).score(PROMPTS).shape == (len(PROMPTS),)


@pytest.mark.parametrize("layers", [0, -1, LAYERS, 9])
def test_top_layers_out_of_range_are_refused(four_layer_llama: Path, layers: int) -> None:
    with pytest.raises(FrozenPrefixError, match=f"train_top_layers {layers}: the backbone has 4 decoder layers"):
        make_trainable(str(four_layer_llama), 1, 24, train_top_layers=layers)


def test_backbones_without_decoder_layers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FrozenPrefixError, match="BertForSequenceClassification is not a decoder LM"):
        make_trainable(str(tiny_bert_backbone(tmp_path / "bert")), 1, 24, train_top_layers=1)
    with pytest.raises(BackboneError, match="needs a transformers decoder backbone, not lexical"):
        make_trainable("lexical", 1, 100, train_top_layers=2)
