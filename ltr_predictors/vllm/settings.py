"""Configuration of the vLLM hooks from environment variables (vLLM builds middleware and schedulers with no
arguments, so the environment is the only channel).

| variable | meaning | default |
|---|---|---|
| `LTR_PREDICTOR` | predictor spec for `LengthPredictor.from_spec` | `default` |
| `LTR_DEVICE` | torch device of a transformer predictor, e.g. `cuda:0` | CPU |
| `LTR_DTYPE` | its weights' dtype: `float32`, `bfloat16`, `float16` | `float32` |
| `LTR_MAX_EXTRA_WAIT_S` | bounded wait W in seconds; unset or empty = pure SJF | unset |
| `LTR_PREDICTORS_ACCEPT_LICENSES` | licenses accepted for restrictive weights (read by the loader) | unset |
| `LTR_BATCH_SIZE` | most prompts scored in one call | 32 |
| `LTR_BATCH_WAIT_MS` | how long the middleware waits for more prompts to batch | 0 |
| `LTR_QUEUE_SIZE` | most prompts waiting to be scored (middleware) | 1024 |
| `LTR_TIMEOUT_S` | longest a request waits for its score before a neutral priority (middleware) | 2 |
| `LTR_MAX_BODY_BYTES` | middleware: larger bodies pass through unscored and untouched | 16 MiB |
| `LTR_STARVATION_STEPS` | scheduler: promote a request still waiting after this many `schedule()` calls | unset |
| `LTR_MAX_SCORE_PER_STEP` | scheduler: most unscored requests scored in one `schedule()` call | 1024 |
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TypeVar

from ..errors import HookConfigError
from ..predictor import DTYPES

T = TypeVar("T", int, float)
LOGGER_NAME = "ltr_predictors.vllm"


def hook_logger() -> logging.Logger:
    """The hooks' logger; inside a vLLM process with no logging set up, its INFO lines go to stderr."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(asctime)s [%(name)s] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger


@dataclass(frozen=True)
class HookSettings:
    predictor: str = "default"
    device: str | None = None
    dtype: str | None = None
    max_extra_wait_s: float | None = None
    batch_size: int = 32
    batch_wait_ms: float = 0.0  # see MicroBatcher: a window helps only GPU predictors at moderate load
    queue_size: int = 1024
    timeout_s: float = 2.0
    max_body_bytes: int = 16 * 2**20
    starvation_steps: int | None = None
    max_score_per_step: int = 1024

    @classmethod
    def from_env(cls) -> HookSettings:
        return cls(
            predictor=os.environ.get("LTR_PREDICTOR") or "default",
            device=os.environ.get("LTR_DEVICE", "").strip() or None,
            dtype=_choice("LTR_DTYPE", DTYPES),
            max_extra_wait_s=_optional("LTR_MAX_EXTRA_WAIT_S", float),
            batch_size=_number("LTR_BATCH_SIZE", int, cls.batch_size, minimum=1),
            batch_wait_ms=_number("LTR_BATCH_WAIT_MS", float, cls.batch_wait_ms, minimum=0),
            queue_size=_number("LTR_QUEUE_SIZE", int, cls.queue_size, minimum=1),
            timeout_s=_number("LTR_TIMEOUT_S", float, cls.timeout_s, minimum=0),
            max_body_bytes=_number("LTR_MAX_BODY_BYTES", int, cls.max_body_bytes, minimum=0),
            starvation_steps=_optional("LTR_STARVATION_STEPS", int),
            max_score_per_step=_number("LTR_MAX_SCORE_PER_STEP", int, cls.max_score_per_step, minimum=1),
        )


def _choice(name: str, choices: tuple[str, ...]) -> str | None:
    raw = os.environ.get(name, "").strip()
    if raw and raw not in choices:
        raise HookConfigError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw or None


def _number(name: str, kind: type[T], default: T, minimum: float) -> T:
    value = _optional(name, kind)
    if value is None:
        return default
    if value < minimum:
        raise HookConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _optional(name: str, kind: type[T]) -> T | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError as exc:
        raise HookConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc
    if value < 0:
        raise HookConfigError(f"{name}={raw!r} must not be negative")
    return value
