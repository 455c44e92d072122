"""`MicroBatcher`: score prompts in small batches on one worker thread, off any event loop.

Callers `submit(text)` and get a `concurrent.futures.Future` of the score. The worker takes the first waiting
prompt, gathers what else is waiting (and what arrives within `max_wait_ms`) up to `max_batch`, and scores them in
one call. By default it does not wait: under load, prompts queue up while a batch is scored, so batches form by
themselves, and at low load a window only adds its length to every request (5 ms against 0.8 ms of lexical scoring).
The queue is bounded: when it is full `submit` raises `BatcherFull` at once instead of piling up latency.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from ..errors import BatcherFull

ScoreFn = Callable[[list[str]], Iterable[float]]


class MicroBatcher:
    """A daemon thread scoring queued prompts in batches of at most `max_batch`."""

    def __init__(self, score: ScoreFn, *, max_batch: int = 32, max_wait_ms: float = 0.0, max_queue: int = 1024):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(
                f"need max_batch >= 1, max_queue >= 1, max_wait_ms >= 0; got {max_batch}, {max_queue}, {max_wait_ms}"
            )
        self._score = score
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.Queue[tuple[str, Future[float]]] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="ltr-micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, text: str) -> Future[float]:
        future: Future[float] = Future()
        try:
            self._queue.put_nowait((text, future))
        except queue.Full as exc:
            raise BatcherFull(f"scoring queue full ({self._queue.maxsize} prompts waiting)") from exc
        return future

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            live = [(text, future) for text, future in batch if future.set_running_or_notify_cancel()]
            if live:
                self._score_batch(live)

    def _score_batch(self, batch: list[tuple[str, Future[float]]]) -> None:
        try:
            scores = list(self._score([text for text, _ in batch]))
            if len(scores) != len(batch):
                raise ValueError(f"scorer returned {len(scores)} scores for {len(batch)} prompts")
        except Exception as exc:  # the predictor's failure belongs to each caller, not to the worker thread
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), score in zip(batch, scores, strict=True):
            future.set_result(float(score))
