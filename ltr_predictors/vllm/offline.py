"""`generate`: offline `LLM.generate` with priorities from a length predictor (shortest predicted first).

    llm = LLM(model=..., scheduling_policy="priority")
    outs = ltr.generate(llm, prompts, SamplingParams(...), predictor=p, max_extra_wait_s=30)

All prompts are scored in one batch before submission. vLLM silently ignores priorities under its default
`fcfs` policy, so an engine that is not under `priority` is refused with `SchedulingPolicyError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import PromptTextError, SchedulingPolicyError
from .middleware import ScoresPrompts
from .priority import LTRPriority


def engine_policy(llm: Any) -> str:
    """The scheduling policy of an `LLM` (`fcfs` or `priority`)."""
    try:
        return str(llm.llm_engine.vllm_config.scheduler_config.policy)
    except AttributeError as exc:
        raise SchedulingPolicyError(
            f"cannot read the scheduling policy of {type(llm).__name__} (expected llm.llm_engine.vllm_config)"
        ) from exc


def require_priority_policy(llm: Any) -> None:
    policy = engine_policy(llm)
    if policy != "priority":
        raise SchedulingPolicyError(
            f"the engine's scheduling policy is {policy!r}; vLLM ignores priorities unless it is 'priority'. "
            'Build it with LLM(..., scheduling_policy="priority") (server: --scheduling-policy priority).'
        )


def generate(
    llm: Any,
    prompts: Sequence[str | dict[str, Any]],
    sampling_params: Any = None,
    *,
    predictor: ScoresPrompts,
    max_extra_wait_s: float | None = None,
    priority: LTRPriority | None = None,
    client_priority: Sequence[int] | int = 0,
    **kwargs: Any,
) -> list[Any]:
    """`llm.generate` with one predicted priority per prompt; `RequestOutput`s come back in input order.

    `priority` lets several calls share one `LTRPriority` (its window and epoch); otherwise a new one is built
    with `max_extra_wait_s` (None = pure shortest-predicted-first). `client_priority` (one for all or one per
    prompt; vLLM's `priority`, lower first) stays the primary key: the predicted length orders prompts of equal
    client priority. Extra kwargs go to `llm.generate`.
    """
    require_priority_policy(llm)
    prompt_list = list(prompts)
    mapper = priority or LTRPriority(max_extra_wait_s)
    scores = predictor.score([_text(p, i) for i, p in enumerate(prompt_list)]) if prompt_list else []
    priorities = mapper.priorities([float(s) for s in scores], None, client_priority)
    return list(llm.generate(prompt_list, sampling_params, priority=priorities, **kwargs))


def _text(prompt: str | dict[str, Any], index: int) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict) and isinstance(prompt.get("prompt"), str):
        return prompt["prompt"]
    raise PromptTextError(f"prompts[{index}] has no text to score (a str or a dict with a 'prompt' string)")
