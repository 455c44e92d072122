"""`ltr-predictors label` on a tiny random causal LM built here: a valid trace; our decode loop matches `generate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import opt_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from ltr_predictors.cli import main
from ltr_predictors.data.labeling import SamplingSettings, resolve_model
from ltr_predictors.data.traces import read_trace

CHAT_TEMPLATE = "{% for m in messages %}</s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"


def write_tiny_causal_lm(folder: Path) -> Path:
    tokenizer = opt_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=2,
        eos_token_id=2,
        pad_token_id=1,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # make EOS likely enough that some samples stop before the cap
        model.lm_head.weight[2] *= 3
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_label_writes_a_trace_read_trace_reads(tiny_lm: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"id": f"p{i}", "kind": "test", "prompt": text}
        for i, text in enumerate(["hello world", "write a long essay", "yes"])
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "trace.jsonl"
    argv = ["label", "--prompts", str(prompts), "--model", str(tiny_lm), "--samples", "3", "--max-new-tokens", "12"]
    assert main([*argv, "--backend", "transformers", "--dtype", "float32", "--batch-size", "4", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["p0", "p1", "p2"]
    assert all(r["kind"] == "test" and r["model"] == str(tiny_lm) for r in records)
    assert all(len(r["output_tokens"]) == 3 and all(1 <= n <= 12 for n in r["output_tokens"]) for r in records)
    sampling = records[0]["sampling"]
    assert sampling["samples"] == 3 and sampling["max_new_tokens"] == 12 and sampling["backend"] == "transformers"
    assert sampling["repetition_penalty"] == 1.2 and sampling["chat_template"] is True
    trace = read_trace(out)
    assert [t.samples for t in trace] == [[float(n) for n in r["output_tokens"]] for r in records]


def test_decode_loop_matches_generate_under_greedy(tiny_lm: Path) -> None:
    """Greedy: our shrinking, left-padded batch must reproduce `generate` (one prompt at a time) token for token."""
    from ltr_predictors.data.labeling import _load_transformers, _stop_ids, chat_texts, decode_batch

    tokenizer, model = _load_transformers(resolve_model(str(tiny_lm)), "float32")
    texts = chat_texts(tokenizer, ["hello", "write a long story about code", "no", "list the world"])
    settings = SamplingSettings(temperature=0.0, repetition_penalty=1.3, max_new_tokens=30, samples=1)
    outputs = decode_batch(model, tokenizer, texts, settings, _stop_ids(tokenizer, model))
    expected = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=30, do_sample=False, repetition_penalty=1.3, pad_token_id=1)
        expected.append(out[0, ids["input_ids"].shape[1] :].tolist())
    assert outputs == expected
    assert len({tuple(o) for o in outputs}) > 1, "different prompts should give different outputs"


def test_bad_model_names_are_reported(tmp_path: Path) -> None:
    from ltr_predictors.data.labeling import LabelingError

    with pytest.raises(LabelingError, match=r"missing\.gguf"):
        resolve_model(str(tmp_path / "missing.gguf"))
