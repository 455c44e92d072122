"""Numpy kernels that featurize a whole batch of texts with no Python loop over tokens or n-grams (for `lexical`).

- character classes: one byte per code point from a table filled in on first sight (`text_classes`), from which
  `token_spans` finds `WORD`'s tokens of every text at once and `text_counts` the structure counts;
- CRC-32 of many byte spans at once (`crc_spans`), combined into an n-gram's CRC-32 like zlib's `crc32_combine`
  (`crc_shift`);
- `ARENA`: memory each thread reuses from batch to batch for a batch's large arrays, because touching fresh memory
  costs more than the arithmetic done in it.

Why: speed (a batch costs about 0.06 ms of CPU a prompt), with features the same, bit for bit, as hashing each
gram string with `zlib.crc32` prompt by prompt (`tests/test_lexical.py` keeps that reference).
"""

from __future__ import annotations

import re
import threading
import zlib

import numpy as np
from numpy.typing import DTypeLike

WORD = re.compile(r"\w+|[^\w\s]")  # a token: a run of word characters, or one character neither word nor space
_DIGITS = "0123456789"
_CODE_CHARS = "{}()[];=<>_/\\`$#"
_CRC_STEPS, _CRC_SPANS = 48, 32  # a token's CRC-32 is computed in numpy for at most 48 bytes, with 32 others
_SHIFT_CAP = 64  # the CRC shift tables cover up to this many bytes; longer shifts chain them

# One byte per code point, filled in on first sight: bits 0-1 the token class (how `WORD` splits text), bits
# 2-4 the structure class (0 none, 1 digit, 2 code character, 3 "?", 4 newline).
_SPACE, _WORDCHAR, _OTHER, _UNKNOWN = 0, 1, 2, 255
_CLASSES = np.full(0x110000, _UNKNOWN, dtype=np.uint8)


def _classify(code_point: int) -> int:
    """The class byte of one code point (the layout above `_CLASSES`)."""
    char = chr(code_point)
    token = _SPACE if WORD.fullmatch(char) is None else _WORDCHAR if WORD.fullmatch(char * 2) else _OTHER
    kind = 1 if char in _DIGITS else 2 if char in _CODE_CHARS else 3 if char == "?" else 4 if char == "\n" else 0
    return token | kind << 2


def _code_points(text: str) -> np.ndarray:
    """The text's code points as uint32; a lone surrogate is kept as one code point."""
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


def text_classes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The class bytes of the texts' code points, and where each text starts (then the total)."""
    return _classes(_code_points("".join(texts))), segment_starts(np.fromiter(map(len, texts), dtype=np.int64))


def segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive segments of these lengths starts, then the total."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


class Arena(threading.local):
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
        """An uninitialised array in the arena (64-byte aligned), or a fresh one when the arena is full."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        start = -(-self.used // 64) * 64
        self.used = start + nbytes
        self.peak = max(self.peak, self.used)
        if self.used > len(self.memory):
            return np.empty(shape, dtype=dtype)
        return self.memory[start : self.used].view(dtype).reshape(shape)


ARENA = Arena()


def without(array: np.ndarray, positions: np.ndarray, out: np.ndarray) -> np.ndarray:
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


def token_spans(heads: list[str], total_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tokens `WORD.findall` finds in each head (runs of word characters, and single characters that are
    neither word nor space): byte offsets in the heads' UTF-8 concatenation, byte lengths, and how many each head
    has; then the heads' `text_counts`. A lone surrogate is one byte, as `encode("utf-8", "replace")` writes it."""
    bounds = segment_starts(np.fromiter(map(len, heads), dtype=np.int64, count=len(heads)))
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
    return first, end - first, per_head, text_counts(classes, bounds)


def text_counts(classes: np.ndarray, bounds: np.ndarray) -> np.ndarray:
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


def _crc_table() -> np.ndarray:
    """zlib's byte-at-a-time CRC-32 table (reflected polynomial 0xEDB88320)."""
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


def crc_shift(crc: np.ndarray | int, nbytes: np.ndarray) -> np.ndarray:
    """zlib's `crc32_combine` for arrays: `crc32(a + b) == crc_shift(crc32(a), len(b)) ^ crc32(b)`."""
    if isinstance(crc, int):  # one CRC: a table of it shifted by every length
        if crc not in _SHIFTED:
            _SHIFTED[crc] = crc_shift(np.full(_SHIFT_CAP + 1, crc, dtype=np.uint32), np.arange(_SHIFT_CAP + 1))
        out = _SHIFTED[crc][np.minimum(nbytes, _SHIFT_CAP)]
        if (far := np.flatnonzero(nbytes > _SHIFT_CAP)).size:
            out[far] = crc_shift(np.full(len(far), crc, dtype=np.uint32), nbytes[far])
        return out
    tables = _shift_tables()
    crc, nbytes = crc.astype(np.uint32), nbytes.astype(np.int64)
    while (far := np.flatnonzero(nbytes > _SHIFT_CAP)).size:
        crc[far] = crc_shift(crc[far], np.full(len(far), _SHIFT_CAP))
        nbytes[far] -= _SHIFT_CAP
    base = nbytes * 1024
    out = tables[base + (crc & 0xFF)]
    out ^= tables[base + 256 + ((crc >> 8) & 0xFF)]
    out ^= tables[base + 512 + ((crc >> 16) & 0xFF)]
    out ^= tables[base + 768 + (crc >> 24)]
    return out


def crc_spans(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, prefix: bytes) -> np.ndarray:
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
