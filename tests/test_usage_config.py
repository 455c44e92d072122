"""vllm-ltr's usage_config.json and our ltr_config.json: exact format, validation errors, round trips."""

from __future__ import annotations

import json
import re

import pytest

from ltr_predictors.errors import UnknownFamilyError, UsageConfigError
from ltr_predictors.loading.ltr_config import LTRConfig
from ltr_predictors.loading.usage_config import UsageConfig
from ltr_predictors.scoring.buckets import label_of_length, quantile_buckets, vllm_ltr_buckets

SEED = {
    "model": {
        "pred_model": "facebook/opt-125m",
        "num_labels": 1,
        "mtype": "rank",
        "activation": None,
        "path": "MODEL/results/run/finetuned",
        "max_length": 2048,
        "max_batch_size": 1000,
    }
}


def test_seed_format_round_trips_exactly(tmp_path):
    (tmp_path / "usage_config.json").write_text(json.dumps(SEED))
    config = UsageConfig.from_file(tmp_path / "usage_config.json")
    assert (config.pred_model, config.mtype, config.max_length) == ("facebook/opt-125m", "rank", 2048)
    config.save(tmp_path)
    assert json.loads((tmp_path / "usage_config.json").read_text()) == SEED  # same 7 fields, nothing added
    assert list(json.loads((tmp_path / "usage_config.json").read_text())["model"]) == list(SEED["model"])


def test_defaults_and_unknown_fields_are_kept(tmp_path):
    data = {"model": {"pred_model": "x", "num_labels": 1, "mtype": "rank", "future": 3}, "other": {"a": 1}}
    config = UsageConfig.from_dict(data)
    assert (config.max_length, config.max_batch_size, config.path) == (1024, 512, "")
    written = config.to_dict()
    assert written["model"]["future"] == 3 and written["other"] == {"a": 1}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"num_labels": 1}, "missing field 'model.mtype'"),
        ({"mtype": "rank"}, "missing field 'model.num_labels'"),
        ({"mtype": "rank", "num_labels": 3}, "'model.num_labels' must be 1"),
        ({"mtype": "class", "num_labels": 1}, "must be >= 2"),
        ({"mtype": "rank", "num_labels": "1"}, "'model.num_labels' must be an integer"),
        ({"mtype": "rank", "num_labels": 1, "max_length": 0}, "'model.max_length'"),
        ({"mtype": "rank", "num_labels": 1, "pred_model": 5}, "'model.pred_model'"),
        ({"mtype": "rank", "num_labels": 1, "activation": "relu6"}, "'model.activation'"),
    ],
)
def test_bad_fields_are_named(model, message):
    with pytest.raises(UsageConfigError, match=message) as err:
        UsageConfig.from_dict({"model": model}, where="some/usage_config.json")
    assert "some/usage_config.json" in str(err.value)


def test_unknown_mtype_has_its_own_error():
    with pytest.raises(UnknownFamilyError, match=r"unknown 'model\.mtype' 'coral'"):
        UsageConfig.from_dict({"model": {"mtype": "coral", "num_labels": 1}})


def test_malformed_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "usage_config.json"
    bad.write_text("{not json")
    with pytest.raises(UsageConfigError, match=f"{bad}: not valid JSON"):
        UsageConfig.from_file(bad)
    with pytest.raises(UsageConfigError, match=r"no usage_config\.json"):
        UsageConfig.from_file(tmp_path / "nowhere" / "usage_config.json")
    bad.write_text("[1, 2]")
    with pytest.raises(UsageConfigError, match="'model' object"):
        UsageConfig.from_file(bad)


def test_ltr_config_round_trip_keeps_unknown_fields(tmp_path):
    config = LTRConfig(
        score_direction="higher_is_longer",
        buckets=quantile_buckets([1, 5, 10, 50, 100, 500], 3),
        license={"license": "apache-2.0"},
        provenance={"backbone": "bert-base-uncased", "seed": 3},
        extra={"from_the_future": [1]},
    )
    config.save(tmp_path)
    again = LTRConfig.from_folder(tmp_path, num_labels=3)
    assert again == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"score_direction": "up"}, "'score_direction'"),
        ({"backend": "onnx"}, "unknown 'backend'"),
        ({"buckets": [[0, 10]]}, "'buckets' must list 2"),
        ({"buckets": [[10, 5], [0, 3]]}, r"'buckets\[0\]'"),
        ({"license": "mit"}, "'license' must be an object"),
    ],
)
def test_ltr_config_bad_fields(data, message):
    with pytest.raises(UsageConfigError, match=message):
        LTRConfig.from_dict(data, num_labels=2)


def test_vllm_ltr_bucket_table_matches_its_labels():
    table = vllm_ltr_buckets(10)
    assert table[9] == (0, 820) and table[1] == (6560, 7380) and table[0] == (7380, 8192)
    for length in (0, 819, 820, 4000, 7379, 7380, 8191, 20000):
        assert label_of_length(length, table) == 9 - min(8192, length) // 820
    assert len(vllm_ltr_buckets(82)) == 82 and vllm_ltr_buckets(82)[81] == (0, 100)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
        ('{"model": {"mtype": "rank", "num_labels": 1, "x": ' + "[" * 40 + "]" * 40 + "}}", "nested deeper than 32"),
        ('{"model": {"mtype": "rank", "num_labels": 1,}}', "not valid JSON"),
        ('{"model": {"mtype": "rank", "num_labels": 1, "max_length": NaN}}', "'model.max_length' must be an integer"),
    ],
    ids=["100k deep", "40 deep", "trailing comma", "NaN length"],
)
def test_config_files_that_are_not_plain_shallow_json_are_named(tmp_path, text, message):
    for name, read in [
        ("usage_config.json", lambda: UsageConfig.from_file(tmp_path / "usage_config.json")),
        ("ltr_config.json", lambda: LTRConfig.from_folder(tmp_path, num_labels=1)),
    ]:
        if name == "ltr_config.json" and "NaN" in text:
            continue  # ltr_config.json has no length field
        (tmp_path / name).write_text(text)
        with pytest.raises(UsageConfigError, match=re.escape(f"{tmp_path / name}: ") + ".*" + re.escape(message)):
            read()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e999", "true", "0.5"])
def test_a_bucket_table_file_with_a_non_count_is_named(tmp_path, value):
    (tmp_path / "ltr_config.json").write_text('{"buckets": [[10, 20], [0, ' + value + "]]}")
    with pytest.raises(UsageConfigError, match=re.escape(f"{tmp_path / 'ltr_config.json'}: 'buckets[1]' must be")):
        LTRConfig.from_folder(tmp_path, num_labels=2)


def test_an_undefined_metric_in_provenance_still_loads(tmp_path):
    """The trainer records an undefined validation tau as NaN (Python's JSON): such files stay readable."""
    (tmp_path / "ltr_config.json").write_text('{"provenance": {"val_kendall_tau": NaN}}')
    assert LTRConfig.from_folder(tmp_path, num_labels=1).provenance["val_kendall_tau"] != 0


@pytest.mark.parametrize(
    "pair",
    [[0, float("nan")], [0, float("inf")], [True, 5], [0.5, 10], [0, "10"], [-1, 10]],
    ids=["nan", "inf", "bool", "fraction", "string", "negative"],
)
def test_bucket_tables_hold_whole_finite_token_counts(pair):
    with pytest.raises(UsageConfigError, match=r"'buckets\[1\]' must be \[min_tokens, max_tokens\]"):
        LTRConfig.from_dict({"buckets": [[10, 20], pair]}, num_labels=2)
    assert LTRConfig.from_dict({"buckets": [[10.0, 20], [0, 10]]}, num_labels=2).buckets == [(10, 20), (0, 10)]
