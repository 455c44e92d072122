"""Training: each loss's value and gradient on hand-made cases, a synthetic task every loss and family learns,
save/load round trips, determinism under a seed, data readers with auxiliary targets, and the train CLI."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import WORDS, bert_model, bert_tokenizer

from ltr_predictors import TraceFormatError
from ltr_predictors.cli import main
from ltr_predictors.data.examples import DataSource, Example, read_examples, split_examples
from ltr_predictors.data.traces import read_trace
from ltr_predictors.evaluation.metrics import kendall_tau
from ltr_predictors.predictor import LengthPredictor
from ltr_predictors.scoring.buckets import vllm_ltr_buckets
from ltr_predictors.scoring.length_scores import length_scores
from ltr_predictors.training.config import TrainingConfig
from ltr_predictors.training.losses import (
    LossConfigError,
    LossSpec,
    bucket_table,
    classification_loss,
    listmle_loss,
    margin_loss,
    regression_loss,
)
from ltr_predictors.training.provenance import Provenance
from ltr_predictors.training.trainables import make_trainable
from ltr_predictors.training.trainer import lr_schedule, scores_of, train, write_predictor


# ----------------------------------------------------------------------------------------------------- losses
def _grad(loss_fn, scores: list[float], *args) -> tuple[float, np.ndarray]:
    tensor = torch.tensor(scores, requires_grad=True)
    loss = loss_fn(tensor, *args)
    loss.backward()
    return float(loss.detach()), tensor.grad.numpy()


def test_listmle_value_and_gradient_push_the_longer_prompt_up() -> None:
    value, grad = _grad(listmle_loss, [2.0, 0.0], torch.tensor([10.0, 1.0]))
    p_long = math.exp(2) / (math.exp(2) + 1)
    assert value == pytest.approx(math.log1p(math.exp(-2)) / 2, rel=1e-5)
    np.testing.assert_allclose(grad, [(p_long - 1) / 2, (1 - p_long) / 2], rtol=1e-5)
    assert grad[0] < 0 < grad[1]  # descending the gradient raises the longer prompt's score


def test_listmle_ties_are_shuffled_by_the_generator() -> None:
    scores, lengths = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([5.0, 5.0, 5.0])
    values = {round(float(listmle_loss(scores, lengths, torch.Generator().manual_seed(s))), 5) for s in range(8)}
    assert len(values) > 1


def test_margin_loss_hinge_and_delta_filter() -> None:
    value, grad = _grad(margin_loss, [0.0, 0.0], torch.tensor([100.0, 10.0]), 1.0, 0.2)
    assert value == pytest.approx(1.0)
    np.testing.assert_allclose(grad, [-1.0, 1.0])
    value, grad = _grad(margin_loss, [3.0, 0.0], torch.tensor([100.0, 10.0]), 1.0, 0.2)
    assert value == 0.0 and not grad.any()  # margin already met
    value, grad = _grad(margin_loss, [0.0, 0.0], torch.tensor([100.0, 90.0]), 1.0, 0.2)
    assert value == 0.0 and not grad.any()  # relative difference 0.1 < delta: pair dropped
    value, _ = _grad(margin_loss, [0.0, 0.0], torch.tensor([100.0, 90.0]), 1.0, 0.0)
    assert value == pytest.approx(1.0)


def test_classification_loss_against_the_bucket_of_the_length() -> None:
    table = vllm_ltr_buckets(10)
    logits = torch.zeros(1, 10, requires_grad=True)
    loss = classification_loss(logits, torch.tensor([100.0]), table)  # 100 tokens: class 9
    loss.backward()
    assert loss.item() == pytest.approx(math.log(10))
    expected = np.full(10, 0.1)
    expected[9] -= 1.0
    np.testing.assert_allclose(logits.grad.numpy()[0], expected, rtol=1e-5)


def test_regression_loss_on_log_length() -> None:
    value, grad = _grad(regression_loss, [0.0], torch.tensor([math.e - 1]))
    assert value == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grad, [-2.0], rtol=1e-5)


def test_bucket_specs() -> None:
    assert bucket_table("820", []) == vllm_ltr_buckets(10)
    table = bucket_table("quantile:4", list(range(100)))
    assert len(table) == 4 and table[0][1] > table[-1][1]  # class 0 is the longest
    with pytest.raises(LossConfigError, match="quantile"):
        bucket_table("wide", [])
    with pytest.raises(LossConfigError, match="unknown loss"):
        LossSpec(name="hinge")


# ------------------------------------------------------------------------------------------- synthetic task
WORD_VALUE = {word: i for i, word in enumerate(WORDS)}


def synthetic(n: int, seed: int) -> list[Example]:
    """Six words per prompt; the output length is fixed by which words they are, not by how many."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        words = rng.choices(WORDS, k=6)
        length = 10.0 * math.exp(sum(WORD_VALUE[w] for w in words) / 12.0)
        examples.append(Example(prompt=" ".join(words), length=length, target=length))
    return examples


def tiny_bert_backbone(folder: Path) -> Path:
    tokenizer = bert_tokenizer()
    bert_model(1, len(tokenizer), seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def fit(backbone: str, spec: LossSpec, seed: int = 0, epochs: int = 8, lr: float = 0.05, n: int = 1000, **options):
    trainable = make_trainable(backbone, spec.num_labels, max_length=64, seed=seed, lexical={"hash_dim": 1 << 12})
    data, test = synthetic(n, seed=1), synthetic(200, seed=2)
    before = kendall_tau(
        scores_of(trainable, trainable.encode([e.prompt for e in test]), spec), [e.length for e in test]
    )
    config = TrainingConfig(epochs=epochs, batch_size=32, lr=lr, weight_decay=0.0, seed=seed, **options)
    result = train(trainable, data, test[:50], spec, config, progress=False)
    after = kendall_tau(
        scores_of(trainable, trainable.encode([e.prompt for e in test]), spec), [e.length for e in test]
    )
    return trainable, before, after, result


LOSS_SPECS = {
    "listmle": LossSpec("listmle"),
    "margin": LossSpec("margin", delta=0.2),
    "classification": LossSpec(
        "classification", buckets=bucket_table("quantile:5", [e.length for e in synthetic(400, 1)])
    ),
    "regression": LossSpec("regression"),
}


@pytest.mark.parametrize("loss", sorted(LOSS_SPECS))
def test_lexical_family_learns_the_synthetic_task_with_every_loss(loss: str) -> None:
    _, before, after, result = fit("lexical", LOSS_SPECS[loss], lr=0.2 if loss == "regression" else 0.05)
    assert np.isnan(before) or abs(before) < 0.2
    assert after > 0.8
    assert result.val_kendall_tau > 0.8


@pytest.mark.parametrize("loss", ["listmle", "margin"])
def test_transformer_backbone_learns_the_synthetic_task(loss: str, tmp_path: Path) -> None:
    backbone = str(tiny_bert_backbone(tmp_path / "tiny-bert"))
    _, before, after, _ = fit(backbone, LOSS_SPECS[loss], epochs=3, lr=3e-3, n=600)
    assert before < 0.3  # a random head ranks at random (or worse)
    assert after > 0.8


def test_warm_up_then_linear_decay() -> None:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = lr_schedule(optimizer, TrainingConfig(warmup_steps=4, lr_schedule="linear"), total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    np.testing.assert_allclose(rates, [0.25, 0.45, 0.6, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], atol=1e-9)
    constant = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    lr_schedule(constant, TrainingConfig(), total_steps=10)
    assert constant.param_groups[0]["lr"] == 0.5


def test_bad_schedule_or_autocast_names_the_value() -> None:
    with pytest.raises(ValueError, match="'cosine'"):
        TrainingConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match="'int8'"):
        TrainingConfig(autocast="int8")


def test_bf16_autocast_clipping_and_schedule_still_learn(tmp_path: Path) -> None:
    """The LLM recipe's settings (bf16 autocast, clipped gradients, warm-up + linear decay) on the tiny BERT."""
    backbone = str(tiny_bert_backbone(tmp_path / "tiny-bert"))
    options = {"autocast": "bfloat16", "max_grad_norm": 1.0, "warmup_steps": 5, "lr_schedule": "linear"}
    trainable, before, after, _ = fit(backbone, LOSS_SPECS["margin"], epochs=3, lr=3e-3, n=600, **options)
    assert before < 0.3
    assert after > 0.8
    assert next(trainable.module.parameters()).dtype == torch.float32  # autocast leaves the weights in fp32


# ------------------------------------------------------------------------------------ save, load, determinism
@pytest.mark.parametrize("backbone", ["lexical", "bert"])
def test_saved_predictor_loads_and_scores_identically(backbone: str, tmp_path: Path) -> None:
    name = str(tiny_bert_backbone(tmp_path / "tiny-bert")) if backbone == "bert" else "lexical"
    spec = LOSS_SPECS["margin"]
    trainable, _, _, _ = fit(name, spec, epochs=1, lr=3e-3 if backbone == "bert" else 0.05, n=200)
    folder = write_predictor(
        tmp_path / "out",
        trainable,
        spec,
        max_length=64,
        license_block={"license": "apache-2.0"},
        provenance=Provenance(recipe="test"),
    )
    prompts = [e.prompt for e in synthetic(20, seed=3)] + ["", "Write a long essay."]
    expected = length_scores(trainable.scorer().raw(prompts), "rank", direction="higher_is_longer")
    loaded = LengthPredictor.from_pretrained(folder)
    np.testing.assert_allclose(loaded.score(prompts), expected, rtol=1e-6, atol=1e-6)
    assert loaded.info.provenance["recipe"] == "test"
    usage = json.loads((folder / "usage_config.json").read_text())["model"]
    assert set(usage) == {"pred_model", "num_labels", "mtype", "activation", "path", "max_length", "max_batch_size"}
    if backbone == "bert":  # vllm-ltr reads raw logits as higher = shorter: the saved head must say so
        assert loaded.info.score_direction == "higher_is_shorter"
        np.testing.assert_allclose(loaded.scorer.raw(prompts)[:, 0], -expected, rtol=1e-6, atol=1e-6)
    assert loaded.info.license.license == "apache-2.0"
    if backbone == "lexical":
        assert loaded.info.backend == "lexical"
        assert (folder / "finetuned" / "model.safetensors").stat().st_size < 2_000_000


def _weights(trainable) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainable.module.parameters()]


@pytest.mark.parametrize("loss", ["listmle", "margin"])
def test_same_seed_same_weights(loss: str) -> None:
    first = _weights(fit("lexical", LOSS_SPECS[loss], seed=5, epochs=2, n=300)[0])
    second = _weights(fit("lexical", LOSS_SPECS[loss], seed=5, epochs=2, n=300)[0])
    other = _weights(fit("lexical", LOSS_SPECS[loss], seed=6, epochs=2, n=300)[0])
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


# ------------------------------------------------------------------------------------------------ data readers
def write_castillo(path: Path) -> Path:
    """Two models answer prompts p0..p29 with 10 samples each; model B only answers p30..p39."""
    with gzip.open(path, "wt") as handle:
        for i in range(40):
            for model, scale in (("A", 1.0), ("B", 3.0)):
                if model == "A" and i >= 30:
                    continue
                samples = [int(scale * (10 + i + k)) for k in range(10)]
                row = {
                    "id": f"c{i}",
                    "prompt": f"prompt {i}",
                    "model": model,
                    "output_tokens": samples,
                    "dataset": "Mbpp" if i % 2 else "Alpaca",
                }
                handle.write(json.dumps(row) + "\n")
    return path


def test_castillo_records_target_model_and_reducers(tmp_path: Path) -> None:
    path = write_castillo(tmp_path / "records.jsonl.gz")
    mean = read_examples(DataSource(path=path.name, target_model="A"), root=tmp_path)
    assert len(mean) == 30 and {e.dataset for e in mean} == {"Alpaca", "Mbpp"}
    first = next(e for e in mean if e.prompt == "prompt 0")
    assert first.length == pytest.approx(14.5) and first.target == pytest.approx(14.5)
    sample = read_examples(DataSource(path=str(path), target_model="A", target="sample"))
    assert next(e for e in sample if e.prompt == "prompt 0").length == 10.0
    with pytest.raises(ValueError, match="several models"):
        read_examples(DataSource(path=str(path)))


def test_auxiliary_targets_blend_and_label_unanswered_prompts(tmp_path: Path) -> None:
    path = write_castillo(tmp_path / "records.jsonl.gz")
    examples = read_examples(DataSource(path=str(path), target_model="A", aux_weight=0.5, aux_only=True))
    assert len(examples) == 40
    aux_only = [e for e in examples if e.target is None]
    assert len(aux_only) == 10 and all(e.length > 0 for e in aux_only)
    ordered = sorted(examples, key=lambda e: int(e.prompt.split()[1]))
    assert all(a.length < b.length for a, b in itertools.pairwise(ordered))  # B's order carries over


def test_files_joined_by_id_and_hash_splits(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(json.dumps({"id": f"a{i}", "prompt": f"q {i}", "output_tokens": 5 + i}) + "\n" for i in range(50))
    )
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("id,model,output_tokens\n" + "".join(f"a{i},other,{100 - i}\n" for i in range(50)))
    plain = read_examples(DataSource(path=str(trace)))
    blended = read_examples(DataSource(path=str(trace), aux=[str(lengths)], aux_weight=1.0))
    assert [e.length for e in plain] != [e.length for e in blended]
    splits = split_examples(plain, val_fraction=0.2, test_fraction=0.2)
    assert sum(len(v) for v in splits.values()) == 50 and all(splits.values())
    assert splits == split_examples(plain, val_fraction=0.2, test_fraction=0.2)


# --------------------------------------------------------------------------------------------------------- CLI
def test_train_and_eval_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(json.dumps({"prompt": e.prompt, "output_tokens": e.length}) + "\n" for e in synthetic(300, seed=4))
    )
    out = tmp_path / "pred"
    code = main(
        [
            "train",
            "--data",
            str(trace),
            "--backbone",
            "lexical",
            "--loss",
            "listmle",
            "--epochs",
            "6",
            "--lr",
            "0.05",
            "--max-length",
            "256",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1].startswith("val_kendall_tau=")
    config = json.loads((out / "ltr_config.json").read_text())
    assert config["backend"] == "lexical" and config["provenance"]["hyperparameters"]["seed"] == 0
    assert config["provenance"]["training"]["val_kendall_tau"] > 0.8
    code = main(
        [
            "eval",
            "--predictor",
            str(out),
            "--predictor",
            str(out),
            "--data",
            str(trace),
            "--split",
            "test",
            "--plot",
            str(tmp_path / "cmp.png"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| predictor | data |" in printed and (tmp_path / "cmp.png").stat().st_size > 0
    assert float(printed.strip().splitlines()[-1].split("=")[1]) > 0.8


def test_vllm_ltr_traces_are_counted_with_a_tokenizer(tmp_path: Path) -> None:
    trace = tmp_path / "vllm-ltr.jsonl"
    trace.write_text("".join(json.dumps({"prompt": f"q{i}", "generated": "word " * i}) + "\n" for i in range(1, 6)))
    examples = read_examples(DataSource(path=str(trace)), count_tokens=lambda text: len(text.split()))
    assert [e.length for e in examples] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [r.length for r in read_trace(trace, count_tokens=lambda text: len(text.split()))] == [1, 2, 3, 4, 5]
    for read in (lambda: read_examples(DataSource(path=str(trace))), lambda: read_trace(trace)):  # one row parser
        with pytest.raises(TraceFormatError, match=f"{trace}:1: record has 'generated' text but no 'output_tokens'"):
            read()


def test_lexical_featurizer_settings_round_trip_and_edge_words() -> None:
    from ltr_predictors.scoring.lexical import LexicalFeaturizer

    featurizer = LexicalFeaturizer(hash_dim=1 << 10, edge_words=2)
    assert LexicalFeaturizer.from_dict(featurizer.to_dict(), "test") == featurizer
    old = {k: v for k, v in featurizer.to_dict().items() if k != "edge_words"}
    assert LexicalFeaturizer.from_dict(old, "test").edge_words == 0  # files written before the option load
    plain = LexicalFeaturizer(hash_dim=1 << 10)
    a, b = "explain gravity briefly", "briefly explain gravity"
    assert len(featurizer.features(a)[0]) > len(plain.features(a)[0])  # position-tagged first/last words
    assert not np.array_equal(featurizer.features(a)[0], featurizer.features(b)[0])
