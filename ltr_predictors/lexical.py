"""The lexical family: hashed word and character n-grams plus prompt-structure features, scored by a linear head.

A prompt becomes a sparse vector: word unigrams and bigrams (hashed with CRC-32), character 3- to 5-grams of the
lower-cased head of the prompt (a vectorised polynomial hash), each group L2-normalised, plus a few dense
structure features of the whole prompt (log length in characters, words and lines, share of digits, punctuation
and code-like characters). The head is one weight row per hashed feature and output, so the weights fit in a
safetensors file of about 1 MB and scoring runs thousands of prompts per second on one core with numpy alone.

`LexicalFeaturizer.batch` featurizes a whole batch with numpy, with no Python loop over tokens or n-grams: the
heads' characters are classified through a table (word, space or other, as `_WORD` splits text), the CRC-32 of
every token is computed for all tokens at once and combined into the n-grams' CRC-32 (`_crc_shift`), the
character hashes run over all heads in one buffer, and each prompt's bucket keys are sorted once to be counted.
The features are the same, bit for bit, as hashing each gram string with `zlib.crc32` and counting with
`np.unique` prompt by prompt (`tests/test_lexical.py` keeps that reference). The large arrays of a batch live in a
per-thread arena (`_Arena`) that later batches reuse, because touching fresh memory costs more than the arithmetic
done in it; batches are cut at `_CHUNK_CHARS` characters, which bounds the arena at about 20 MB for text of
one-byte characters (about 50 MB for Chinese). A batch costs about 0.06 ms of CPU a prompt, a third of
it numpy's sort of each prompt's keys; one prompt alone about 0.5 ms.

Layout inside `finetuned/`: `model.safetensors` (`weight` `(dim, num_labels)` float32, `bias` `(num_labels,)`)
and `lexical_config.json` (the featurizer's settings). `usage_config.json`'s `max_length` is the number of
characters of the prompt's head that n-grams are taken from.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike
from tqdm.auto import tqdm

from .errors import UsageConfigError

LEXICAL_CONFIG_NAME = "lexical_config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_MAX_CHARS = 2048
NUM_STRUCTURE = 7
_WORD = re.compile(r"\w+|[^\w\s]")
_PRIME = np.uint64(1099511628211)
_GOLDEN = 0x9E3779B97F4A7C15
_DIGITS = "0123456789"
_CODE_CHARS = "{}()[];=<>_/\\`$#"
# n-gram groups, each L2-normalised on its own: a prompt's key for a bucket of a group is `bucket << 2 | group`
_WORD_GROUP, _CHAR_GROUP, _EDGE_GROUP = 0, 1, 2  # 3: the structure features' keys
_CRC_STEPS, _CRC_SPANS = 48, 32  # a token's CRC-32 is computed in numpy for at most 48 bytes, with 32 others
_SHIFT_CAP = 64  # the CRC shift tables cover up to this many bytes; longer shifts chain them
_CHUNK_CHARS = 1 << 17  # head characters featurized together: bounds the memory kept for reuse (`_Arena`)
_ARENA_PER_CHAR = 128  # about what a batch takes from the arena per head character

# One byte per code point, filled in on first sight: bits 0-1 the token class (how `_WORD` splits text), bits
# 2-4 the structure class (0 none, 1 digit, 2 code character, 3 "?", 4 newline).
_SPACE, _WORDCHAR, _OTHER, _UNKNOWN = 0, 1, 2, 255
_CLASSES = np.full(0x110000, _UNKNOWN, dtype=np.uint8)


def _classify(code_point: int) -> int:
    char = chr(code_point)
    token = _SPACE if _WORD.fullmatch(char) is None else _WORDCHAR if _WORD.fullmatch(char * 2) else _OTHER
    kind = 1 if char in _DIGITS else 2 if char in _CODE_CHARS else 3 if char == "?" else 4 if char == "\n" else 0
    return token | kind << 2


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _classes(code_points: np.ndarray) -> np.ndarray:
    """The class byte of every code point."""
    classes = _CLASSES[code_points]
    unknown = classes == _UNKNOWN
    if unknown.any():
        for code_point in set(code_points[unknown].tolist()):
            _CLASSES[code_point] = _classify(code_point)
        classes = _CLASSES[code_points]
    return classes


def _text_classes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The class bytes of the texts' code points, and where each text starts (then the total)."""
    return _classes(_code_points("".join(texts))), _segment_starts(np.fromiter(map(len, texts), dtype=np.int64))


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive segments of these lengths starts, then the total."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


class _Arena(threading.local):
    """Memory a thread reuses from batch to batch for the batch's large arrays: fresh memory costs a page fault
    per 4 KiB on first touch, more than the arithmetic done in it. `take` hands out views until `reset`; what
    does not fit is allocated afresh, and the next `reset` grows the arena to the largest batch seen."""

    def __init__(self) -> None:
        self.memory = np.empty(0, dtype=np.uint8)
        self.used = self.peak = 0

    def reset(self, expected: int = 0) -> None:
        """Start a batch expected to take about `expected` bytes."""
        if max(self.peak, expected) > len(self.memory):  # numpy asks for huge pages from 4 MiB
            self.memory = np.empty(max(self.peak + self.peak // 4, expected, 1 << 22), dtype=np.uint8)
        self.used = 0

    def take(self, shape: int | tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        start = -(-self.used // 64) * 64
        self.used = start + nbytes
        self.peak = max(self.peak, self.used)
        if self.used > len(self.memory):
            return np.empty(shape, dtype=dtype)
        return self.memory[start : self.used].view(dtype).reshape(shape)


_ARENA = _Arena()


def _without(array: np.ndarray, positions: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`array` less the few entries at the ascending `positions`, copied into `out` (faster than `np.compress`)."""
    at = 0
    for start, end in zip([0, *(positions + 1).tolist()], [*positions.tolist(), len(array)], strict=True):
        out[at : at + end - start] = array[start:end]
        at += end - start
    return out


def _runs(flags: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where runs of True start and end (last position) in `flags`, runs cut between texts (`bounds`)."""
    starts, ends = bounds[:-1], bounds[1:]
    starts, ends = starts[starts < ends], ends[starts < ends]
    before, after = np.zeros_like(flags), np.zeros_like(flags)
    before[1:], after[:-1] = flags[:-1], flags[1:]
    before[starts], after[ends - 1] = False, False
    return flags > before, flags > after


def _tokens(heads: list[str], total_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tokens `_WORD.findall` finds in each head (runs of word characters, and single characters that are
    neither word nor space): byte offsets in the heads' UTF-8 concatenation, byte lengths, and how many each head
    has; then the heads' `_text_counts`. A lone surrogate is one byte, as `encode("utf-8", "replace")` writes it."""
    bounds = _segment_starts(np.fromiter(map(len, heads), dtype=np.int64, count=len(heads)))
    code_points = _code_points("".join(heads))
    classes = _classes(code_points)
    token = classes & 3
    word_start, word_end = _runs(token == _WORDCHAR, bounds)
    other = token == _OTHER
    first = np.flatnonzero(word_start | other)
    end = np.flatnonzero(word_end | other) + 1
    per_head = np.diff(np.searchsorted(first, bounds))
    if total_bytes != len(code_points):  # some characters take several bytes: byte offsets of code points
        extra = (code_points >= 0x80).view(np.uint8) + (code_points >= 0x800).view(np.uint8)
        extra += (code_points >= 0x10000).view(np.uint8)
        extra[(code_points >= 0xD800) & (code_points < 0xE000)] = 0
        offset = np.arange(len(code_points) + 1)
        offset[1:] += np.cumsum(extra, dtype=np.int64)
        first, end = offset[first], offset[end]
    return first, end - first, per_head, _text_counts(classes, bounds)


def _text_counts(classes: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """`(texts, 5)`: whitespace-separated words, digits, code characters, "?" and newlines of each text, from the
    class bytes of the texts' code points (`bounds`: where each text starts, then the total)."""
    texts = len(bounds) - 1
    word_starts, _ = _runs((classes & 3) != _SPACE, bounds)
    key = np.repeat(np.arange(0, 40 * texts, 40), np.diff(bounds))  # per text: class byte (< 20), word start
    key += classes * 2
    key += word_starts
    counts = np.bincount(key, minlength=40 * texts).reshape(texts, 5, 8)
    kinds = counts.sum(axis=2)
    return np.column_stack([counts[:, :, 1::2].sum(axis=(1, 2)), kinds[:, 1:]])


def structure_features(prompts: list[str], counts: np.ndarray | None = None) -> np.ndarray:
    """Dense features `(len(prompts), NUM_STRUCTURE)` of whole prompts, each roughly in [0, 1]: sizes on a log
    scale (characters, whitespace-separated words, lines), shares of digits and code characters, "?" per line.
    `counts`: the prompts' `_text_counts`, when known."""
    chars = np.fromiter(map(len, prompts), dtype=np.int64, count=len(prompts))
    if counts is None:
        counts = _text_counts(*_text_classes(prompts))
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


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0xEDB88320), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _crc_table()
_SHIFT_TABLES: list[np.ndarray] = []
_SHIFTED: dict[int, np.ndarray] = {}


def _shift_tables() -> np.ndarray:
    """`(_SHIFT_CAP + 1) * 1024` uint32, built once: entry `1024 * n + 256 * j + v` is the CRC-32 register
    `v << 8 * j` after n zero bytes."""
    if not _SHIFT_TABLES:
        register = np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]
        tables = [register.ravel()]
        for _ in range(_SHIFT_CAP):
            tables.append(_CRC_TABLE[tables[-1] & 0xFF] ^ (tables[-1] >> 8))
        _SHIFT_TABLES.append(np.concatenate(tables))
    return _SHIFT_TABLES[0]


def _crc_shift(crc: np.ndarray | int, nbytes: np.ndarray) -> np.ndarray:
    """zlib's `crc32_combine` for arrays: `crc32(a + b) == _crc_shift(crc32(a), len(b)) ^ crc32(b)`."""
    if isinstance(crc, int):  # one CRC: a table of it shifted by every length
        if crc not in _SHIFTED:
            _SHIFTED[crc] = _crc_shift(np.full(_SHIFT_CAP + 1, crc, dtype=np.uint32), np.arange(_SHIFT_CAP + 1))
        out = _SHIFTED[crc][np.minimum(nbytes, _SHIFT_CAP)]
        if (far := np.flatnonzero(nbytes > _SHIFT_CAP)).size:
            out[far] = _crc_shift(np.full(len(far), crc, dtype=np.uint32), nbytes[far])
        return out
    tables = _shift_tables()
    crc, nbytes = crc.astype(np.uint32), nbytes.astype(np.int64)
    while (far := np.flatnonzero(nbytes > _SHIFT_CAP)).size:
        crc[far] = _crc_shift(crc[far], np.full(len(far), _SHIFT_CAP))
        nbytes[far] -= _SHIFT_CAP
    base = nbytes * 1024
    out = tables[base + (crc & 0xFF)]
    out ^= tables[base + 256 + ((crc >> 8) & 0xFF)]
    out ^= tables[base + 512 + ((crc >> 16) & 0xFF)]
    out ^= tables[base + 768 + (crc >> 24)]
    return out


def _crc_spans(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, prefix: bytes) -> np.ndarray:
    """`zlib.crc32(prefix + data[s : s + n])` of every span, the spans advancing one byte per step together."""
    register = np.full(len(starts), zlib.crc32(prefix) ^ 0xFFFFFFFF, dtype=np.uint32)
    if len(starts) == 0:
        return register
    order = np.argsort(255 - np.minimum(lengths, 255).astype(np.uint8), kind="stable")  # longest first
    at, left = starts[order], lengths[order]
    active = np.searchsorted(-left, -np.arange(min(int(left[0]), _CRC_STEPS)), side="left")  # spans longer than k
    active = active[active >= _CRC_SPANS].tolist()  # the few longest go through zlib, one by one
    steps = len(active)
    for n in active:
        head, pos = register[:n], at[:n]
        index = (head ^ data[pos]) & 0xFF
        head >>= 8
        head ^= _CRC_TABLE[index]
        pos += 1
    longer = int(np.searchsorted(-left, -steps, side="left"))
    raw = data.tobytes() if longer else b""
    for i in range(longer):
        rest = raw[at[i] : at[i] + left[i] - steps]
        register[i] = zlib.crc32(rest, int(register[i]) ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
    out = np.empty_like(register)
    out[order] = register ^ np.uint32(0xFFFFFFFF)
    return out


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
        shifts = _segment_starts(np.array([len(indices) for indices, _, _ in parts]))
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
        _ARENA.reset(_ARENA_PER_CHAR * min(_CHUNK_CHARS, sum(min(len(p), self.max_chars) for p in prompts)))
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
        token_at, token_bytes, tokens, counts = _tokens(heads, int(head_bytes.sum()))
        # lower() turns no character into or out of whitespace, a digit, a code character, "?" or a newline, so a
        # head that is the whole prompt has the prompt's counts
        if longer := [i for i, p in enumerate(prompts) if len(p) > self.max_chars]:
            counts[longer] = _text_counts(*_text_classes([prompts[i] for i in longer]))
        structure = structure_features(prompts, counts)
        gram_counts = [np.maximum(tokens - n + 1, 0) for n in self.word_ngrams]
        edge_hashes = [self._edge_hashes(p) for p in prompts] if self.edge_words > 0 else []
        edge_counts = np.fromiter(map(len, edge_hashes), dtype=np.int64, count=len(edge_hashes))
        slots = sum(gram_counts, edge_counts if edge_hashes else np.zeros(len(prompts), dtype=np.int64))

        columns, longest = max(len(self.char_ngrams), 1), max(self.char_ngrams, default=1)
        filler = np.maximum(-(-(slots + NUM_STRUCTURE) // columns), longest - 1)
        row_start = _segment_starts(head_bytes + filler)
        rows = int(row_start[-1])
        pieces = zip(encoded, [b"\0" * n for n in filler.tolist()], strict=True)
        data = np.frombuffer(b"".join(b for pair in pieces for b in pair), dtype=np.uint8)
        inside = np.repeat(
            np.tile([True, False], len(prompts) + 1), [*np.column_stack([head_bytes, filler]).ravel(), 0, longest]
        )

        keys = _ARENA.take((rows, columns), dtype)
        keys.fill(reserved[-1])
        wide = _ARENA.take(rows + longest, np.uint64)
        wide[:rows], wide[rows:] = data, 0
        h, where = _ARENA.take(rows, np.uint64), _ARENA.take(rows, bool)
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
        shift = row_start[:-1] - _segment_starts(head_bytes)[:-1]  # a head's offset in `data` less its offset in text
        token_crc = _crc_spans(data, token_at + shift[prompt_of], token_bytes, b"\0")
        local = np.arange(len(token_crc)) - _segment_starts(tokens)[prompt_of]
        for n, count in zip(self.word_ngrams, gram_counts, strict=True):
            # the CRC-32 of f"{n}\0{word}\0{word}..." from each "\0{word}"'s
            first = np.flatnonzero(local < count[prompt_of])
            crc = _crc_shift(zlib.crc32(str(n).encode()), token_bytes[first] + 1) ^ token_crc[first]
            for k in range(1, n):
                crc = _crc_shift(crc, token_bytes[first + k] + 1) ^ token_crc[first + k]
            crc = crc.astype(dtype)
            key = (crc & dtype(self.hash_dim - 1) if power_of_two else crc % dtype(self.hash_dim)) << 2
            flat[slot[prompt_of[first]] + local[first]] = key | _WORD_GROUP
            slot = slot + count
        if edge_hashes:
            owner = np.repeat(np.arange(len(prompts)), edge_counts)
            at = slot[owner] + np.arange(len(owner)) - _segment_starts(edge_counts)[owner]
            edge_keys = (np.concatenate(edge_hashes) % np.uint64(self.hash_dim)).astype(dtype)
            flat[at] = edge_keys << 2 | _EDGE_GROUP
            slot = slot + edge_counts
        flat[slot[:, None] + np.arange(NUM_STRUCTURE - 1)] = reserved[:-1]
        return flat, (columns * row_start).tolist(), structure

    def _vectors(
        self, keys: np.ndarray, bounds: list[int], structure: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`batch`'s arrays, in the arena, from each prompt's sorted keys and the structure features."""
        new = _ARENA.take(len(keys), bool)
        new[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])  # prompts' keys never run on: each ends with the largest
        first = np.flatnonzero(new)
        runs = len(first)
        prompt_start = np.searchsorted(first, bounds)
        weights = _ARENA.take(runs, np.float32)  # 1 + log(count)
        np.subtract(first[1:], first[:-1], out=weights[:-1], casting="unsafe")
        weights[-1] = len(keys) - first[-1]
        np.log(weights, out=weights)
        weights += 1
        keys = np.take(keys, first, out=_ARENA.take(runs, keys.dtype))
        group, member = _ARENA.take(runs, np.uint8), _ARENA.take(runs, bool)
        np.bitwise_and(keys, 3, out=group, casting="unsafe")
        for g in range(3 if self.edge_words > 0 else 2):
            members = np.flatnonzero(np.equal(group, g, out=member))
            w = np.take(weights, members, out=_ARENA.take(len(members), np.float32))
            ends = np.searchsorted(members, prompt_start).tolist()
            # each group's norm exactly as `np.linalg.norm` of the prompt's weights gives it (BLAS sdot)
            squares = np.array([w[a:b].dot(w[a:b]) for a, b in itertools.pairwise(ends)], dtype=np.float32)
            w /= np.repeat(np.sqrt(squares), np.diff(ends))
            weights[members] = w
        indices = np.right_shift(keys, 2, out=_ARENA.take(runs, np.int64), casting="unsafe")
        values = weights
        same = np.equal(indices[1:], indices[:-1], out=member[1:])
        if same.any():  # a bucket hit by several groups: one entry, the values summed in group order
            rest = np.flatnonzero(same) + 1
            owner = rest - 1
            for i in (np.flatnonzero(owner[1:] == rest[:-1]) + 1).tolist():  # the third group in one bucket
                owner[i] = owner[i - 1]
            np.add.at(values, owner, values[rest])
            indices = _without(indices, rest, _ARENA.take(runs - len(rest), np.int64))
            values = _without(values, rest, _ARENA.take(runs - len(rest), np.float32))
            prompt_start -= np.searchsorted(rest, prompt_start)
        values[(prompt_start[1:] - NUM_STRUCTURE)[:, None] + np.arange(NUM_STRUCTURE)] = structure
        return indices, values, prompt_start[:-1]

    def _edge_hashes(self, prompt: str) -> np.ndarray:
        if self.edge_words <= 0:
            return np.zeros(0, dtype=np.uint64)
        words = _WORD.findall(prompt[: self.max_chars].lower())
        tail = _WORD.findall(prompt[-self.max_chars :].lower())
        tagged = [f"^{i}\x00{w}" for i, w in enumerate(words[: self.edge_words])]
        tagged += [f"${i}\x00{w}" for i, w in enumerate(reversed(tail[-self.edge_words :]))]
        return np.fromiter((zlib.crc32(t.encode()) for t in tagged), dtype=np.uint64, count=len(tagged))

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
        for start in tqdm(starts, desc="scoring", unit="batch") if progress and len(starts) > 1 else starts:
            done = start
            for chunk in self.featurizer._chunks(prompts[start : start + self.batch_size]):
                indices, values, offsets = self.featurizer._arena_batch(chunk)
                contributions = np.take(
                    self.weight, indices, axis=0, out=_ARENA.take((len(indices), self.num_labels), np.float32)
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
