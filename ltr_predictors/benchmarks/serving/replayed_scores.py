"""Scores computed elsewhere, replayed by prompt: `ltr-predictors score` output read back for `bench --scores`.

A predictor too slow for the machine that serves (an LLM ranker on a CPU-only host) can still be benchmarked
there: score the trace's prompts where the predictor runs (`ltr-predictors score --device cuda`), then replay
the scores. Rows are matched by the SHA-1 of the prompt text (`prompt_sha1`, which `score` writes), so the file
holds no prompt text. Looking a score up costs nothing, so a benchmark using replayed scores leaves the
predictor's scoring time out and says so, unless given a `ScoringTime`: the time that predictor was measured to
take per batch where it runs, which each lookup then waits for (a scorer on its own accelerator, fed batches
by the same micro-batching worker as a live predictor, so a burst queues behind it as it would there).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.traces import iter_rows
from ...errors import ScoreTableError, SettingError, TraceFormatError


def prompt_sha1(prompt: str) -> str:
    """The key a prompt's score is stored under (hex SHA-1 of its UTF-8 text)."""
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ScoringTime:
    """What scoring a batch of n prompts costs where the predictor runs: `per_batch_ms + n * per_prompt_ms`."""

    per_batch_ms: float
    per_prompt_ms: float

    def __post_init__(self) -> None:
        for name in ("per_batch_ms", "per_prompt_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise SettingError(f"scoring time: {name} must be a finite number >= 0, got {value!r}")

    def seconds(self, prompts: int) -> float:
        return (self.per_batch_ms + prompts * self.per_prompt_ms) / 1000.0

    def __str__(self) -> str:
        return f"{self.per_batch_ms:g} ms per batch + {self.per_prompt_ms:g} ms per prompt"


@dataclass(frozen=True)
class ReplayedScores:
    """Scores (higher = longer) by prompt SHA-1, read from a `score` output file (JSONL, `.gz` welcome), each
    lookup taking `scoring_time` when one is given."""

    path: Path
    table: dict[str, float]
    scoring_time: ScoringTime | None = None

    @classmethod
    def from_file(cls, path: str | Path, scoring_time: ScoringTime | None = None) -> ReplayedScores:
        path = Path(path)
        table: dict[str, float] = {}
        try:
            for number, row in iter_rows(path):
                key, score = row.get("prompt_sha1"), row.get("score")
                if not isinstance(key, str) or len(key) != 40:
                    raise ScoreTableError(
                        f"{path}:{number}: missing 40-character 'prompt_sha1' (write the file with `score`)"
                    )
                if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
                    raise ScoreTableError(f"{path}:{number}: 'score' must be a finite number, got {score!r}")
                table[key] = float(score)
        except TraceFormatError as exc:
            raise ScoreTableError(str(exc)) from exc
        if not table:
            raise ScoreTableError(f"{path}: no scores")
        return cls(path, table, scoring_time)

    @property
    def name(self) -> str:
        timing = f"scoring time emulated: {self.scoring_time}" if self.scoring_time else "scoring time not included"
        return f"scores replayed from {self.path.name} ({timing})"

    def score(self, prompts: Sequence[str], progress: bool = False) -> np.ndarray:
        """The stored score of each prompt, after `scoring_time` for this batch; every prompt must have one."""
        scores = self.lookup(prompts)
        if self.scoring_time is not None:
            time.sleep(self.scoring_time.seconds(len(prompts)))
        return scores

    def lookup(self, prompts: Sequence[str]) -> np.ndarray:
        """The stored score of each prompt, at once; every prompt must have one."""
        keys = [prompt_sha1(p) for p in prompts]
        missing = [k for k in keys if k not in self.table]
        if missing:
            raise ScoreTableError(
                f"{self.path}: no score for {len(missing)} of {len(prompts)} prompts (first: prompt_sha1 {missing[0]});"
                " score the same prompts with `ltr-predictors score`"
            )
        return np.array([self.table[k] for k in keys], dtype=np.float64)
