"""`ltr-predictors ceiling`: the cross-model and self-agreement reference points on hand-made traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltr_predictors.cli import main
from ltr_predictors.data.examples import DataSource
from ltr_predictors.evaluation.ceilings import cross_model, self_agreement


def write_trace(path: Path, n: int = 30) -> Path:
    """Model `t` (the target, 4 samples each), `same` (twice t's lengths) and `reversed` (the opposite order)."""
    rows = []
    for i in range(n):
        base = 10 + 7 * i
        rows.append({"prompt": f"prompt {i}", "model": "t", "output_tokens": [base, base + 1, base, base + 1]})
        rows.append({"prompt": f"prompt {i}", "model": "same", "output_tokens": [2 * base]})
        if i % 2:  # answers only half the prompts: the estimate of the others comes from `same` alone
            rows.append({"prompt": f"prompt {i}", "model": "reversed", "output_tokens": [1000 - base]})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_cross_model_follows_the_other_models(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.jsonl")
    agreeing = cross_model(DataSource(path=str(trace), target_model="t"))
    assert agreeing["n"] == 30 and 0.0 < agreeing["kendall_tau"] < 1.0  # `reversed` pulls half the prompts
    only_same = tmp_path / "only_same.jsonl"
    only_same.write_text("\n".join(r for r in trace.read_text().splitlines() if '"reversed"' not in r))
    assert cross_model(DataSource(path=str(only_same), target_model="t"))["kendall_tau"] == pytest.approx(1.0)


def test_self_agreement_of_the_samples(tmp_path: Path) -> None:
    summary = self_agreement(write_trace(tmp_path / "trace.jsonl"), model="t")
    assert summary is not None
    assert summary["half_means"]["n"] == 30
    assert summary["half_means"]["kendall_tau"] == pytest.approx(1.0)
    assert summary["sample_vs_sample"]["kendall_tau"] == pytest.approx(1.0)
    assert self_agreement(write_trace(tmp_path / "trace.jsonl"), model="same") is None  # one sample per prompt


def test_ceiling_cli_prints_the_summary_and_the_figure_last(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trace = write_trace(tmp_path / "trace.jsonl")
    assert (
        main(["ceiling", "--data", str(trace), "--target-model", "t", "--split", "test", "--test-fraction", "0.5"]) == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads("\n".join(out[:-1]))
    assert 0 < summary["cross_model"]["n"] < 30  # only the test split's prompts
    assert out[-1] == f"cross_model_tau={summary['cross_model']['kendall_tau']:.4f}"
