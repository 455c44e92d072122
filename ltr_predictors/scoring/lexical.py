"""The lexical family: hashed word and character n-grams plus prompt-structure features, scored by a linear head.

A prompt becomes a sparse vector: word unigrams and bigrams (hashed with CRC-32), character 3- to 5-grams of the
lower-cased head of the prompt (a vectorised polynomial hash), each group L2-normalised, plus a few dense
structure features of the whole prompt (log length in characters, words and lines, share of digits, punctuation
and code-like characters). The head is one weight row per hashed feature and output, so the weights fit in a
safetensors file of about 1 MB and scoring runs thousands of prompts per second on one core with numpy alone.

`LexicalFeaturizer.batch` featurizes a whole batch at once with the numpy kernels of `_lexical_kernels` (character
classes, token spans, CRC-32 of many spans, a per-thread arena), then sorts each prompt's bucket keys once to count
them. The features are the same, bit for bit, as the per-prompt reference in `tests/test_lexical.py`. Batches are
cut at `_CHUNK_CHARS` head characters, which bounds the arena at about 20 MB for text of one-byte characters (about
50 MB for Chinese). A batch costs about 0.06 ms of CPU a prompt; one prompt alone about 0.5 ms.

Layout inside `finetuned/`: `model.safetensors` (`weight` `(dim, num_labels)` float32, `bias` `(num_labels,)`)
and `lexical_config.json` (the featurizer's settings). `usage_config.json`'s `max_length` is the number of
characters of the prompt's head that n-grams are taken from.
"""

from __future__ import annotations

import itertools
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import IncompleteWeightsError, UsageConfigError
from ..loading._json_files import read_json
from ..loading.checkpoints import check_finite, checkpoint_tensors, compare
from ._lexical_kernels import (
    ARENA,
    WORD,
    crc_shift,
    crc_spans,
    segment_starts,
    text_classes,
    text_counts,
    token_spans,
    without,
)

LEXICAL_CONFIG_NAME = "lexical_config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_MAX_CHARS = 2048
NUM_STRUCTURE = 7
_PRIME = np.uint64(1099511628211)
_GOLDEN = 0x9E3779B97F4A7C15
# n-gram groups, each L2-normalised on its own: a prompt's key for a bucket of a group is `bucket << 2 | group`
_WORD_GROUP, _CHAR_GROUP, _EDGE_GROUP = 0, 1, 2  # 3: the structure features' keys
_CHUNK_CHARS = 1 << 17  # head characters featurized together: bounds the memory kept for reuse (`ARENA`)
_ARENA_PER_CHAR = 128  # about what a batch takes from the arena per head character
MAX_NGRAM = 8  # longest n-gram order a lexical_config.json may ask for


def structure_features(prompts: list[str], counts: np.ndarray | None = None) -> np.ndarray:
    """Dense features `(len(prompts), NUM_STRUCTURE)` of whole prompts, each roughly in [0, 1]: sizes on a log
    scale (characters, whitespace-separated words, lines), shares of digits and code characters, "?" per line.
    `counts`: the prompts' `text_counts`, when known."""
    chars = np.fromiter(map(len, prompts), dtype=np.int64, count=len(prompts))
    if counts is None:
        counts = text_counts(*text_classes(prompts))
    words, digits, code, questions, newlines = counts.T
    lines = newlines + 1
    share = 1.0 / np.maximum(chars, 1)
    features = np.empty((len(prompts), NUM_STRUCTURE), dtype=np.float64)
    features[:, 0] = np.log1p(chars.astype(np.float64)) / 10.0
    features[:, 1] = np.log1p(words.astype(np.float64)) / 8.0
    features[:, 2] = np.log1p(lines.astype(np.float64)) / 5.0
    features[:, 3] = digits * share
    features[:, 4] = code * share
    features[:, 5] = questions / lines
    features[:, 6] = 1.0
    return features.astype(np.float32)


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
        """(indices, values) of one prompt's sparse vector; indices are unique and ascending."""
        indices, values, _ = self.batch([prompt])
        return indices, values

    def batch(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat `(indices, values, offsets)` of many prompts, the input of an `EmbeddingBag` or `reduceat`.

        A prompt's vector: for each n-gram group (words, characters, edge words), the buckets `hash % hash_dim`
        it hits, weighted `1 + log(count)` and L2-normalised within the group, summed where groups share a
        bucket; then the `NUM_STRUCTURE` structure features. Indices ascend within a prompt.
        """
        parts = [tuple(a.copy() for a in self._arena_batch(chunk)) for chunk in self._chunks(prompts)]
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        shifts = segment_starts(np.array([len(indices) for indices, _, _ in parts]))
        return (
            np.concatenate([indices for indices, _, _ in parts]),
            np.concatenate([values for _, values, _ in parts]),
            np.concatenate([offsets + shift for (_, _, offsets), shift in zip(parts, shifts[:-1], strict=True)]),
        )

    def _chunks(self, prompts: list[str]) -> list[list[str]]:
        """`prompts` cut into runs of at most `_CHUNK_CHARS` head characters (and at least one prompt)."""
        ends = np.cumsum(np.minimum(np.fromiter(map(len, prompts), dtype=np.int64, count=len(prompts)), self.max_chars))
        cuts = [0]
        while cuts[-1] < len(prompts):
            limit = (ends[cuts[-1] - 1] if cuts[-1] else 0) + _CHUNK_CHARS
            cuts.append(max(int(np.searchsorted(ends, limit, side="right")), cuts[-1] + 1))
        return [prompts[a:b] for a, b in itertools.pairwise(cuts)]

    def _arena_batch(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`batch` of a non-empty chunk, in this thread's arena: valid until its next call."""
        ARENA.reset(_ARENA_PER_CHAR * min(_CHUNK_CHARS, sum(min(len(p), self.max_chars) for p in prompts)))
        keys, bounds, structure = self._keys(prompts)
        for start, end in itertools.pairwise(bounds):
            keys[start:end].sort()
        return self._vectors(keys, bounds, structure)

    def _key_dtype(self) -> type[np.unsignedinteger]:
        return np.uint32 if (self.hash_dim + NUM_STRUCTURE) * 4 <= 1 << 32 else np.uint64

    def _keys(self, prompts: list[str]) -> tuple[np.ndarray, list[int], np.ndarray]:
        """Every prompt's keys `bucket << 2 | group`, prompt `i`'s in `keys[bounds[i]:bounds[i + 1]]`.

        The lower-cased heads go in one byte buffer, each followed by some filler. Row `r` of the `(rows, columns)`
        key matrix holds the character n-grams that start at byte `r`, one column per order, and the filler rows
        after a head hold its word n-grams, edge words and the keys of its `NUM_STRUCTURE` structure features
        (buckets `hash_dim + j`, group 3), the last of which fills every other slot: sorted, a prompt's keys end
        with its structure keys.
        """
        dtype = self._key_dtype()
        reserved = ((self.hash_dim + np.arange(NUM_STRUCTURE)) << 2 | 3).astype(dtype)
        heads = [p[: self.max_chars].lower() for p in prompts]
        encoded = [h.encode("utf-8", "replace") for h in heads]
        head_bytes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        token_at, token_bytes, tokens, counts = token_spans(heads, int(head_bytes.sum()))
        # lower() turns no character into or out of whitespace, a digit, a code character, "?" or a newline, so a
        # head that is the whole prompt has the prompt's counts
        if longer := [i for i, p in enumerate(prompts) if len(p) > self.max_chars]:
            counts[longer] = text_counts(*text_classes([prompts[i] for i in longer]))
        structure = structure_features(prompts, counts)
        gram_counts = [np.maximum(tokens - n + 1, 0) for n in self.word_ngrams]
        edge_hashes = [self._edge_hashes(p) for p in prompts] if self.edge_words > 0 else []
        edge_counts = np.fromiter(map(len, edge_hashes), dtype=np.int64, count=len(edge_hashes))
        slots = sum(gram_counts, edge_counts if edge_hashes else np.zeros(len(prompts), dtype=np.int64))

        columns, longest = max(len(self.char_ngrams), 1), max(self.char_ngrams, default=1)
        filler = np.maximum(-(-(slots + NUM_STRUCTURE) // columns), longest - 1)
        row_start = segment_starts(head_bytes + filler)
        rows = int(row_start[-1])
        pieces = zip(encoded, [b"\0" * n for n in filler.tolist()], strict=True)
        data = np.frombuffer(b"".join(b for pair in pieces for b in pair), dtype=np.uint8)
        inside = np.repeat(
            np.tile([True, False], len(prompts) + 1), [*np.column_stack([head_bytes, filler]).ravel(), 0, longest]
        )

        keys = ARENA.take((rows, columns), dtype)
        keys.fill(reserved[-1])
        wide = ARENA.take(rows + longest, np.uint64)
        wide[:rows], wide[rows:] = data, 0
        h, where = ARENA.take(rows, np.uint64), ARENA.take(rows, bool)
        power_of_two = self.hash_dim & (self.hash_dim - 1) == 0
        for column, n in enumerate(self.char_ngrams):
            np.bitwise_xor(wide[:rows], np.uint64((n * _GOLDEN) & 0xFFFFFFFFFFFFFFFF), out=h)
            h *= _PRIME
            for k in range(1, n):
                h ^= wide[k : k + rows]
                h *= _PRIME
            if power_of_two:  # (h >> 20) % hash_dim << 2, in fewer passes
                h >>= np.uint64(18)
                h &= np.uint64((self.hash_dim - 1) << 2)
            else:
                h >>= np.uint64(20)
                h %= np.uint64(self.hash_dim)
                h <<= np.uint64(2)
            h |= np.uint64(_CHAR_GROUP)
            np.logical_and(inside[:rows], inside[n - 1 : n - 1 + rows], out=where)
            np.copyto(keys[:, column], h, casting="unsafe", where=where)

        flat = keys.reshape(-1)
        slot = columns * (row_start[:-1] + head_bytes)  # each prompt's first free slot
        prompt_of = np.repeat(np.arange(len(prompts)), tokens)
        shift = row_start[:-1] - segment_starts(head_bytes)[:-1]  # a head's offset in `data` less its offset in text
        token_crc = crc_spans(data, token_at + shift[prompt_of], token_bytes, b"\0")
        local = np.arange(len(token_crc)) - segment_starts(tokens)[prompt_of]
        for n, count in zip(self.word_ngrams, gram_counts, strict=True):
            # the CRC-32 of f"{n}\0{word}\0{word}..." from each "\0{word}"'s
            first = np.flatnonzero(local < count[prompt_of])
            crc = crc_shift(zlib.crc32(str(n).encode()), token_bytes[first] + 1) ^ token_crc[first]
            for k in range(1, n):
                crc = crc_shift(crc, token_bytes[first + k] + 1) ^ token_crc[first + k]
            crc = crc.astype(dtype)
            key = (crc & dtype(self.hash_dim - 1) if power_of_two else crc % dtype(self.hash_dim)) << 2
            flat[slot[prompt_of[first]] + local[first]] = key | _WORD_GROUP
            slot = slot + count
        if edge_hashes:
            owner = np.repeat(np.arange(len(prompts)), edge_counts)
            at = slot[owner] + np.arange(len(owner)) - segment_starts(edge_counts)[owner]
            edge_keys = (np.concatenate(edge_hashes) % np.uint64(self.hash_dim)).astype(dtype)
            flat[at] = edge_keys << 2 | _EDGE_GROUP
            slot = slot + edge_counts
        flat[slot[:, None] + np.arange(NUM_STRUCTURE - 1)] = reserved[:-1]
        return flat, (columns * row_start).tolist(), structure

    def _vectors(
        self, keys: np.ndarray, bounds: list[int], structure: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`batch`'s arrays, in the arena, from each prompt's sorted keys and the structure features."""
        new = ARENA.take(len(keys), bool)
        new[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])  # prompts' keys never run on: each ends with the largest
        first = np.flatnonzero(new)
        runs = len(first)
        prompt_start = np.searchsorted(first, bounds)
        weights = ARENA.take(runs, np.float32)  # 1 + log(count)
        np.subtract(first[1:], first[:-1], out=weights[:-1], casting="unsafe")
        weights[-1] = len(keys) - first[-1]
        np.log(weights, out=weights)
        weights += 1
        keys = np.take(keys, first, out=ARENA.take(runs, keys.dtype))
        group, member = ARENA.take(runs, np.uint8), ARENA.take(runs, bool)
        np.bitwise_and(keys, 3, out=group, casting="unsafe")
        for g in range(3 if self.edge_words > 0 else 2):
            members = np.flatnonzero(np.equal(group, g, out=member))
            w = np.take(weights, members, out=ARENA.take(len(members), np.float32))
            ends = np.searchsorted(members, prompt_start).tolist()
            # each group's norm exactly as `np.linalg.norm` of the prompt's weights gives it (BLAS sdot)
            squares = np.array([w[a:b].dot(w[a:b]) for a, b in itertools.pairwise(ends)], dtype=np.float32)
            w /= np.repeat(np.sqrt(squares), np.diff(ends))
            weights[members] = w
        indices = np.right_shift(keys, 2, out=ARENA.take(runs, np.int64), casting="unsafe")
        values = weights
        same = np.equal(indices[1:], indices[:-1], out=member[1:])
        if same.any():  # a bucket hit by several groups: one entry, the values summed in group order
            rest = np.flatnonzero(same) + 1
            owner = rest - 1
            for i in (np.flatnonzero(owner[1:] == rest[:-1]) + 1).tolist():  # the third group in one bucket
                owner[i] = owner[i - 1]
            np.add.at(values, owner, values[rest])
            indices = without(indices, rest, ARENA.take(runs - len(rest), np.int64))
            values = without(values, rest, ARENA.take(runs - len(rest), np.float32))
            prompt_start -= np.searchsorted(rest, prompt_start)
        values[(prompt_start[1:] - NUM_STRUCTURE)[:, None] + np.arange(NUM_STRUCTURE)] = structure
        return indices, values, prompt_start[:-1]

    def _edge_hashes(self, prompt: str) -> np.ndarray:
        if self.edge_words <= 0:
            return np.zeros(0, dtype=np.uint64)
        words = WORD.findall(prompt[: self.max_chars].lower())
        tail = WORD.findall(prompt[-self.max_chars :].lower())
        tagged = [f"^{i}\x00{w}" for i, w in enumerate(words[: self.edge_words])]
        tagged += [f"${i}\x00{w}" for i, w in enumerate(reversed(tail[-self.edge_words :]))]
        return np.fromiter(
            (zlib.crc32(t.encode("utf-8", "replace")) for t in tagged), dtype=np.uint64, count=len(tagged)
        )

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["num_structure"] = NUM_STRUCTURE
        return data

    @classmethod
    def from_dict(cls, data: object, where: str) -> LexicalFeaturizer:
        """Settings read from `lexical_config.json`, each checked (the message names the file and field)."""
        if not isinstance(data, dict):
            raise UsageConfigError(f"{where}: expected a JSON object")
        if data.get("num_structure", NUM_STRUCTURE) != NUM_STRUCTURE:
            raise UsageConfigError(
                f"{where}: 'num_structure' is {data.get('num_structure')!r}, this version computes {NUM_STRUCTURE}"
            )
        return cls(
            hash_dim=_setting(data, "hash_dim", where, minimum=1),
            char_ngrams=_ngram_orders(data, "char_ngrams", where),
            word_ngrams=_ngram_orders(data, "word_ngrams", where),
            max_chars=_setting(data, "max_chars", where, minimum=1),
            edge_words=_setting(data, "edge_words", where, minimum=0, default=0),
        )


def _setting(data: dict[str, object], name: str, where: str, minimum: int, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageConfigError(f"{where}: '{name}' must be an integer >= {minimum}, got {value!r}")
    return value


def _ngram_orders(data: dict[str, object], name: str, where: str) -> tuple[int, ...]:
    value = data.get(name)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_NGRAM for n in value)
    ):
        raise UsageConfigError(f"{where}: '{name}' must be a non-empty list of integers 1..{MAX_NGRAM}, got {value!r}")
    return tuple(value)


class LexicalScorer:
    """A `Scorer`: raw outputs `(n, num_labels)` = sparse features @ weight + bias, in numpy."""

    def __init__(
        self, featurizer: LexicalFeaturizer, weight: np.ndarray, bias: np.ndarray, batch_size: int = 512
    ) -> None:
        if weight.ndim != 2 or weight.shape[0] != featurizer.dim or bias.shape != (weight.shape[1],):
            raise IncompleteWeightsError(
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
        """Read `lexical_config.json` and the checkpoint (one file or shards): exactly `weight` and `bias`, floats of
        the featurizer's size, all finite."""
        from safetensors import safe_open

        weights_dir = Path(weights_dir)
        config_path = weights_dir / LEXICAL_CONFIG_NAME
        if not config_path.is_file():
            raise UsageConfigError(f"{config_path}: missing (a lexical predictor needs its featurizer settings)")
        featurizer = LexicalFeaturizer.from_dict(read_json(config_path), str(config_path))
        featurizer.max_chars = min(featurizer.max_chars, max_length)
        found = checkpoint_tensors(weights_dir)
        floats = ("F16", "F32", "F64")  # what numpy reads
        compare(found, {"weight": (floats, (featurizer.dim, None)), "bias": (floats, (None,))}).raise_if_any(
            weights_dir
        )
        tensors = {}
        for name, spec in found.items():
            with safe_open(str(spec.file), framework="numpy") as handle:
                tensors[name] = handle.get_tensor(name)
        check_finite(weights_dir, [name for name, array in tensors.items() if not np.isfinite(array).all()])
        return cls(featurizer, tensors["weight"], tensors["bias"], batch_size=max(batch_size, 256))

    @property
    def num_labels(self) -> int:
        return int(self.weight.shape[1])

    def raw(self, prompts: list[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(prompts), self.num_labels), dtype=np.float64)
        starts = range(0, len(prompts), self.batch_size)
        for start in tqdm(starts, desc="scoring", unit="batch") if progress and len(starts) > 1 else starts:
            done = start
            for chunk in self.featurizer._chunks(prompts[start : start + self.batch_size]):
                indices, values, offsets = self.featurizer._arena_batch(chunk)
                contributions = np.take(
                    self.weight, indices, axis=0, out=ARENA.take((len(indices), self.num_labels), np.float32)
                )
                contributions *= values[:, None]
                out[done : done + len(chunk)] = np.add.reduceat(contributions, offsets, axis=0) + self.bias
                done += len(chunk)
        return out

    def save(self, weights_dir: Path) -> None:
        from safetensors.numpy import save_file

        weights_dir = Path(weights_dir)
        weights_dir.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight, "bias": self.bias}, str(weights_dir / WEIGHTS_NAME))
        (weights_dir / LEXICAL_CONFIG_NAME).write_text(
            json.dumps(self.featurizer.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
