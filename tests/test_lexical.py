"""The lexical featurizer's batch path against the per-prompt reference it replaced: the same features, bit for bit.

`reference_features` is the original implementation (one prompt at a time, each gram string hashed with
`zlib.crc32`, `np.unique` per group); the shipped default predictor was trained on its output, so the vectorised
`LexicalFeaturizer.batch` must reproduce it exactly: same indices, same float32 values.
"""

from __future__ import annotations

import random
import re
import zlib

import numpy as np
import pytest

from ltr_predictors.scoring.lexical import NUM_STRUCTURE, LexicalFeaturizer

_WORD = re.compile(r"\w+|[^\w\s]")
_PRIME = np.uint64(1099511628211)


def reference_structure(prompt: str) -> np.ndarray:
    chars = len(prompt)
    words = len(prompt.split())
    lines = prompt.count("\n") + 1
    share = 1.0 / max(chars, 1)
    return np.array(
        [
            np.log1p(chars) / 10.0,
            np.log1p(words) / 8.0,
            np.log1p(lines) / 5.0,
            sum(map(prompt.count, "0123456789")) * share,
            sum(map(prompt.count, "{}()[];=<>_/\\`$#")) * share,
            prompt.count("?") / max(lines, 1),
            1.0,
        ],
        dtype=np.float32,
    )


def reference_features(f: LexicalFeaturizer, prompt: str) -> tuple[np.ndarray, np.ndarray]:
    head = prompt[: f.max_chars].lower()
    words = _WORD.findall(head)
    grams = [f"{n}\x00" + "\x00".join(words[i : i + n]) for n in f.word_ngrams for i in range(len(words) - n + 1)]
    word_hashes = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))
    data = np.frombuffer(head.encode("utf-8", "replace"), dtype=np.uint8).astype(np.uint64)
    parts = []
    with np.errstate(over="ignore"):
        for n in f.char_ngrams:
            if len(data) < n:
                continue
            h = np.full(len(data) - n + 1, np.uint64(n) * np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
            for k in range(n):
                h = (h ^ data[k : len(data) - n + 1 + k]) * _PRIME
            parts.append(h >> np.uint64(20))
    char_hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    edge_hashes = np.zeros(0, dtype=np.uint64)
    if f.edge_words > 0:
        tail = _WORD.findall(prompt[-f.max_chars :].lower())
        tagged = [f"^{i}\x00{w}" for i, w in enumerate(words[: f.edge_words])]
        tagged += [f"${i}\x00{w}" for i, w in enumerate(reversed(tail[-f.edge_words :]))]
        edge_hashes = np.fromiter((zlib.crc32(t.encode()) for t in tagged), dtype=np.uint64, count=len(tagged))
    indices, values = [], []
    for hashes in (word_hashes, char_hashes, edge_hashes):
        if len(hashes) == 0:
            continue
        unique, counts = np.unique(hashes % np.uint64(f.hash_dim), return_counts=True)
        weights = 1.0 + np.log(counts.astype(np.float32))
        indices.append(unique.astype(np.int64))
        values.append(weights / np.linalg.norm(weights))
    indices.append(np.arange(f.hash_dim, f.dim, dtype=np.int64))
    values.append(reference_structure(prompt))
    unique_idx, inverse = np.unique(np.concatenate(indices), return_inverse=True)
    merged = np.zeros(len(unique_idx), dtype=np.float32)
    np.add.at(merged, inverse, np.concatenate(values).astype(np.float32))
    return unique_idx, merged


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = (
        "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ 0123456789 \n\t.,;:?!-_'\"(){}[]<>=/\\`$#@%^&*+|~ "
        "éèàçñüößøåæœ ÀÉÎÕÜ İıſKÅ ΑΒΓαβγ АБВабв 中文字符日本語 한국어 ٣٤ २३ ½ ² x\u0301 "
        "\u00a0\u3000\u2028\u1680\x1c\x85 "
        "😀👍🏽 𝔘𝔫𝔦 \U00020000"
    )
    return "".join(rng.choice(alphabet) for _ in range(size))


SETTINGS = [
    LexicalFeaturizer(),
    LexicalFeaturizer(hash_dim=1 << 12, max_chars=64),
    LexicalFeaturizer(hash_dim=1000, char_ngrams=(2, 7), word_ngrams=(1, 2, 3), edge_words=3),
    LexicalFeaturizer(hash_dim=1 << 10, char_ngrams=(), word_ngrams=(2,), edge_words=1, max_chars=5),
    LexicalFeaturizer(char_ngrams=(1,), word_ngrams=()),
]


def _prompts() -> list[str]:
    rng = random.Random(0)
    fixed = [
        "",
        " ",
        "\n\n",
        "a",
        "ab",
        "?",
        "Hello, world! How are you?",
        "the the the the the the the the the",
        "def f(x):\n    return {'a': [x, x ** 2]}  # code\n" * 3,
        "Write a haiku about autumn in exactly three lines.",
        "İstanbul ΣΊΣΥΦΟΣ straße ǅ ﬁ",  # lower() changes lengths and letters
        "日本語のテキストと English を混ぜた文です。",
        "emoji 😀😀😀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 mathematical letters",
        "x" * 3000,  # one token longer than the head, the CRC steps and the shift tables
        "word " * 700 + "end",  # longer than max_chars
        ("a" * 47 + " ") * 3 + "b" * 48 + " " + "c" * 65 + " " + "d" * 200,  # tokens around the length limits
        "tabs\tand\u3000ideographic\u00a0spaces\x1cand\x85more\u2028lines",
        "1234567890 ½ ² ٣ — numbers; {}()[];=<>_/\\`$# code chars?",
    ]
    return fixed + [_random_text(rng, rng.choice([1, 5, 40, 300, 2500])) for _ in range(60)]


@pytest.mark.parametrize("featurizer", SETTINGS, ids=lambda f: f"dim{f.hash_dim}-c{f.char_ngrams}-w{f.word_ngrams}")
def test_batch_matches_the_per_prompt_reference_bit_for_bit(featurizer: LexicalFeaturizer) -> None:
    prompts = _prompts()
    indices, values, offsets = featurizer.batch(prompts)
    assert indices.dtype == np.int64 and values.dtype == np.float32 and offsets.dtype == np.int64
    ends = [*offsets[1:].tolist(), len(indices)]
    for prompt, start, end in zip(prompts, offsets.tolist(), ends, strict=True):
        want_idx, want_val = reference_features(featurizer, prompt)
        np.testing.assert_array_equal(indices[start:end], want_idx, err_msg=repr(prompt[:60]))
        np.testing.assert_array_equal(values[start:end].view(np.uint32), want_val.view(np.uint32))


def test_features_is_one_prompt_of_batch() -> None:
    featurizer = LexicalFeaturizer()
    prompts = _prompts()[:12]
    indices, values, offsets = featurizer.batch(prompts)
    for i, prompt in enumerate(prompts):
        one_idx, one_val = featurizer.features(prompt)
        end = offsets[i + 1] if i + 1 < len(prompts) else len(indices)
        np.testing.assert_array_equal(one_idx, indices[offsets[i] : end])
        np.testing.assert_array_equal(one_val, values[offsets[i] : end])
        assert list(one_idx[-NUM_STRUCTURE:]) == list(range(featurizer.hash_dim, featurizer.dim))
        assert np.all(np.diff(one_idx) > 0)


def test_empty_batch_and_lone_surrogates() -> None:
    indices, values, offsets = LexicalFeaturizer().batch([])
    assert len(indices) == len(values) == len(offsets) == 0
    # the per-prompt code raised UnicodeEncodeError on a lone surrogate; it now hashes as "?" does in char n-grams
    for featurizer in (LexicalFeaturizer(), LexicalFeaturizer(edge_words=2)):
        indices, values = featurizer.features("broken \ud800 text")
        assert len(indices) > NUM_STRUCTURE and np.all(np.isfinite(values))


def test_batches_cut_into_chunks_match_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    import ltr_predictors.scoring.lexical as lexical

    featurizer = LexicalFeaturizer()
    prompts = _prompts()
    whole = featurizer.batch(prompts)
    monkeypatch.setattr(lexical, "_CHUNK_CHARS", 700)  # many chunks, some of one prompt longer than the limit
    assert len(featurizer._chunks(prompts)) > 10
    for got, want in zip(featurizer.batch(prompts), whole, strict=True):
        np.testing.assert_array_equal(got, want)


def test_scorer_is_the_reference_features_times_the_weights() -> None:
    from ltr_predictors.scoring.lexical import LexicalScorer

    featurizer = LexicalFeaturizer(hash_dim=1 << 12)
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(featurizer.dim, 2)).astype(np.float32)
    bias = np.array([0.5, -1.0], dtype=np.float32)
    prompts = _prompts()
    scores = LexicalScorer(featurizer, weight, bias, batch_size=16).raw(prompts)
    for prompt, row in zip(prompts, scores, strict=True):
        indices, values = reference_features(featurizer, prompt)
        want = np.add.reduceat(weight[indices] * values[:, None], [0], axis=0)[0] + bias
        np.testing.assert_array_equal(row, want.astype(np.float64))


def test_lower_keeps_the_characters_that_structure_features_count() -> None:
    """Structure counts are taken from a lower-cased head when it is the whole prompt: `str.lower` must map no
    character into or out of whitespace, digits, code characters, "?" or newlines (true of Unicode 15)."""
    counted = set("0123456789{}()[];=<>_/\\`$#?\n")
    for code_point in range(0x110000):
        char = chr(code_point)
        lower = char.lower()
        if lower != char:
            assert char not in counted and not (counted & set(lower)), hex(code_point)
            assert all(c.isspace() == char.isspace() for c in lower), hex(code_point)
