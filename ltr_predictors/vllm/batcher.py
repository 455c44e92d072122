"""`MicroBatcher`: score prompts in small batches on a worker thread, off any event loop.

Callers `submit(text, timeout_s)` and get a `concurrent.futures.Future` of the score. The worker takes the first
waiting prompt, gathers what else is waiting (and what arrives within `max_wait_ms`) up to `max_batch`, and scores
them in one call. By default it does not wait: under load, prompts queue up while a batch is scored, so batches
form by themselves, and at low load a window only adds its length to every request (5 ms against 0.8 ms of lexical
scoring).

Failing closed, per prompt and per caller:
- the queue is bounded: when it is full `submit` raises `BatcherFull` at once instead of piling up latency;
- one bad prompt fails only itself (`score_each`): its future gets a `PromptScoringError`, its batch neighbours
  their scores;
- a prompt whose caller stopped waiting (timed out or cancelled) is dropped before scoring;
- a batch still scoring after every one of its callers timed out does not hold the prompts behind it: they fail
  at once with `BatcherStalled` (and so do new ones) until it returns, so callers answer neutrally without
  waiting their full timeout.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..errors import BatcherFull, BatcherStalled, PromptScoringError

ScoreFn = Callable[[list[str]], Iterable[float]]


def score_each(score: ScoreFn, texts: Sequence[str]) -> list[float | PromptScoringError]:
    """Score `texts` in one call; when the call fails, split the batch in halves until every failure is pinned to
    its own prompt. A lone bad prompt costs about 2 log2(n) extra calls and never fails its neighbours; a predictor
    failing on every prompt costs 2n - 1 calls. Non-finite scores are failures of their prompt."""
    results: list[float | PromptScoringError] = []
    _score_into(score, list(texts), 0, results)
    return results


def _score_into(score: ScoreFn, texts: list[str], start: int, results: list[float | PromptScoringError]) -> None:
    try:
        scores = [float(s) for s in score(texts)]
        if len(scores) != len(texts):
            raise ValueError(f"the predictor returned {len(scores)} scores for {len(texts)} prompts")
    except Exception as exc:  # the predictor's failure belongs to the prompt that caused it
        if len(texts) > 1:
            half = len(texts) // 2
            _score_into(score, texts[:half], start, results)
            _score_into(score, texts[half:], start + half, results)
            return
        error = PromptScoringError(start, f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        results.append(error)
        return
    for index, value in enumerate(scores, start):
        results.append(value if math.isfinite(value) else PromptScoringError(index, f"score is {value}"))


def failure_reason(error: BaseException) -> str:
    """`Type: message` of the exception behind a scoring failure (the predictor's own under a
    `PromptScoringError`)."""
    cause = error.__cause__ if isinstance(error, PromptScoringError) and error.__cause__ is not None else error
    return f"{type(cause).__name__}: {cause}"


@dataclass
class _Job:
    text: str
    future: Future[float]
    deadline: float  # time.monotonic() after which the caller no longer waits; inf = never


@dataclass
class _Batch:
    jobs: list[_Job]
    done: threading.Event = field(default_factory=threading.Event)


class MicroBatcher:
    """Two daemon threads: one forms batches of at most `max_batch` and watches their deadlines, one scores them."""

    def __init__(self, score: ScoreFn, *, max_batch: int = 32, max_wait_ms: float = 0.0, max_queue: int = 1024):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(
                f"need max_batch >= 1, max_queue >= 1, max_wait_ms >= 0; got {max_batch}, {max_queue}, {max_wait_ms}"
            )
        self._score = score
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=max_queue)
        self._batches: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
        self._stalled = threading.Event()
        threading.Thread(target=self._gather, name="ltr-micro-batcher", daemon=True).start()
        threading.Thread(target=self._score_batches, name="ltr-micro-batcher-score", daemon=True).start()

    def submit(self, text: str, timeout_s: float | None = None) -> Future[float]:
        """Queue `text`; `timeout_s` is how long the caller will wait for its score (None: as long as it takes)."""
        if self._stalled.is_set():
            raise _stalled()
        job = _Job(text, Future(), math.inf if timeout_s is None else time.monotonic() + timeout_s)
        try:
            self._queue.put_nowait(job)
        except queue.Full as exc:
            raise BatcherFull(f"scoring queue full ({self._queue.maxsize} prompts waiting)") from exc
        return job.future

    def _gather(self) -> None:
        while True:
            jobs = self._next_batch()
            if not jobs:
                continue
            batch = _Batch(jobs)
            self._batches.put(batch)
            wait_s = max(job.deadline for job in jobs) - time.monotonic()
            if batch.done.wait(None if wait_s == math.inf else max(wait_s, 0.0)):
                continue
            self._stalled.set()  # first, so that nothing queues behind the batch while the queue drains
            self._fail_queued()
            batch.done.wait()
            self._stalled.clear()

    def _next_batch(self) -> list[_Job]:
        """The next jobs whose callers still wait, marked as running (the others are dropped unscored)."""
        jobs = [self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                jobs.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        now = time.monotonic()
        for job in jobs:
            if now > job.deadline:
                job.future.cancel()
        return [job for job in jobs if job.future.set_running_or_notify_cancel()]

    def _score_batches(self) -> None:
        while True:
            batch = self._batches.get()
            try:
                results = score_each(self._score, [job.text for job in batch.jobs])
                for job, result in zip(batch.jobs, results, strict=True):
                    if isinstance(result, PromptScoringError):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
            finally:
                batch.done.set()

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(_stalled())


def _stalled() -> BatcherStalled:
    return BatcherStalled("the scoring worker is still busy with a batch whose callers all timed out")
