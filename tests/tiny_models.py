"""Tiny random OPT/BERT predictors and tokenizers, built from configs, in the exact layouts we must load.

Nothing is downloaded: vocabularies are written here, weights are random under a fixed seed. The seed layout is
`<name>/usage_config.json` + `<name>/finetuned/{config.json, model.safetensors}` (fp16, no tokenizer), and the
tokenizer repos mimic `facebook/opt-125m` and `bert-base-uncased` (`google-bert/bert-base-uncased` on the Hub).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    GPT2Tokenizer,
    OPTConfig,
    OPTForSequenceClassification,
    PreTrainedTokenizerBase,
)

WORDS = ["hello", "world", "write", "essay", "long", "short", "code", "list", "story", "yes", "no", "the", "a"]


def opt_tokenizer() -> PreTrainedTokenizerBase:
    """Byte-level BPE over a-z, space and a few whole words, with OPT's special tokens (pad id 1)."""
    vocab: dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    merges: list[tuple[str, str]] = []
    for ch in string.ascii_lowercase + string.digits + ".,?!'":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault("Ġ" + ch, len(vocab))
    vocab.setdefault("Ġ", len(vocab))
    for ch in string.ascii_lowercase + string.digits + ".,?!'":
        merges.append(("Ġ", ch))
    for word in WORDS:
        for prefix in ("", "Ġ"):
            current = prefix + word[0]
            for ch in word[1:]:
                merges.append((current, ch))
                current += ch
                vocab.setdefault(current, len(vocab))
    unique_merges = list(dict.fromkeys(merges))
    return GPT2Tokenizer(
        vocab=vocab,
        merges=unique_merges,
        unk_token="<unk>",
        bos_token="</s>",
        eos_token="</s>",
        pad_token="<pad>",
        add_prefix_space=False,
    )


def bert_tokenizer() -> PreTrainedTokenizerBase:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *string.ascii_lowercase, *string.digits]
    tokens += ["##" + ch for ch in string.ascii_lowercase] + list(".,?!'")
    return BertTokenizer(vocab={t: i for i, t in enumerate(dict.fromkeys(tokens))}, do_lower_case=True)


def opt_model(num_labels: int, vocab_size: int, seed: int = 0) -> OPTForSequenceClassification:
    torch.manual_seed(seed)
    config = OPTConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        ffn_dim=32,
        num_attention_heads=2,
        max_position_embeddings=64,
        word_embed_proj_dim=16,
        num_labels=num_labels,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )
    return OPTForSequenceClassification(config).eval()


def bert_model(num_labels: int, vocab_size: int, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config).eval()


def write_tokenizer_repo(folder: Path, kind: str) -> Path:
    """A backbone repo holding only what tokenizers need: `config.json` + tokenizer files."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = opt_tokenizer() if kind == "opt" else bert_tokenizer()
    tokenizer.save_pretrained(folder)
    model_type = "opt" if kind == "opt" else "bert"
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def write_seed_predictor(
    folder: Path,
    kind: str,
    mtype: str = "rank",
    num_labels: int = 1,
    max_length: int = 48,
    seed: int = 0,
    pred_model: str | None = None,
) -> Path:
    """The seed layout exactly: usage_config.json (7 fields, stale path) + finetuned/ fp16 weights, no tokenizer."""
    tokenizer = opt_tokenizer() if kind == "opt" else bert_tokenizer()
    build = opt_model if kind == "opt" else bert_model
    model = build(num_labels, len(tokenizer), seed)
    (folder / "finetuned").mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(folder / "finetuned")
    usage = {
        "model": {
            "pred_model": pred_model or ("facebook/opt-125m" if kind == "opt" else "bert-base-uncased"),
            "num_labels": num_labels,
            "mtype": mtype,
            "activation": None,
            "path": f"MODEL/results/{folder.name}-b4-OURS/finetuned",
            "max_length": max_length,
            "max_batch_size": 1000,
        }
    }
    (folder / "usage_config.json").write_text(json.dumps(usage))
    return folder


SEED_ZOO = {
    "listMLE-opt125m": ("opt", "rank", 1),
    "classification-opt125m": ("opt", "class", 10),
    "PARS-bert": ("bert", "rank", 1),
    "A1-opt125m-margin": ("opt", "rank", 1),
    "A2-bert-nofilter": ("bert", "rank", 1),
}


def write_seed_zoo(root: Path) -> Path:
    """All five seed predictors, one folder each, with distinct random weights."""
    for seed, (name, (kind, mtype, num_labels)) in enumerate(SEED_ZOO.items()):
        write_seed_predictor(root / name, kind, mtype, num_labels, seed=seed)
    return root
