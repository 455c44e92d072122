"""`LTRPriorityMiddleware`: pure ASGI middleware for vLLM's OpenAI server that sets `X-Vllm-Priority`.

    LTR_PREDICTOR=default LTR_MAX_EXTRA_WAIT_S=30 python -m vllm.entrypoints.openai.api_server --model M \
        --scheduling-policy priority --middleware ltr_predictors.vllm.LTRPriorityMiddleware

For POSTs to `/v1/completions`, `/v1/chat/completions` and `/v1/responses` it reads the body, scores the prompt
text on the micro-batching worker (never on the event loop), adds the header and replays the body untouched.
vLLM lets the header override the body's `priority`, so the header carries it: the body's `priority` (lower
first, default 0) stays the primary key and the predicted length orders requests of equal priority (key layout:
`ltr_predictors.vllm.priority`). A request that already carries the header, other routes and other methods pass
through as they are.

It never changes vLLM's answer. A body it cannot read (larger than `LTR_MAX_BODY_BYTES`, not UTF-8 JSON, nested too
deep, not an object, a `priority` that is not an int64) passes through untouched and without the header, so the
server answers exactly as it would without the middleware (such a request keeps its own `priority` as its key,
which sorts ahead of the predicted keys of its priority). A body without text to score, a full or stalled queue,
a prompt the predictor fails on and a timeout get the neutral priority of the client's `priority`; every fallback
logs one line. Configuration comes from the environment (see `ltr_predictors.vllm.settings`); note that vLLM adds
`--middleware` outside its API-key check, so unauthenticated requests are scored too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from ..errors import BatcherFull, BatcherStalled
from .batcher import MicroBatcher, failure_reason
from .priority import LTRPriority
from .prompt_text import ROUTES, prompt_texts
from .settings import LOGGER_NAME, HookSettings, hook_logger

logger = logging.getLogger(LOGGER_NAME)

PRIORITY_HEADER = b"x-vllm-priority"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
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
        messages, body = await _read_body(receive, self.settings.max_body_bytes)
        priority = None if body is None else await self._priority(scope["path"], body, arrival)
        if body is None:
            logger.warning(
                "ltr-predictors: %s body over %d bytes or cut short; passed through untouched",
                scope["path"], self.settings.max_body_bytes,
            )  # fmt: skip
        headers = list(scope.get("headers", []))
        if priority is not None:
            headers.append((PRIORITY_HEADER, str(priority).encode()))
        await self.app({**scope, "headers": headers}, _replay(messages, receive), send)

    async def _priority(self, path: str, body: bytes, arrival: float) -> int | None:
        """The header value for this body, or None: pass the request through untouched."""
        try:
            return await self._body_priority(path, body, arrival)
        except Exception as exc:  # the middleware's own failure must never change the server's answer
            logger.warning(
                "ltr-predictors: %s: no priority (%s: %s); passed through untouched", path, type(exc).__name__, exc
            )
            return None

    async def _body_priority(self, path: str, body: bytes, arrival: float) -> int | None:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
            logger.warning(
                "ltr-predictors: %s body is not JSON (%s); passed through untouched", path, type(exc).__name__
            )
            return None
        if not isinstance(parsed, dict):
            logger.warning("ltr-predictors: %s body is not a JSON object; passed through untouched", path)
            return None
        client = parsed.get("priority", 0)
        if type(client) is not int or not INT64_MIN <= client <= INT64_MAX:  # vLLM validates it, not us
            logger.warning("ltr-predictors: %s 'priority' is not an int64; passed through untouched", path)
            return None
        texts = prompt_texts(path, parsed)
        if texts is None:
            logger.info("ltr-predictors: %s body has no prompt text to score; neutral priority", path)
            return self.priority.neutral(arrival, client)
        scores = await self._scores(texts)
        if scores is None:
            return self.priority.neutral(arrival, client)
        return self.priority.priority(max(scores), arrival, client)

    async def _scores(self, texts: list[str]) -> list[float] | None:
        """One score per text, or None (logged) when any of them cannot be had in time."""
        timeout = self.settings.timeout_s
        futures: list[Future[float]] = []
        try:
            for text in texts:
                futures.append(self.batcher.submit(text, timeout))
            results = await asyncio.wait_for(
                asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True), timeout
            )
        except (BatcherFull, BatcherStalled) as exc:
            logger.warning("ltr-predictors: %s; neutral priority", exc)
            return None
        except TimeoutError:
            logger.warning("ltr-predictors: no score within %.3g s; neutral priority", timeout)
            return None
        finally:
            for future in futures:
                future.cancel()  # a prompt nobody waits for any more is dropped before scoring
        scores: list[float] = []
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                logger.warning(
                    "ltr-predictors: prompt %d of %d failed to score (%s); neutral priority",
                    index, len(texts), failure_reason(result),
                )  # fmt: skip
                return None
            scores.append(result)
        return scores


def _wants_priority(scope: Scope) -> bool:
    if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in ROUTES:
        return False
    return all(name.lower() != PRIORITY_HEADER for name, _ in scope.get("headers", []))


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The messages read, to be replayed unchanged, and the whole body; None when it is over `limit` bytes (reading
    stops there) or the client disconnected."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
