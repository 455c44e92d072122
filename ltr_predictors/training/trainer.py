"""Train a length predictor with one of the `losses` and write a folder `LengthPredictor.from_pretrained` loads.

The loop is the same for every backbone: shuffle the training prompts (one batch is one listMLE list), step AdamW
(optionally with warm-up and linear decay, gradient clipping and bf16 autocast, as LLM fine-tunes need), score the
validation prompts after each epoch and keep the weights of the best validation Kendall tau (the shipped
`evaluate` metric, as every other figure). Its settings are a `TrainingConfig`. Under one seed the run is
deterministic (shuffles, tie breaks and initialisation all come from it). The written folder holds vllm-ltr's
`usage_config.json`, our `ltr_config.json` (direction, buckets, license, the run's `Provenance`) and `finetuned/`
(safetensors weights; a transformers backbone's tokenizer too), or for an adapter its `adapter_config.json` and
`adapter_model.safetensors` (see `lora`).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.examples import Example
from ..errors import BackboneError, SettingError
from ..evaluation.metrics import kendall_tau
from ..loading.ltr_config import LORA, LTRConfig
from ..loading.usage_config import UsageConfig
from ..predictor import WEIGHTS_SUBDIR
from ..scoring.length_scores import length_scores
from .config import TrainingConfig
from .lora import save_adapter
from .losses import LossSpec
from .provenance import Provenance, TrainResult
from .trainables import Trainable


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return the generator that drives shuffles and tie breaks."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def scores_of(
    trainable: Trainable, encoded: list[Any], loss: LossSpec, batch_size: int = 256, autocast: str | None = None
) -> np.ndarray:
    """Length scores (higher = longer) of encoded prompts under the current weights (forward under `autocast`)."""
    trainable.module.eval()
    outputs = []
    with torch.inference_mode(), autocast_to(trainable, autocast):
        for start in range(0, len(encoded), batch_size):
            outputs.append(trainable.forward(encoded[start : start + batch_size]).float().cpu().numpy())
    raw = np.concatenate(outputs) if outputs else np.zeros((0, loss.num_labels))
    return length_scores(raw, loss.mtype, direction="higher_is_longer", buckets=loss.buckets)


def train(
    trainable: Trainable,
    train_set: list[Example],
    val_set: list[Example],
    loss: LossSpec,
    config: TrainingConfig,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Fit `trainable` in place with `loss` (built from `config` and the training lengths, see `Recipe.loss_spec`);
    its weights end at the best validation epoch (the last one without validation).

    The module is moved to `device` (cpu, cuda...) and stays there (`write_predictor` saves from the CPU).
    """
    if not train_set:
        raise SettingError("train_set is empty: no training examples (are all prompts in the val/test splits?)")
    trainable.module.to(device)
    generator = seed_everything(config.seed)
    started = time.monotonic()
    with autocast_to(trainable, config.autocast):  # encoding may run frozen layers (`FrozenPrefix`)
        encoded = trainable.encode([e.prompt for e in train_set])
        val_encoded = trainable.encode([e.prompt for e in val_set]) if val_set else []
    lengths = torch.tensor([e.length for e in train_set], dtype=torch.float32)
    val_lengths = [e.target if e.target is not None else e.length for e in val_set]
    optimizers = make_optimizers(trainable.module, config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    schedules = [lr_schedule(o, config, steps_per_epoch * config.epochs) for o in optimizers]
    clipped = dense_parameters(trainable.module) if config.max_grad_norm is not None else []
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-math.inf, config.epochs, None)
    bar = tqdm(total=steps_per_epoch * config.epochs, desc="training", unit="batch", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        trainable.module.train()
        order = torch.randperm(len(train_set), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            if _out_of_time(started, config.max_seconds):
                break
            index = order[start : start + config.batch_size]
            with autocast_to(trainable, config.autocast):
                outputs = trainable.forward([encoded[i] for i in index.tolist()])
            step_loss = loss(outputs.float(), lengths[index].to(outputs.device), generator)
            for optimizer in optimizers:
                optimizer.zero_grad()
            step_loss.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(clipped, config.max_grad_norm)
            for optimizer, schedule in zip(optimizers, schedules, strict=True):
                optimizer.step()
                schedule.step()
            total += step_loss.item()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{step_loss.item():.4f}")
        row = {"epoch": float(epoch), "train_loss": total / steps_per_epoch}
        if val_set:
            val_scores = scores_of(trainable, val_encoded, loss, autocast=config.autocast)
            row["val_kendall_tau"] = kendall_tau(val_scores, val_lengths)
            bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4f}", val_tau=f"{row['val_kendall_tau']:.4f}")
            if row["val_kendall_tau"] > best[0]:
                best = (row["val_kendall_tau"], epoch, copy.deepcopy(trainable.module.state_dict()))
        history.append(row)
        if _out_of_time(started, config.max_seconds):
            break
    bar.close()
    if best[2] is not None:
        trainable.module.load_state_dict(best[2])
    trainable.module.eval()
    return TrainResult(
        best_epoch=best[1] if best[2] is not None else len(history),
        val_kendall_tau=best[0] if best[2] is not None else float("nan"),
        history=history,
        seconds=time.monotonic() - started,
        train_examples=len(train_set),
        val_examples=len(val_set),
    )


def autocast_to(trainable: Trainable, dtype: str | None) -> torch.autocast:
    """`torch.autocast` on the module's device in `dtype` (a no-op context when `dtype` is None)."""
    device = next(trainable.module.parameters()).device
    return torch.autocast(device.type, dtype=getattr(torch, dtype) if dtype else None, enabled=dtype is not None)


def lr_schedule(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `config.warmup_steps`, then constant or linear decay to 0 at `total_steps`."""

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
        return warm * (max(0.0, 1.0 - step / total_steps) if config.lr_schedule == "linear" else 1.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _sparse_ids(module: torch.nn.Module) -> set[int]:
    return {
        id(m.weight) for m in module.modules() if isinstance(m, torch.nn.EmbeddingBag | torch.nn.Embedding) and m.sparse
    }


def dense_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Trained parameters with dense gradients (all but frozen ones and sparse embedding bags' weights)."""
    sparse = _sparse_ids(module)
    return [p for p in module.parameters() if p.requires_grad and id(p) not in sparse]


def make_optimizers(module: torch.nn.Module, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
    """AdamW for dense parameters; SparseAdam (lazy, no weight decay) for sparse-gradient embedding bags."""
    sparse_ids = _sparse_ids(module)
    dense = dense_parameters(module)
    sparse = [p for p in module.parameters() if id(p) in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = [torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay)]
    if sparse:
        optimizers.append(LazyAdam(sparse, lr=lr))
    return optimizers


class LazyAdam(torch.optim.Optimizer):
    """Adam that updates only the rows a sparse gradient touches (moments of other rows stay as they are).

    torch's `SparseAdam` masks whole moment tensors each step; indexing the touched rows is many times faster
    for hashed-feature heads with a few thousand active rows out of hundreds of thousands.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": 1e-8})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(param)
                    state["v"] = torch.zeros_like(param)
                state["step"] += 1
                m = state["m"][rows].mul_(beta1).add_(values, alpha=1 - beta1)
                v = state["v"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
                state["m"][rows], state["v"][rows] = m, v
                m_hat = m / (1 - beta1 ** state["step"])
                v_hat = v / (1 - beta2 ** state["step"])
                param[rows] -= group["lr"] * m_hat / (v_hat.sqrt() + group["eps"])


def _out_of_time(started: float, max_seconds: float | None) -> bool:
    return max_seconds is not None and time.monotonic() - started > max_seconds


def write_predictor(
    folder: str | Path,
    trainable: Trainable,
    loss: LossSpec,
    *,
    max_length: int,
    license_block: dict[str, Any],
    provenance: Provenance,
) -> Path:
    """Save the trained weights (moved to the CPU first) in the seed layout plus `ltr_config.json`; returns the folder.

    A transformers rank head is saved negated (`higher_is_shorter`, as vllm-ltr's scheduler expects: it runs the
    highest logit first), so the folder also schedules correctly in vllm-ltr; our loader reads the direction.
    An adapter is saved as its two files beside the configs, unnegated (vllm-ltr cannot load an adapter anyway), with
    its base recorded in `ltr_config.json`.
    """
    folder = Path(folder)
    trainable.module.to("cpu")
    flip = trainable.backend == "transformers" and loss.mtype == "rank" and trainable.base is None
    if trainable.base is not None:
        folder.mkdir(parents=True, exist_ok=True)
        save_adapter(trainable.module, folder, trainable.base)
    else:
        (folder / WEIGHTS_SUBDIR).mkdir(parents=True, exist_ok=True)
        if flip:
            _negate_head(trainable.module)
        try:
            trainable.scorer().save(folder / WEIGHTS_SUBDIR)
        finally:
            if flip:
                _negate_head(trainable.module)
    UsageConfig(
        pred_model=trainable.pred_model,
        num_labels=loss.num_labels,
        mtype=loss.mtype,
        path="" if trainable.base is not None else WEIGHTS_SUBDIR,
        max_length=max_length,
    ).save(folder)
    LTRConfig(
        backend=trainable.backend,
        score_direction="higher_is_shorter" if flip else "higher_is_longer",
        buckets=loss.buckets if loss.mtype == "class" else None,
        license=license_block,
        provenance=provenance.to_dict(),
        chat_template=trainable.chat_template,
        adapter=None if trainable.base is None else LORA,
        base=trainable.base,
    ).save(folder)
    return folder


def _negate_head(module: torch.nn.Module) -> None:
    """Negate the last one-output linear layer (BERT's `classifier`, OPT's `score`): the logit changes sign."""
    heads = [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    if not heads:
        raise BackboneError(f"{type(module).__name__}: no one-output linear head to negate")
    with torch.no_grad():
        for param in heads[-1].parameters():
            param.neg_()
