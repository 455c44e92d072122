"""The lexical family: hashed word and character n-grams plus prompt-structure features, scored by a linear head.

A prompt becomes a sparse vector: word unigrams and bigrams (hashed with CRC-32), character 3- to 5-grams of the
lower-cased head of the prompt (a vectorised polynomial hash), each group L2-normalised, plus a few dense
structure features of the whole prompt (log length in characters, words and lines, share of digits, punctuation
and code-like characters). The head is one weight row per hashed feature and output, so the weights fit in a
safetensors file of about 1 MB and scoring runs thousands of prompts per second on one core with numpy alone.

Layout inside `finetuned/`: `model.safetensors` (`weight` `(dim, num_labels)` float32, `bias` `(num_labels,)`)
and `lexical_config.json` (the featurizer's settings). `usage_config.json`'s `max_length` is the number of
characters of the prompt's head that n-grams are taken from.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .errors import UsageConfigError

LEXICAL_CONFIG_NAME = "lexical_config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_MAX_CHARS = 2048
_WORD = re.compile(r"\w+|[^\w\s]")
_PRIME = np.uint64(1099511628211)
_DIGITS = "0123456789"
_CODE_CHARS = "{}()[];=<>_/\\`$#"


def structure_features(prompt: str) -> np.ndarray:
    """Dense features of the whole prompt, each roughly in [0, 1]: sizes on a log scale and character shares."""
    chars = len(prompt)
    words = len(prompt.split())
    lines = prompt.count("\n") + 1
    share = 1.0 / max(chars, 1)
    return np.array(
        [
            np.log1p(chars) / 10.0,
            np.log1p(words) / 8.0,
            np.log1p(lines) / 5.0,
            sum(map(prompt.count, _DIGITS)) * share,
            sum(map(prompt.count, _CODE_CHARS)) * share,
            prompt.count("?") / max(lines, 1),
            1.0,
        ],
        dtype=np.float32,
    )


NUM_STRUCTURE = len(structure_features(""))


@dataclass
class LexicalFeaturizer:
    """Settings of the hashing: `hash_dim` buckets for n-grams, then `NUM_STRUCTURE` dense slots.

    `edge_words` > 0 adds the first and last that many words tagged with their position (instructions say what
    they want at their start, and constraints such as "in one sentence" at their end).
    """

    hash_dim: int = 1 << 18
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    word_ngrams: tuple[int, ...] = (1, 2)
    max_chars: int = DEFAULT_MAX_CHARS
    edge_words: int = 0

    @property
    def dim(self) -> int:
        return self.hash_dim + NUM_STRUCTURE

    def features(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of one prompt's sparse vector; indices are unique."""
        head = prompt[: self.max_chars].lower()
        groups = [self._word_hashes(head), self._char_hashes(head), self._edge_hashes(prompt)]
        indices, values = [], []
        for hashes in groups:
            if len(hashes) == 0:
                continue
            unique, counts = np.unique(hashes % np.uint64(self.hash_dim), return_counts=True)
            weights = 1.0 + np.log(counts.astype(np.float32))
            indices.append(unique.astype(np.int64))
            values.append(weights / np.linalg.norm(weights))
        indices.append(np.arange(self.hash_dim, self.dim, dtype=np.int64))
        values.append(structure_features(prompt))
        all_idx = np.concatenate(indices)
        unique_idx, inverse = np.unique(all_idx, return_inverse=True)
        merged = np.zeros(len(unique_idx), dtype=np.float32)
        np.add.at(merged, inverse, np.concatenate(values).astype(np.float32))
        return unique_idx, merged

    def batch(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat `(indices, values, offsets)` of many prompts, the input of an `EmbeddingBag` or `reduceat`."""
        pairs = [self.features(p) for p in prompts]
        lengths = [len(idx) for idx, _ in pairs]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return (
            np.concatenate([idx for idx, _ in pairs]),
            np.concatenate([val for _, val in pairs]),
            offsets,
        )

    def _word_hashes(self, head: str) -> np.ndarray:
        words = _WORD.findall(head)
        grams = [
            f"{n}\x00" + "\x00".join(words[i : i + n]) for n in self.word_ngrams for i in range(len(words) - n + 1)
        ]
        return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))

    def _edge_hashes(self, prompt: str) -> np.ndarray:
        if self.edge_words <= 0:
            return np.zeros(0, dtype=np.uint64)
        words = _WORD.findall(prompt[: self.max_chars].lower())
        tail = _WORD.findall(prompt[-self.max_chars :].lower())
        tagged = [f"^{i}\x00{w}" for i, w in enumerate(words[: self.edge_words])]
        tagged += [f"${i}\x00{w}" for i, w in enumerate(reversed(tail[-self.edge_words :]))]
        return np.fromiter((zlib.crc32(t.encode()) for t in tagged), dtype=np.uint64, count=len(tagged))

    def _char_hashes(self, head: str) -> np.ndarray:
        data = np.frombuffer(head.encode("utf-8", "replace"), dtype=np.uint8).astype(np.uint64)
        parts = []
        with np.errstate(over="ignore"):
            for n in self.char_ngrams:
                if len(data) < n:
                    continue
                h = np.full(len(data) - n + 1, np.uint64(n) * np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
                for k in range(n):
                    h = (h ^ data[k : len(data) - n + 1 + k]) * _PRIME
                parts.append(h >> np.uint64(20))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["num_structure"] = NUM_STRUCTURE
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object], where: str) -> LexicalFeaturizer:
        if data.get("num_structure", NUM_STRUCTURE) != NUM_STRUCTURE:
            raise UsageConfigError(
                f"{where}: 'num_structure' is {data.get('num_structure')}, this version computes {NUM_STRUCTURE}"
            )
        try:
            return cls(
                hash_dim=int(data["hash_dim"]),  # type: ignore[call-overload]
                char_ngrams=tuple(int(n) for n in data["char_ngrams"]),  # type: ignore[attr-defined]
                word_ngrams=tuple(int(n) for n in data["word_ngrams"]),  # type: ignore[attr-defined]
                max_chars=int(data["max_chars"]),  # type: ignore[call-overload]
                edge_words=int(data.get("edge_words", 0)),  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageConfigError(f"{where}: bad lexical featurizer settings ({exc!r})") from exc


class LexicalScorer:
    """A `Scorer`: raw outputs `(n, num_labels)` = sparse features @ weight + bias, in numpy."""

    def __init__(
        self, featurizer: LexicalFeaturizer, weight: np.ndarray, bias: np.ndarray, batch_size: int = 512
    ) -> None:
        if weight.shape[0] != featurizer.dim or weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise UsageConfigError(
                f"lexical weights have shape {weight.shape} / bias {bias.shape}, "
                f"expected ({featurizer.dim}, num_labels) / (num_labels,)"
            )
        self.featurizer = featurizer
        self.weight = weight.astype(np.float32)
        self.bias = bias.astype(np.float32)
        self.batch_size = batch_size
        self.max_length = featurizer.max_chars

    @classmethod
    def load(cls, weights_dir: Path, max_length: int, batch_size: int) -> LexicalScorer:
        from safetensors.numpy import load_file

        config_path = Path(weights_dir) / LEXICAL_CONFIG_NAME
        if not config_path.is_file():
            raise UsageConfigError(f"{config_path}: missing (a lexical predictor needs its featurizer settings)")
        featurizer = LexicalFeaturizer.from_dict(json.loads(config_path.read_text(encoding="utf-8")), str(config_path))
        featurizer.max_chars = min(featurizer.max_chars, max_length)
        tensors = load_file(str(Path(weights_dir) / WEIGHTS_NAME))
        for name in ("weight", "bias"):
            if name not in tensors:
                raise UsageConfigError(f"{weights_dir / WEIGHTS_NAME}: missing tensor {name!r}")
        return cls(featurizer, tensors["weight"], tensors["bias"], batch_size=max(batch_size, 256))

    @property
    def num_labels(self) -> int:
        return int(self.weight.shape[1])

    def raw(self, prompts: list[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(prompts), self.num_labels), dtype=np.float64)
        starts = range(0, len(prompts), self.batch_size)
        for start in tqdm(starts, desc="scoring", unit="batch", disable=not progress):
            chunk = prompts[start : start + self.batch_size]
            indices, values, offsets = self.featurizer.batch(chunk)
            contributions = self.weight[indices] * values[:, None]
            out[start : start + len(chunk)] = np.add.reduceat(contributions, offsets, axis=0) + self.bias
        return out

    def save(self, weights_dir: Path) -> None:
        from safetensors.numpy import save_file

        weights_dir = Path(weights_dir)
        weights_dir.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight, "bias": self.bias}, str(weights_dir / WEIGHTS_NAME))
        (weights_dir / LEXICAL_CONFIG_NAME).write_text(
            json.dumps(self.featurizer.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
