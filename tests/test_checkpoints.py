"""Weights load completely or not at all: real safetensors files, damaged the ways users meet them, for both backends.

A checkpoint that lacks a tensor used to load with that tensor randomly initialised (two loads scored differently);
each case here must instead raise a named error that lists what is wrong. Tokenizers without a vocabulary, remote
code in `config.json` and malformed featurizer settings are refused the same way.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import bert_model, bert_tokenizer, write_seed_predictor, write_tokenizer_repo

from ltr_predictors import (
    CorruptCheckpointError,
    IncompleteWeightsError,
    LengthPredictor,
    NonFiniteWeightsError,
    TokenizerError,
    UsageConfigError,
    WeightsConfigError,
)
from ltr_predictors.predictor import DEFAULT_PREDICTOR_DIR

PROMPTS = ["hello world", "write a long essay", "", "no"]
HEAD = "classifier.weight"  # BERT's score head: (num_labels, hidden)


def load(folder: Path) -> LengthPredictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local tokenizer paths have no known license
        return LengthPredictor.from_pretrained(folder)


@pytest.fixture
def bert_folder(tmp_path: Path) -> Path:
    """The seed layout with a BERT head, its tokenizer taken from a local backbone folder."""
    tokenizer = write_tokenizer_repo(tmp_path / "tok-bert", "bert")
    return write_seed_predictor(tmp_path / "pred", "bert", pred_model=str(tokenizer))


def rewrite(folder: Path, change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> Path:
    path = folder / "finetuned" / "model.safetensors"
    save_file(change(load_file(path)), path, metadata={"format": "pt"})
    return path


def without(name: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    return lambda tensors: {k: v for k, v in tensors.items() if k != name}


def replaced(name: str, value: torch.Tensor) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    return lambda tensors: {**tensors, name: value}


def test_a_complete_checkpoint_loads_and_scores_the_same_twice(bert_folder):
    first, second = load(bert_folder).score(PROMPTS), load(bert_folder).score(PROMPTS)
    np.testing.assert_array_equal(first, second)


INCOMPLETE = [
    ("no score head", without(HEAD), [f"missing tensors (1): {HEAD}"]),
    ("one tensor only", lambda t: {HEAD: t[HEAD]}, ["missing tensors (", "bert.embeddings.LayerNorm.bias"]),
    (
        "large file of one junk tensor",
        lambda t: {"junk": torch.zeros(4_000_000)},
        ["unexpected tensors (1): junk", "missing tensors ("],
    ),
    ("head of another shape", replaced(HEAD, torch.zeros(2, 16)), [f"wrong shapes (1): {HEAD}: checkpoint (2, 16)"]),
    (
        "head of integers",
        replaced(HEAD, torch.zeros(1, 16, dtype=torch.int32)),
        [f"{HEAD}: checkpoint I32, model float"],
    ),
]


@pytest.mark.parametrize(("case", "change", "messages"), INCOMPLETE, ids=[c[0] for c in INCOMPLETE])
def test_an_incomplete_checkpoint_is_refused_with_what_is_wrong(bert_folder, case, change, messages):
    path = rewrite(bert_folder, change)
    with pytest.raises(IncompleteWeightsError) as caught:
        load(bert_folder)
    assert str(caught.value).startswith(str(path.parent))
    for message in messages:
        assert message in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(bert_folder, value):
    rewrite(bert_folder, lambda t: {**t, HEAD: torch.full_like(t[HEAD], value)})
    with pytest.raises(NonFiniteWeightsError, match=rf"NaN or infinite values in 1 tensor\(s\): {HEAD}"):
        load(bert_folder)


DAMAGED = [
    ("zero bytes", lambda data: b"", "header too small"),
    ("truncated", lambda data: data[:-100], "incomplete metadata"),
    ("header length of a terabyte", lambda data: (1 << 40).to_bytes(8, "little") + data[8:], "header too large"),
]


@pytest.mark.parametrize(("case", "damage", "reason"), DAMAGED, ids=[c[0] for c in DAMAGED])
def test_a_damaged_file_is_refused_by_name(bert_folder, case, damage, reason):
    path = bert_folder / "finetuned" / "model.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptCheckpointError, match=rf"{path}: not a readable safetensors file .*{reason}"):
        load(bert_folder)


@pytest.fixture
def sharded_folder(bert_folder: Path) -> Path:
    """The same predictor saved as shards of at most 5 kB beside `model.safetensors.index.json`."""
    weights = bert_folder / "finetuned"
    model = bert_model(1, len(bert_tokenizer()))
    model.load_state_dict({k: v.float() for k, v in load_file(weights / "model.safetensors").items()})
    (weights / "model.safetensors").unlink()
    model.half().save_pretrained(weights, max_shard_size=5000)
    assert len(list(weights.glob("model-*.safetensors"))) > 1
    return bert_folder


def test_a_sharded_checkpoint_loads_every_shard(sharded_folder, bert_folder):
    np.testing.assert_array_equal(load(sharded_folder).score(PROMPTS), load(bert_folder).score(PROMPTS))


def _index(folder: Path) -> tuple[Path, dict]:
    path = folder / "finetuned" / "model.safetensors.index.json"
    return path, json.loads(path.read_text())


def test_a_lost_or_inconsistent_shard_is_refused(sharded_folder):
    index_path, index = _index(sharded_folder)
    shard = sharded_folder / "finetuned" / index["weight_map"][HEAD]
    data = shard.read_bytes()
    shard.unlink()
    with pytest.raises(CorruptCheckpointError, match=rf"shard {shard.name} is missing"):
        load(sharded_folder)
    shard.write_bytes(data)
    index["weight_map"].pop(HEAD)  # the shard holds a tensor the index does not list
    index_path.write_text(json.dumps(index))
    with pytest.raises(CorruptCheckpointError, match=rf"present but not listed: \['{HEAD}'\]"):
        load(sharded_folder)
    index["weight_map"][HEAD] = "../model.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CorruptCheckpointError, match="not a file name beside the index"):
        load(sharded_folder)


def test_a_shard_set_without_the_head_is_incomplete(sharded_folder):
    index_path, index = _index(sharded_folder)
    shard = sharded_folder / "finetuned" / index["weight_map"].pop(HEAD)
    save_file(without(HEAD)(load_file(shard)), shard, metadata={"format": "pt"})
    index_path.write_text(json.dumps(index))
    with pytest.raises(IncompleteWeightsError, match=rf"missing tensors \(1\): {HEAD}"):
        load(sharded_folder)


def test_a_tokenizer_without_vocabulary_is_refused(bert_folder):
    weights = bert_folder / "finetuned"
    bert_tokenizer().save_pretrained(weights)
    assert load(bert_folder).score(PROMPTS).shape == (4,)
    (weights / "tokenizer.json").unlink()  # left: tokenizer_config.json, which loads as specials only
    with pytest.raises(TokenizerError, match=rf"{weights}: the tokenizer has no vocabulary besides its special"):
        load(bert_folder)


def test_a_malformed_tokenizer_file_is_refused(bert_folder):
    weights = bert_folder / "finetuned"
    bert_tokenizer().save_pretrained(weights)
    (weights / "tokenizer.json").write_text("[" * 100_000)
    with pytest.raises(TokenizerError, match=rf"{weights}: cannot load a tokenizer"):
        load(bert_folder)


CONFIGS = [
    ("auto_map: remote code", lambda c: {**c, "auto_map": {"AutoConfig": "x.Y"}}, "'auto_map' asks to run"),
    ("nested 100,000 deep", lambda c: "[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    ("nested 40 deep", lambda c: {**c, "x": json.loads("[" * 40 + "]" * 40)}, "nested deeper than 32 levels"),
    ("NaN", lambda c: {**c, "layer_norm_eps": float("nan")}, "NaN is not a number a config may hold"),
    ("not an object", lambda c: [c], "expected a JSON object"),
    ("unknown model type", lambda c: {**c, "model_type": "no-such-model"}, "transformers cannot read it"),
]


@pytest.mark.parametrize(("case", "change", "message"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_bad_model_config_is_refused_by_name(bert_folder, case, change, message):
    path = bert_folder / "finetuned" / "config.json"
    changed = change(json.loads(path.read_text()))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(WeightsConfigError, match=message) as caught:
        load(bert_folder)
    assert str(caught.value).startswith(str(path))


# ------------------------------------------------------------------------------------------------ lexical backend
@pytest.fixture
def lexical_folder(tmp_path: Path) -> Path:
    """A copy of the shipped default (lexical) predictor."""
    return Path(shutil.copytree(DEFAULT_PREDICTOR_DIR, tmp_path / "lexical"))


def test_lexical_checkpoint_must_be_exactly_weight_and_bias(lexical_folder):
    path = lexical_folder / "finetuned" / "model.safetensors"
    original = load_file(path)
    save_file({"weight": original["weight"]}, path)
    with pytest.raises(IncompleteWeightsError, match=r"missing tensors \(1\): bias"):
        load(lexical_folder)
    save_file({**original, "junk": torch.zeros(3)}, path)
    with pytest.raises(IncompleteWeightsError, match=r"unexpected tensors \(1\): junk"):
        load(lexical_folder)
    save_file({**original, "weight": original["weight"][:-1]}, path)
    with pytest.raises(IncompleteWeightsError, match=r"wrong shapes \(1\): weight"):
        load(lexical_folder)
    save_file({**original, "bias": original["bias"].to(torch.bfloat16)}, path)
    with pytest.raises(IncompleteWeightsError, match=r"bias: checkpoint BF16, model F16/F32/F64"):
        load(lexical_folder)
    save_file({**original, "bias": torch.full_like(original["bias"], float("nan"))}, path)
    with pytest.raises(NonFiniteWeightsError, match="bias"):
        load(lexical_folder)
    path.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="header too small"):
        load(lexical_folder)


def test_lexical_checkpoint_in_shards_scores_as_one_file(lexical_folder):
    weights = lexical_folder / "finetuned"
    expected = load(lexical_folder).score(PROMPTS)
    tensors = load_file(weights / "model.safetensors")
    (weights / "model.safetensors").unlink()
    save_file({"weight": tensors["weight"]}, weights / "model-00001-of-00002.safetensors")
    save_file({"bias": tensors["bias"]}, weights / "model-00002-of-00002.safetensors")
    weight_map = {"weight": "model-00001-of-00002.safetensors", "bias": "model-00002-of-00002.safetensors"}
    (weights / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    np.testing.assert_array_equal(load(lexical_folder).score(PROMPTS), expected)


LEXICAL_CONFIGS = [
    ("a list", lambda c: [c], "expected a JSON object"),
    ("hash_dim a string", lambda c: {**c, "hash_dim": "big"}, "'hash_dim' must be an integer >= 1, got 'big'"),
    ("hash_dim zero", lambda c: {**c, "hash_dim": 0}, "'hash_dim' must be an integer >= 1"),
    ("char_ngrams of zero", lambda c: {**c, "char_ngrams": [0]}, "'char_ngrams' must be a non-empty list"),
    ("word_ngrams missing", lambda c: {k: v for k, v in c.items() if k != "word_ngrams"}, "'word_ngrams'"),
    ("edge_words true", lambda c: {**c, "edge_words": True}, "'edge_words' must be an integer >= 0"),
    ("nested", lambda c: {**c, "x": json.loads("[" * 40 + "]" * 40)}, "nested deeper than 32 levels"),
    (
        "hash_dim Infinity",
        lambda c: json.dumps(c).replace(f'"hash_dim": {c["hash_dim"]}', '"hash_dim": Infinity'),
        "'hash_dim' must be an integer >= 1, got inf",
    ),
]


@pytest.mark.parametrize(("case", "change", "message"), LEXICAL_CONFIGS, ids=[c[0] for c in LEXICAL_CONFIGS])
def test_a_malformed_lexical_config_is_refused_by_name(lexical_folder, case, change, message):
    path = lexical_folder / "finetuned" / "lexical_config.json"
    changed = change(json.loads(path.read_text()))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(UsageConfigError, match=message) as caught:
        load(lexical_folder)
    assert str(caught.value).startswith(str(path))
