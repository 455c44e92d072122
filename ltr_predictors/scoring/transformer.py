"""Raw head outputs of a transformers sequence-classification predictor (OPT, BERT, MiniLM, ...).

Prompts are tokenized once, sorted by length so that each batch pads little, truncated to `max_length` keeping
the head of the prompt (as vllm-ltr does), and run under `torch.inference_mode`, in fp32 on CPU unless a device
or dtype is given. Weights load only from safetensors; remote code is never trusted.

With `chat_template` (instruct LM backbones, e.g. SmolLM2) each prompt is first written as one user turn of the
tokenizer's chat template with the generation prompt, so the score is read at the token where the answer would
start; an over-long prompt loses the tail of its content, never the template's end. Training encodes prompts
through the same `tokenize`, so training and scoring format alike.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..data.labeling import chat_texts
from ..errors import CheckpointError, CorruptCheckpointError, TokenizerError, UsageConfigError, WeightsConfigError
from ..loading.checkpoints import (
    CONFIG_NAME,
    TensorSpec,
    WeightsReport,
    check_finite,
    checkpoint_tensors,
    mistyped,
    read_model_config,
)
from ..predictor import DEFAULT_BATCH_SIZE

# A token is rarely longer than this many characters: text beyond it can never survive truncation.
MAX_CHARS_PER_TOKEN = 32
# Padded tokens per batch on a CPU, where a batch costs about its padded tokens: a long prompt then never pads
# many short ones. On an accelerator a batch costs mostly a fixed amount (kernel launches), so there only the prompt
# count bounds a batch (a 1,024-token budget cut the SmolLM2 ranker's batches to ~5 prompts on a GPU).
CPU_BATCH_TOKENS = 1024
# Off the CPU, a batch is padded up to a multiple of this many tokens (within `max_length`): a GPU then sees few
# distinct shapes, and each new shape costs it kernel selection and loading on first sight.
ACCELERATOR_PAD_MULTIPLE = 64


class TransformerScorer:
    """An `AutoModelForSequenceClassification` plus its tokenizer; `raw(prompts)` gives logits `(n, num_labels)`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int | None = None,
        chat_template: bool = False,
        pad_multiple: int | None = None,
    ) -> None:
        """`max_batch_tokens`: padded tokens per batch; None: `CPU_BATCH_TOKENS` while the model is on a CPU,
        else no budget beyond `batch_size` prompts. `pad_multiple`: batches padded up to a multiple of this many
        tokens; None: 1 on a CPU, else `ACCELERATOR_PAD_MULTIPLE`."""
        if chat_template and not getattr(tokenizer, "chat_template", None):
            raise UsageConfigError(f"chat_template is set, but tokenizer {tokenizer.name_or_path!r} has none")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.pad_multiple = pad_multiple
        if tokenizer.pad_token is None:  # OPT/GPT-2 style tokenizers may have none: batching needs one
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "right"
        limits = [max_length, getattr(model.config, "max_position_embeddings", None)]
        self.max_length = min(v for v in limits if isinstance(v, int) and v > 0)

    @classmethod
    def load(
        cls,
        weights_dir: Path,
        tokenizer_dir: Path,
        max_length: int,
        batch_size: int,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        chat_template: bool = False,
    ) -> TransformerScorer:
        """`dtype`: a torch dtype or its name (`bfloat16`); fp32 when None.

        Every parameter must come from the checkpoint, with its shape and kind of dtype, and be finite (see
        `checkpoints`); the tokenizer must have a vocabulary (`load_tokenizer`).
        """
        found = checkpoint_tensors(weights_dir)
        if read_model_config(weights_dir) is None:
            raise WeightsConfigError(f"{weights_dir / CONFIG_NAME}: missing (a transformers predictor needs it)")
        try:
            config = AutoConfig.from_pretrained(weights_dir, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise WeightsConfigError(f"{weights_dir / CONFIG_NAME}: transformers cannot read it ({exc})") from exc
        try:
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                weights_dir,
                config=config,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                ignore_mismatched_sizes=True,  # reported with the other problems below, not raised half-way
                output_loading_info=True,
                dtype=(getattr(torch, dtype) if isinstance(dtype, str) else dtype) or torch.float32,
            )
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{weights_dir}: transformers cannot build the model from it ({exc})") from exc
        _check_weights(model, loading, found, weights_dir)
        tokenizer = load_tokenizer(tokenizer_dir)
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, max_length=max_length, batch_size=batch_size, chat_template=chat_template)

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    def tokenize(self, prompts: list[str]) -> list[list[int]]:
        """Token ids per prompt, head kept, never empty (an empty prompt becomes one special token)."""
        head = [p[: self.max_length * MAX_CHARS_PER_TOKEN] for p in prompts]
        if self.chat_template:
            return self._templated_ids(head)
        ids: list[list[int]] = self.tokenizer(head, truncation=True, max_length=self.max_length)["input_ids"]
        fallback = next(
            t
            for t in (self.tokenizer.bos_token_id, self.tokenizer.cls_token_id, self.tokenizer.pad_token_id, 0)
            if t is not None
        )
        return [seq if seq else [fallback] for seq in ids]

    def _templated_ids(self, contents: list[str]) -> list[list[int]]:
        """Ids of each templated text (the template writes its own special tokens), at most `max_length`.

        A text over the limit has its content cut to its head by the overshoot and is templated again (a cut can
        merge tokens differently, hence the loop); a template longer than the limit on its own keeps its end.
        """
        encode = self.tokenizer
        ids: list[list[int]] = encode(chat_texts(encode, contents), add_special_tokens=False)["input_ids"]
        for index, content in enumerate(contents):
            for _ in range(8):
                excess = len(ids[index]) - self.max_length
                if excess <= 0 or not content:
                    break
                content_ids = encode(content, add_special_tokens=False)["input_ids"]
                content = str(encode.decode(content_ids[: max(len(content_ids) - excess, 0)]))
                ids[index] = encode(chat_texts(encode, [content])[0], add_special_tokens=False)["input_ids"]
            ids[index] = ids[index][-self.max_length :]
        return ids

    def _on_cpu(self) -> bool:
        """Whether the model is on a CPU now (training moves it)."""
        return next(self.model.parameters()).device.type == "cpu"

    def token_budget(self) -> int:
        """Padded tokens allowed per batch, for the device the model is on now."""
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        return CPU_BATCH_TOKENS if self._on_cpu() else self.batch_size * self.max_length

    def padded_length(self, longest: int) -> int:
        """The length a batch whose longest prompt has `longest` tokens is padded to, on the model's device now."""
        multiple = self.pad_multiple or (1 if self._on_cpu() else ACCELERATOR_PAD_MULTIPLE)
        return max(longest, min(-(-longest // multiple) * multiple, self.max_length))

    def batches(self, lengths: list[int]) -> list[np.ndarray]:
        """Indices grouped shortest first: at most `batch_size` prompts and `token_budget()` padded tokens each.

        Real prompt lengths have a long tail; on a CPU a fixed count would pad a few short prompts up to the
        longest one.
        """
        budget = self.token_budget()
        order = np.argsort(lengths, kind="stable")
        groups: list[np.ndarray] = []
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order) and end - start < self.batch_size and (end - start + 1) * lengths[order[end]] <= budget
            ):
                end += 1
            groups.append(order[start:end])
            start = end
        return groups

    def raw(self, prompts: list[str], progress: bool = False) -> np.ndarray:
        """Logits `(len(prompts), num_labels)` in input order."""
        ids = self.tokenize(prompts)
        out = np.zeros((len(prompts), self.num_labels), dtype=np.float64)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for idx in tqdm(
                self.batches([len(seq) for seq in ids]), desc="scoring", unit="batch", disable=not progress
            ):
                rows = [ids[i] for i in idx]
                length = self.padded_length(max(map(len, rows)))
                batch = self.tokenizer.pad(
                    {"input_ids": rows}, padding="max_length", max_length=length, return_tensors="pt"
                )
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                out[idx] = logits.float().cpu().numpy()
        return out

    def save(self, weights_dir: Path) -> None:
        """Weights as safetensors (fp32 unless loaded otherwise), config and tokenizer in one folder."""
        self.model.save_pretrained(weights_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(weights_dir)


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer in `folder`, refused when it cannot load or has no vocabulary beyond its special tokens (a
    folder with only `tokenizer_config.json` loads as one that maps every prompt to the same few ids)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # the tokenizers library raises bare `Exception` on a malformed tokenizer.json
        raise TokenizerError(f"{folder}: cannot load a tokenizer from it ({type(exc).__name__}: {exc})") from exc
    if not set(tokenizer.get_vocab().values()) - set(tokenizer.all_special_ids):
        raise TokenizerError(
            f"{folder}: the tokenizer has no vocabulary besides its special tokens, so every prompt would score "
            "alike; add its vocabulary (tokenizer.json, or vocab.txt / vocab.json + merges.txt)"
        )
    return tokenizer


def _check_weights(model: PreTrainedModel, loading: dict[str, Any], found: dict[str, TensorSpec], where: Path) -> None:
    """Refuse a model that its checkpoint does not fully give (transformers initialised the rest at random), or whose
    weights are not all finite."""
    if loading["error_msgs"]:
        raise CorruptCheckpointError(f"{where}: loading failed: {'; '.join(map(str, loading['error_msgs']))}")
    kinds = {name: _kind(tensor) for name, tensor in model.state_dict().items()}
    WeightsReport(
        missing=list(loading["missing_keys"]),
        unexpected=list(loading["unexpected_keys"]),
        misshapen=[
            f"{name}: checkpoint {tuple(got)}, model {tuple(want)}" for name, got, want in loading["mismatched_keys"]
        ],
        mistyped=mistyped(found, kinds),
    ).raise_if_any(where)
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    check_finite(where, [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())])


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_floating_point():
        return "float"
    return "bool" if tensor.dtype == torch.bool else "int"
