"""Distillation (`--teacher SPEC --teacher-weight W`): a teacher's scores, put on the target's log-length scale, are
blended into the training labels; the teacher sees only training prompts, and its license binds the student."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from test_training import synthetic
from tiny_models import write_seed_predictor, write_tokenizer_repo

import ltr_predictors.training.distillation as distillation
from ltr_predictors.cli import main
from ltr_predictors.data.examples import Example
from ltr_predictors.data.splits import split_of
from ltr_predictors.errors import RecipeError
from ltr_predictors.evaluation.metrics import kendall_tau
from ltr_predictors.predictor import LengthPredictor

LEXICAL = ["--backbone", "lexical", "--loss", "margin", "--lr", "0.05", "--max-length", "256", "--epochs", "6"]


def test_teacher_labels_take_the_targets_scale_and_blend_in_log_length() -> None:
    targets = [5.0, 20.0, 80.0, 300.0]
    examples = [Example(prompt=f"p{i}", length=t, target=t) for i, t in enumerate(targets)]
    scores = 2.0 * np.log1p(targets) + 3.0  # a teacher that ranks perfectly, on its own scale
    mapped = [e.length for e in distillation.teacher_labels(examples, scores, weight=1.0)]
    np.testing.assert_allclose(mapped, targets, rtol=1e-9)  # same mean and spread in log length: the targets again
    kept = distillation.teacher_labels(examples, scores[::-1].copy(), weight=0.0)
    np.testing.assert_allclose([e.length for e in kept], targets, rtol=1e-12)
    half = distillation.teacher_labels(examples, scores[::-1].copy(), weight=0.5)
    flipped = [e.length for e in distillation.teacher_labels(examples, scores[::-1].copy(), weight=1.0)]
    for example, own, teacher in zip(half, targets, flipped, strict=True):
        assert math.log1p(example.length) == pytest.approx((math.log1p(own) + math.log1p(teacher)) / 2)
    unlabelled = [*examples, Example(prompt="other models only", length=40.0, target=None)]
    assert distillation.teacher_labels(unlabelled, np.append(scores, 0.0), weight=1.0)[-1].length != 40.0
    with pytest.raises(RecipeError, match="3 scores for 4 training prompts"):
        distillation.teacher_labels(examples, scores[:3], weight=0.5)


def write_trace(path: Path, examples: list[Example], lengths: list[float]) -> Path:
    rows = [{"prompt": e.prompt, "output_tokens": n} for e, n in zip(examples, lengths, strict=True)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_student_learns_the_teachers_order_from_labels_that_are_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The student's labels are random; only the teacher (trained on the true lengths) carries the signal."""
    clean = synthetic(600, seed=4)
    teacher = tmp_path / "teacher"
    assert main(["train", "--data", str(write_trace(tmp_path / "clean.jsonl", clean, [e.length for e in clean])),
                 *LEXICAL, "--out", str(teacher)]) == 0  # fmt: skip
    rng = random.Random(0)
    noisy = write_trace(tmp_path / "noisy.jsonl", clean, [rng.uniform(1, 500) for _ in clean])
    seen: list[list[str]] = []
    teacher_labels = distillation.teacher_labels
    monkeypatch.setattr(
        distillation,
        "teacher_labels",
        lambda ex, scores, w: seen.append([e.prompt for e in ex]) or teacher_labels(ex, scores, w),
    )
    student, plain = tmp_path / "student", tmp_path / "plain"
    assert main(["train", "--data", str(noisy), *LEXICAL, "--teacher", str(teacher), "--teacher-weight", "1",
                 "--out", str(student)]) == 0  # fmt: skip
    assert main(["train", "--data", str(noisy), *LEXICAL, "--out", str(plain)]) == 0

    held_out = synthetic(300, seed=9)
    truth = [e.length for e in held_out]
    taus = {
        name: kendall_tau(LengthPredictor.from_pretrained(folder).score([e.prompt for e in held_out]), truth)
        for name, folder in {"student": student, "plain": plain}.items()
    }
    assert taus["student"] > 0.6 and abs(taus["plain"]) < 0.2, taus
    (prompts,) = seen  # the teacher scored once, the training prompts only
    assert prompts and all(split_of(p, 0.1, 0.1) == "train" for p in prompts)
    config = json.loads((student / "ltr_config.json").read_text())
    assert config["provenance"]["hyperparameters"]["teacher"] == str(teacher)
    assert config["provenance"]["hyperparameters"]["teacher_weight"] == 1.0
    assert {"source": f"teacher {teacher}", "license": "apache-2.0", "attribution": None} in config["license"][
        "data_licenses"
    ]


def test_a_students_license_is_never_looser_than_its_teachers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = write_tokenizer_repo(tmp_path / "opt-tokenizer", "opt")
    teacher = write_seed_predictor(tmp_path / "opt-teacher", "opt", pred_model=str(tokenizer))
    trace = write_trace(tmp_path / "trace.jsonl", synthetic(200, seed=4), [e.length for e in synthetic(200, seed=4)])
    command = ["train", "--data", str(trace), *LEXICAL, "--epochs", "1", "--teacher", str(teacher)]
    monkeypatch.delenv("LTR_PREDICTORS_ACCEPT_LICENSES", raising=False)
    assert main([*command, "--out", str(tmp_path / "refused")]) == 2  # its terms are not accepted: no student
    assert not (tmp_path / "refused").exists()
    # random OPT-architecture weights: the OPT floor, accepted for this test
    monkeypatch.setenv("LTR_PREDICTORS_ACCEPT_LICENSES", "opt-175b-license")
    assert main([*command, "--out", str(tmp_path / "student")]) == 0
    config = json.loads((tmp_path / "student" / "ltr_config.json").read_text())
    assert config["license"]["license"] == "opt-175b-license"
    assert LengthPredictor.from_pretrained(tmp_path / "student").info.license.commercial_use is False
