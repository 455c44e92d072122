"""`LTRPriorityMiddleware`: pure ASGI middleware for vLLM's OpenAI server that sets `X-Vllm-Priority`.

    LTR_PREDICTOR=default LTR_MAX_EXTRA_WAIT_S=30 python -m vllm.entrypoints.openai.api_server --model M \
        --scheduling-policy priority --middleware ltr_predictors.vllm.LTRPriorityMiddleware

For POSTs to `/v1/completions`, `/v1/chat/completions` and `/v1/responses` it reads the body, scores the prompt
text on the micro-batching worker thread (never on the event loop), adds the header and replays the body
untouched. vLLM lets the header override the body's `priority`. A request that already carries the header, other
routes and other methods pass through as they are. Malformed bodies, bodies without text, a full queue, predictor
errors and timeouts get the neutral priority and one log line: the server then answers exactly as it would have
without the middleware. Configuration comes from the environment (see `ltr_predictors.vllm.settings`); note that
vLLM adds `--middleware` outside its API-key check, so unauthenticated requests are scored too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, Protocol

from .batcher import BatcherFull, MicroBatcher
from .priority import LTRPriority
from .prompt_text import ROUTES, prompt_texts
from .settings import LOGGER_NAME, HookSettings, hook_logger

logger = logging.getLogger(LOGGER_NAME)

PRIORITY_HEADER = b"x-vllm-priority"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ScoresPrompts(Protocol):
    def score(self, prompts: Sequence[str]) -> Iterable[float]: ...


def quiet_scoring(scorer: ScoresPrompts) -> Callable[[list[str]], Iterable[float]]:
    """`scorer.score` without the progress bar a `LengthPredictor` shows for large batches (server logs)."""
    from ..predictor import LengthPredictor

    if isinstance(scorer, LengthPredictor):
        predictor = scorer
        return lambda texts: predictor.score(texts, progress=False)
    return scorer.score


def load_scorer(settings: HookSettings) -> ScoresPrompts:
    """The predictor named by `LTR_PREDICTOR`, on `LTR_DEVICE` in `LTR_DTYPE` (licenses accepted through
    `LTR_PREDICTORS_ACCEPT_LICENSES`)."""
    from ..predictor import LengthPredictor

    predictor = LengthPredictor.from_spec(
        settings.predictor, batch_size=settings.batch_size, device=settings.device, dtype=settings.dtype
    )
    logger.info("ltr-predictors: scoring with %r", predictor)
    return predictor


class LTRPriorityMiddleware:
    """ASGI middleware; `predictor`/`settings` are for tests and benchmarks (vLLM passes only `app`)."""

    def __init__(
        self, app: ASGIApp, *, predictor: ScoresPrompts | None = None, settings: HookSettings | None = None
    ) -> None:
        self.app = app
        hook_logger()
        self.settings = settings or HookSettings.from_env()
        scorer = predictor or load_scorer(self.settings)
        self.priority = LTRPriority(self.settings.max_extra_wait_s)
        self.batcher = MicroBatcher(
            quiet_scoring(scorer),
            max_batch=self.settings.batch_size,
            max_wait_ms=self.settings.batch_wait_ms,
            max_queue=self.settings.queue_size,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _wants_priority(scope):
            await self.app(scope, receive, send)
            return
        arrival = time.time()
        messages = await _read_body(receive)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        priority = await self._priority(scope["path"], body, arrival)
        headers = [*scope.get("headers", []), (PRIORITY_HEADER, str(priority).encode())]
        await self.app({**scope, "headers": headers}, _replay(messages, receive), send)

    async def _priority(self, path: str, body: bytes, arrival: float) -> int:
        try:
            texts = prompt_texts(path, json.loads(body))
        except (ValueError, UnicodeDecodeError):
            logger.warning("ltr-predictors: %s body is not JSON; neutral priority", path)
            return self.priority.neutral(arrival)
        if texts is None:
            logger.info("ltr-predictors: %s body has no prompt text to score; neutral priority", path)
            return self.priority.neutral(arrival)
        try:
            futures = [asyncio.wrap_future(self.batcher.submit(text)) for text in texts]
            scores = await asyncio.wait_for(asyncio.gather(*futures), self.settings.timeout_s)
        except BatcherFull as exc:
            logger.warning("ltr-predictors: %s; neutral priority", exc)
        except TimeoutError:
            logger.warning("ltr-predictors: no score within %.3g s; neutral priority", self.settings.timeout_s)
        except Exception as exc:  # a predictor failure must never fail the request
            logger.warning("ltr-predictors: predictor failed (%s: %s); neutral priority", type(exc).__name__, exc)
        else:
            return self.priority.priority(max(scores), arrival)
        return self.priority.neutral(arrival)


def _wants_priority(scope: Scope) -> bool:
    if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in ROUTES:
        return False
    return all(name.lower() != PRIORITY_HEADER for name, _ in scope.get("headers", []))


async def _read_body(receive: Receive) -> list[Message]:
    """Every message up to the end of the body (or a disconnect), to be replayed unchanged."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
