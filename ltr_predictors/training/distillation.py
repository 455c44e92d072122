"""Distillation: a teacher predictor's scores blended into the training labels of a (usually much cheaper) student.

A length label from one sampled answer is noisy; a strong predictor's score is a smoother estimate of the same thing.
The teacher scores every training prompt (never a validation or held-out one); its scores are put on the target's
log-length scale by the linear map that gives them the mean and spread of the training targets' log lengths (as other
models' lengths are, see `data.examples`), and each label becomes, in log length,
`(1 - weight) * label + weight * teacher`. Prompts without a target length (labelled by other models only) are
distilled alike. The student is then trained as usual; validation and held-out tau stay against real lengths. The
student's weights are never under looser terms than the teacher's (see `training.run.license_block`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ..data.examples import Example, matched_scale
from ..errors import RecipeError
from ..predictor import LengthPredictor


def teacher_labels(examples: Sequence[Example], scores: np.ndarray, weight: float) -> list[Example]:
    """`examples` with their labels blended with the teacher's `scores` (one per example, higher = longer)."""
    if len(scores) != len(examples):
        raise RecipeError(f"teacher: {len(scores)} scores for {len(examples)} training prompts")
    targets = [(i, e.target) for i, e in enumerate(examples) if e.target is not None]
    if len(targets) < 2:
        raise RecipeError("teacher: fewer than two training prompts with a target length to put its scores on scale")
    scale, shift = matched_scale(scores[[i for i, _ in targets]], np.log1p([t for _, t in targets]))
    return [
        dataclasses.replace(
            example,
            length=math.expm1((1.0 - weight) * math.log1p(example.length) + weight * (shift + scale * float(score))),
        )
        for example, score in zip(examples, scores, strict=True)
    ]


def distil(examples: Sequence[Example], teacher: LengthPredictor, weight: float) -> list[Example]:
    """`examples` relabelled with the scores of `teacher`."""
    return teacher_labels(examples, teacher.score([e.prompt for e in examples], progress=True), weight)
