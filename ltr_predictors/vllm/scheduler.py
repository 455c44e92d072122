"""vLLM scheduler classes that order waiting requests by predicted output length (imports vLLM).

    LTR_PREDICTOR=default python -m vllm.entrypoints.openai.api_server --model M \
        --scheduling-policy priority --scheduler-cls ltr_predictors.vllm.LTRAsyncScheduler

`LTRAsyncScheduler` extends vLLM's `AsyncScheduler` (the default engine path); `LTRSyncScheduler` extends
`Scheduler` for `--no-async-scheduling`. The overrides are thin: `add_request` keys the request under its own
`priority` (the client's, lower first: it stays the primary key), from the client's `vllm_xargs={"ltr_score": x}`
or as pending, and `schedule()` first runs `WaitingScorer.before_schedule`, which scores pending requests in one
batch from their detokenised prompt ids and re-keys them in the waiting queues. Configuration comes from the
environment (`ltr_predictors.vllm.settings`); this vLLM interface is not public, so the classes check the policy
at start-up, and re-key through the queues' heap (`scheduler_hook.rekey`) keeping it valid. Use these classes or
the middleware, not both: the middleware's header would be read here as the client's priority.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

from ..errors import SchedulingPolicyError
from .middleware import load_scorer, quiet_scoring
from .scheduler_hook import WaitingScorer
from .settings import LOGGER_NAME, HookSettings, hook_logger

logger = logging.getLogger(LOGGER_NAME)


class LTRSchedulerMixin:
    """Put before a vLLM scheduler class in the bases; needs `scheduling_policy="priority"`."""

    ltr: WaitingScorer
    requests: dict[str, Any]
    waiting: Any
    vllm_config: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        policy = str(self.vllm_config.scheduler_config.policy)
        if policy != "priority":
            raise SchedulingPolicyError(
                f"{type(self).__name__} orders requests through priorities; start vLLM with "
                f"--scheduling-policy priority (got {policy!r})"
            )
        hook_logger()
        settings = HookSettings.from_env()
        predictor = load_scorer(settings)
        self.ltr = WaitingScorer(settings, quiet_scoring(predictor), _detokenizer(self.vllm_config.model_config))

    def add_request(self, request: Any) -> None:
        if request.request_id not in self.requests:  # a streaming-input continuation keeps its priority
            self.ltr.on_add(request)
        super().add_request(request)  # type: ignore[misc]

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        self.ltr.before_schedule(self.waiting, getattr(self, "kv_holding_waiting", None))
        return super().schedule(*args, **kwargs)  # type: ignore[misc]


class LTRAsyncScheduler(LTRSchedulerMixin, AsyncScheduler):
    """The default: vLLM's async scheduler, admitting the shortest predicted request first."""


class LTRSyncScheduler(LTRSchedulerMixin, Scheduler):
    """For `--no-async-scheduling`."""


def _detokenizer(model_config: Any) -> Callable[[list[int]], str] | None:
    """The target model's tokenizer decode, or None (then every request keeps a neutral priority)."""
    if getattr(model_config, "skip_tokenizer_init", False):
        logger.warning("ltr-predictors: tokenizer init is skipped; only clients' ltr_score values order requests")
        return None
    from vllm.tokenizers import cached_tokenizer_from_config

    tokenizer = cached_tokenizer_from_config(model_config)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
