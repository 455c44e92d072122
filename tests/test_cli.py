"""The `ltr-predictors` CLI as a user runs it: score, info, eval, and clean errors on bad input."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings

import numpy as np
import pytest
from tiny_models import write_seed_predictor, write_tokenizer_repo

from ltr_predictors.benchmarks.serving.replayed_scores import ReplayedScores, ScoreTableError, ScoringTime
from ltr_predictors.cli import main
from ltr_predictors.errors import PredictorSpecError
from ltr_predictors.evaluation.metrics import rank_correlation
from ltr_predictors.loading.hub import PredictorSpec
from ltr_predictors.predictor import LengthPredictor


@pytest.fixture
def predictor_dir(tmp_path):
    tokenizer = write_tokenizer_repo(tmp_path / "tok", "bert")
    folder = write_seed_predictor(tmp_path / "pred", "bert", pred_model=str(tokenizer))
    (folder / "ltr_config.json").write_text('{"license": {"license": "apache-2.0"}}')
    return folder


def test_score_writes_one_line_per_prompt(predictor_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": f"p{i}", "prompt": "hello " * i}) for i in range(5)) + "\n")
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--predictor", str(predictor_dir), "--input", str(prompts), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)]
    assert sorted(r["rank"] for r in rows) == list(range(5))
    assert [r["prompt_sha1"] for r in rows] == [hashlib.sha1(("hello " * i).encode()).hexdigest() for i in range(5)]
    txt = tmp_path / "prompts.txt"
    txt.write_text("one\ntwo three\n")
    assert main(["score", "--predictor", str(predictor_dir), "--input", str(txt)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def scores_file(predictor_dir, tmp_path, texts):
    """`score`'s output for these prompts, written through the CLI."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": t}) for t in texts))
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--predictor", str(predictor_dir), "--input", str(prompts), "--output", str(out)]) == 0
    return out


def test_score_output_replays_the_same_scores(predictor_dir, tmp_path):
    texts = ["a short one", "write a long story about the sea and the stars", "list three fruits"]
    out = scores_file(predictor_dir, tmp_path, texts)
    replayed = ReplayedScores.from_file(out)
    expected = LengthPredictor.from_pretrained(predictor_dir).score(list(reversed(texts)))
    np.testing.assert_allclose(replayed.score(list(reversed(texts))), expected, rtol=1e-12)
    with pytest.raises(ScoreTableError, match="no score for 1 of 2 prompts"):
        replayed.score([texts[0], "never scored"])
    assert replayed.name == "scores replayed from scores.jsonl (scoring time not included)"


def test_replayed_scores_wait_the_scoring_time_given(predictor_dir, tmp_path):
    """With a `ScoringTime`, a batch of n prompts takes at least per_batch + n * per_prompt ms; lookup does not."""
    texts = ["one", "two words", "three more words"]
    out = scores_file(predictor_dir, tmp_path, texts)
    timed = ReplayedScores.from_file(out, ScoringTime(per_batch_ms=40, per_prompt_ms=20))
    assert "(scoring time emulated: 40 ms per batch + 20 ms per prompt)" in timed.name
    start = time.perf_counter()
    scores = timed.score(texts)
    assert time.perf_counter() - start >= 0.1
    np.testing.assert_array_equal(scores, ReplayedScores.from_file(out).score(texts))
    np.testing.assert_array_equal(timed.lookup(texts), scores)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"score": 1.0}', "scores.jsonl:1: missing 40-character 'prompt_sha1'"),
        ('{"prompt_sha1": "' + "a" * 40 + '", "score": "high"}', "scores.jsonl:1: 'score' must be a finite number"),
        ('{"prompt_sha1": "' + "a" * 40 + '", "score": NaN}', "scores.jsonl:1: 'score' must be a finite number"),
        ("not json", "scores.jsonl:1"),
        ("", "scores.jsonl: no scores"),
    ],
)
def test_malformed_scores_file_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "scores.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ScoreTableError, match=re.escape(message)):
        ReplayedScores.from_file(path)


def test_score_takes_a_dtype(predictor_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join("hello world " * i for i in range(1, 7)) + "\n")
    scores = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"{dtype}.jsonl"
        args = ["score", "--predictor", str(predictor_dir), "--input", str(prompts), "--output", str(out)]
        assert main([*args, "--dtype", dtype]) == 0
        scores[dtype] = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    assert scores["bfloat16"] == pytest.approx(scores["float32"], abs=0.05)


def test_bench_score_bfloat16_reports_both_speedups_and_score_agreement(tmp_path, capsys):
    trace = tmp_path / "trace.jsonl"
    prompts = ["what is the capital of france", "write a short poem about rain", "explain python lists to me"]
    trace.write_text("".join(json.dumps({"prompt": p, "output_tokens": 10}) + "\n" for p in prompts))
    out = tmp_path / "bench.json"
    args = ["bench-score", "--data", str(trace), "--batch-size", "2", "--shapes", "bert-base", "--output", str(out)]
    assert main([*args, "--dtype", "bfloat16", "--device", "cpu"]) == 0
    (result,) = json.loads(out.read_text())
    assert result["dtype"] == "bfloat16" and result["num_prompts"] == 3
    for key in ("batched_prompts_per_s", "fp32_batched_prompts_per_s", "naive_prompts_per_s"):
        assert result[key] > 0
    assert result["speedup"] == pytest.approx(result["batched_prompts_per_s"] / result["naive_prompts_per_s"])
    assert result["batching_speedup"] == pytest.approx(
        result["fp32_batched_prompts_per_s"] / result["naive_prompts_per_s"]
    )
    assert result["kendall_tau_vs_fp32"] > 0.5
    assert 0 <= result["max_abs_diff_vs_fp32"] < 0.1
    printed = capsys.readouterr().out
    assert "batching alone" in printed and "device: cpu," in printed


def test_info_prints_license_first(predictor_dir, capsys):
    assert main(["info", str(predictor_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert next(iter(info)) == "license"
    assert info["license"]["license"] == "apache-2.0" and info["commercial_use"] is True
    assert info["usage_config"]["model"]["mtype"] == "rank"


def test_eval_prints_summary_and_tau_line(predictor_dir, tmp_path, capsys):
    trace = tmp_path / "trace.jsonl"
    rows = [
        {"prompt": f"write {'long ' * i}essay", "output_tokens": [i, i + 2], "dataset": "ab"[i % 2]} for i in range(12)
    ]
    trace.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["eval", "--predictor", str(predictor_dir), "--data", str(trace)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("kendall_tau=")
    summary = json.loads("\n".join(out[:-1]))
    assert summary["n"] == 12 and set(summary["per_dataset"]) == {"a", "b"}
    assert float(out[-1].split("=")[1]) == pytest.approx(summary["kendall_tau"], abs=1e-4)


def test_eval_counts_generated_tokens_with_the_named_tokenizer(predictor_dir, tmp_path, capsys):
    tokenizer = write_tokenizer_repo(tmp_path / "len-tok", "bert")
    trace = tmp_path / "vllm-ltr.jsonl"
    trace.write_text("\n".join(json.dumps({"prompt": f"q{i}", "generated": "yes " * i}) for i in range(1, 6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(
                ["eval", "--predictor", str(predictor_dir), "--data", str(trace), "--length-tokenizer", str(tokenizer)]
            )
            == 0
        )
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("kendall_tau=")
    assert main(["eval", "--predictor", str(predictor_dir), "--data", str(trace)]) == 2  # no tokenizer named


def test_bad_input_is_one_line_not_a_traceback(predictor_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "ok", "output_tokens": 3}\n{oops\n')
    assert main(["eval", "--predictor", str(predictor_dir), "--data", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:2: not valid JSON" in err and "Traceback" not in err
    assert main(["info", "no/such:spec@"]) == 2


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("org/repo", ("org/repo", None, None)),
        ("org/repo:sub", ("org/repo", "sub", None)),
        ("org/repo:sub/deeper@v1.0", ("org/repo", "sub/deeper", "v1.0")),
        ("org/repo@0123abcd", ("org/repo", None, "0123abcd")),
        ("bert-base-uncased", ("bert-base-uncased", None, None)),
    ],
)
def test_spec_parsing(spec, expected):
    parsed = PredictorSpec.parse(spec)
    assert (parsed.repo_id, parsed.subfolder, parsed.revision) == expected
    assert str(parsed) == spec


@pytest.mark.parametrize("spec", ["", "org/repo:", "org/repo@", "a/b/c", "org/re po"])
def test_bad_specs(spec):
    with pytest.raises(PredictorSpecError):
        PredictorSpec.parse(spec)


def test_rank_correlation_sign_and_degenerate_cases():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40])["kendall_tau"] == pytest.approx(1.0)
    assert rank_correlation([4, 3, 2, 1], [10, 20, 30, 40])["kendall_tau"] == pytest.approx(-1.0)
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3])["kendall_tau"])  # constant scores rank nothing
