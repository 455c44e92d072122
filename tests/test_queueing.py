"""The batched-server simulator behind the demo's "what it buys" panel: hand-checked cases and calibration files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltr_predictors.benchmarks.queueing import CalibrationError, ServerModel, latency_summary, simulate

ONE_AT_A_TIME = ServerModel(max_num_seqs=1, step_base_s=0.0, step_per_seq_s=1.0)


def test_one_slot_server_is_a_plain_queue() -> None:
    lengths = [3, 1, 2]
    np.testing.assert_allclose(simulate(lengths, [0, 1, 2], ONE_AT_A_TIME), [3, 4, 6])
    np.testing.assert_allclose(simulate(lengths, [1, 2, 0], ONE_AT_A_TIME), [6, 1, 3])


def test_batched_steps_cost_base_plus_per_sequence() -> None:
    """Two slots, step = 1 + 1 * running: lengths 2, 1, 1 admitted in order.

    t=0: requests 0 and 1 run (step 3 s); after one step request 1 ends (t=3) and 2 joins; one more step of two
    running ends both 0 and 2 (t=6)."""
    server = ServerModel(max_num_seqs=2, step_base_s=1.0, step_per_seq_s=1.0)
    np.testing.assert_allclose(simulate([2, 1, 1], [0, 1, 2], server), [6, 3, 6])


def test_shortest_first_beats_fcfs_and_oracle_is_best() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.lognormal(4, 1, size=200)
    noisy = np.log(lengths) + rng.normal(0, 0.5, size=200)
    summary = latency_summary(lengths, noisy, ServerModel(max_num_seqs=8, step_base_s=0.01, step_per_seq_s=0.002))
    assert summary["oracle"]["mean_s"] <= summary["predicted"]["mean_s"] < summary["fcfs"]["mean_s"]
    assert all(v["p90_s"] >= v["mean_s"] * 0.5 for v in summary.values())


def test_calibration_files(tmp_path: Path) -> None:
    shipped = ServerModel.from_file()
    assert shipped.max_num_seqs >= 1 and shipped.step_seconds(1) > 0 and shipped.provenance
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"max_num_seqs": 8, "decode_tokens_per_s": 2500}))
    model = ServerModel.from_file(bench)
    assert model.step_base_s == 0 and model.step_per_seq_s == pytest.approx(1 / 2500)
    bench.write_text(json.dumps({"max_num_seqs": 8}))
    with pytest.raises(CalibrationError, match="decode_tokens_per_s"):
        ServerModel.from_file(bench)
    bench.write_text("{not json")
    with pytest.raises(CalibrationError, match=r"bench\.json"):
        ServerModel.from_file(bench)


def test_saved_bench_results_calibrate_the_server(tmp_path: Path) -> None:
    results = {
        "config": {"engine": {"max_num_seqs": 8}, "title": "tiny engine"},
        "policies": {"fcfs": {"tpot": {"mean": 0.002, "p50": 0.002}}, "oracle": {"tpot": {"mean": 0.009}}},
    }
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    model = ServerModel.from_file(saved)
    assert model.max_num_seqs == 8
    assert model.step_seconds(8) == pytest.approx(0.002)  # a full batch steps once per FCFS TPOT
    del results["policies"]["fcfs"]
    saved.write_text(json.dumps(results))
    with pytest.raises(CalibrationError, match=r"policies\.fcfs\.tpot\.mean"):
        ServerModel.from_file(saved)
