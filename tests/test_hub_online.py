"""Online integration: the real seed zoo and the authors' predictor from huggingface.co (`pytest -m hub`).

Skipped with a reason when huggingface.co cannot be reached (always in CI); `tests/hub_marker.py` lifts the loopback
socket guard for these tests only. The session's `HF_ENDPOINT` points at the loopback mirror, so every call names
the real endpoint. OPT-derived predictors also need `LTR_PREDICTORS_ACCEPT_LICENSES=opt-175b-license`.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AUTHORS_REPO, AUTHORS_RUN, SEED_REPO
from hub_marker import HUB
from tiny_models import SEED_ZOO

from ltr_predictors import LengthPredictor

pytestmark = pytest.mark.hub
OPT = "opt-175b-license"
PROMPTS = ["hello", "Write a detailed essay on the history of computing.", "Answer yes or no: is water wet?"]


def _params():
    for name, (kind, _mtype, _labels) in SEED_ZOO.items():
        yield pytest.param(name, marks=[pytest.mark.license(OPT)] if kind == "opt" else [], id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_seed_zoo_predictor_from_huggingface(name):
    kind, mtype, num_labels = SEED_ZOO[name]
    predictor = LengthPredictor.from_pretrained(SEED_REPO, subfolder=name, endpoint=HUB)
    assert (predictor.info.family, predictor.info.num_labels) == (mtype, num_labels)
    assert predictor.info.license.license == (OPT if kind == "opt" else "apache-2.0")
    scores = predictor.score(PROMPTS)
    assert scores.shape == (len(PROMPTS),) and np.all(np.isfinite(scores))


@pytest.mark.license(OPT)
def test_authors_opt_predictor_from_huggingface():
    predictor = LengthPredictor.from_pretrained(AUTHORS_REPO, subfolder=AUTHORS_RUN, endpoint=HUB)
    assert predictor.info.backbone == "facebook/opt-125m" and predictor.info.commercial_use is False
    assert np.all(np.isfinite(predictor.score(PROMPTS)))
