"""Fine-tune only the top K decoder layers of an LLM ranker, running the frozen layers below once per prompt.

Why: on a CPU the forward pass through all of SmolLM2's 30 layers is most of a fine-tune's cost. With the lower
layers frozen their output never changes, so `states` computes it once per prompt (before the first epoch) and every
training step runs only the top layers, the final norm and the head (`forward`). The saved predictor is the whole
model as usual: scoring runs all layers, and the frozen ones are the backbone's own.

Decoder models with the transformers layout (`model.layers`, `model.norm`, a `score` head: Llama, Qwen, Mistral...)
only; prompts are padded on the right, as `TransformerScorer` pads them, and read at their last token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ..errors import FrozenPrefixError
from ..scoring.transformer import TransformerScorer


class FrozenPrefix:
    """Runs `model`'s decoder split below its top `top_layers` layers; with `unfreeze`, freezes all of `model` but
    those layers, the final norm and the head (at construction). Without it the trainable parameters stay as they
    are: a LoRA adapter on the top layers only (see `lora.add_lora`) trains its own matrices and the head."""

    def __init__(
        self, model: PreTrainedModel, top_layers: int, scorer: TransformerScorer, unfreeze: bool = True
    ) -> None:
        """`scorer` (the model's own) groups prompts into batches of similar length, as it does for scoring."""
        decoder = getattr(model, "model", None)
        layers, norm, head = (
            getattr(decoder, "layers", None),
            getattr(decoder, "norm", None),
            getattr(model, "score", None),
        )
        if not (
            isinstance(decoder, torch.nn.Module)
            and isinstance(layers, torch.nn.ModuleList)
            and isinstance(norm, torch.nn.Module)
            and isinstance(head, torch.nn.Module)
        ):
            raise FrozenPrefixError(
                f"train_top_layers: {type(model).__name__} is not a decoder LM with `model.layers`, `model.norm` "
                "and a `score` head (Llama, Qwen, Mistral...); train it whole"
            )
        if not 0 < top_layers < len(layers):
            raise FrozenPrefixError(
                f"train_top_layers {top_layers}: the backbone has {len(layers)} decoder layers; "
                f"pick 1 to {len(layers) - 1}"
            )
        self.model, self.decoder, self.layers, self.norm, self.head = model, decoder, layers, norm, head
        self.scorer = scorer
        self.first_trained = len(layers) - top_layers
        if unfreeze:
            model.requires_grad_(False)
            for module in (*layers[self.first_trained :], norm, head):
                module.requires_grad_(True)

    @contextmanager
    def _running(self, layers: list[torch.nn.Module], norm: torch.nn.Module) -> Iterator[None]:
        """The decoder with only `layers` and `norm` in place (its embeddings, rotary positions and masks kept)."""
        self.decoder.layers, self.decoder.norm = torch.nn.ModuleList(layers), norm
        try:
            yield
        finally:
            self.decoder.layers, self.decoder.norm = self.layers, self.norm

    def states(self, ids: list[list[int]], progress: bool = True) -> list[torch.Tensor]:
        """Each prompt's hidden states after the frozen layers, `(tokens, hidden)` fp32 on the CPU, input order."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        device = next(self.model.parameters()).device
        frozen = list(self.layers[: self.first_trained])
        with torch.no_grad(), self._running(frozen, torch.nn.Identity()):
            for index in tqdm(self.scorer.batches([len(i) for i in ids]), desc="frozen layers", disable=not progress):
                batch = self.scorer.tokenizer.pad({"input_ids": [ids[i] for i in index]}, return_tensors="pt")
                hidden = self.decoder(**{k: v.to(device) for k, v in batch.items()}, use_cache=False).last_hidden_state
                for row, i in enumerate(index.tolist()):
                    out[i] = hidden[row, : len(ids[i])].float().cpu()
        return out

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Head outputs `(n, num_labels)` from `states`, input order, in groups of similar length (a training batch
        is drawn at random: padded to its longest prompt it would cost a CPU about 2.5 times its real tokens)."""
        groups = self.scorer.batches([len(s) for s in states])
        outputs = torch.cat([self._top([states[i] for i in index.tolist()]) for index in groups])
        order = torch.from_numpy(np.argsort(np.concatenate(groups), kind="stable")).to(outputs.device)
        return outputs[order]

    def _top(self, states: list[torch.Tensor]) -> torch.Tensor:
        """The trained layers, final norm and head, read at each prompt's last token."""
        device = next(self.model.parameters()).device
        lengths = torch.tensor([len(s) for s in states], device=device)
        embeds = pad_sequence(states, batch_first=True).to(device)
        mask = (torch.arange(embeds.shape[1], device=device)[None, :] < lengths[:, None]).long()
        with self._running(list(self.layers[self.first_trained :]), self.norm):
            hidden = self.decoder(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
        last: torch.Tensor = hidden[torch.arange(len(states), device=device), lengths - 1]
        scores: torch.Tensor = self.head(last)
        return scores
