"""Loading the seed layouts through a real Hub API (olah on loopback), and scoring like transformers does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import AUTHORS_REPO, AUTHORS_RUN, SEED_REPO
from tiny_models import SEED_ZOO
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ltr_predictors import LengthPredictor, LicenseNotAcceptedError, PickleCheckpointError, PredictorSpecError
from ltr_predictors.scoring.buckets import bucket_midpoints, vllm_ltr_buckets

PROMPTS = ["hello world", "write a long essay about code", "", "yes or no?", "list " * 200]
ACCEPT = "opt-175b-license"


def direct_logits(weights: Path, tokenizer_dir: Path, prompts: list[str], max_length: int) -> np.ndarray:
    """What plain transformers computes, one prompt at a time, no padding."""
    model = AutoModelForSequenceClassification.from_pretrained(weights, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
            if ids.shape[1] == 0:
                ids = torch.tensor([[tokenizer.bos_token_id or tokenizer.cls_token_id]])
            rows.append(model(input_ids=ids).logits[0].numpy())
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("name", list(SEED_ZOO))
def test_seed_predictor_loads_through_hub_and_scores_like_transformers(local_hub, name):
    predictor = LengthPredictor.from_pretrained(SEED_REPO, subfolder=name, accept_license=ACCEPT)
    kind, mtype, num_labels = SEED_ZOO[name]
    info = predictor.info
    assert (info.family, info.num_labels) == (mtype, num_labels)
    assert info.source.repo_id == SEED_REPO and info.source.subfolder == name
    assert info.source.commit and len(info.source.commit) == 40
    assert info.license.license == ("opt-175b-license" if kind == "opt" else "apache-2.0")
    assert info.license.source.startswith("backbone")
    assert info.commercial_use is (kind != "opt")

    folder = Path(predictor.info.usage_config["model"]["path"]).name  # stale path: resolved beside the file
    assert folder == "finetuned"
    weights = Path(predictor.scorer.model.name_or_path)
    assert weights.name == "finetuned" and weights.parent.name == name
    tokenizer_repo = "facebook/opt-125m" if kind == "opt" else "google-bert/bert-base-uncased"
    from huggingface_hub import snapshot_download

    tokenizer_dir = Path(snapshot_download(tokenizer_repo))
    logits = direct_logits(weights, tokenizer_dir, PROMPTS, predictor.scorer.max_length)
    scores = predictor.score(PROMPTS)
    if mtype == "class":
        weights_ = np.exp(logits - logits.max(1, keepdims=True))
        expected = (weights_ / weights_.sum(1, keepdims=True)) @ bucket_midpoints(vllm_ltr_buckets(10))
    else:
        expected = -logits[:, 0]  # vllm-ltr rank heads: higher logit = shorter, we return higher = longer
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert list(predictor.rank(PROMPTS)) == list(np.argsort(expected, kind="stable"))


def test_revision_pin_gets_the_older_weights(local_hub):
    new = LengthPredictor.from_pretrained(SEED_REPO, subfolder="PARS-bert")
    pinned = LengthPredictor.from_pretrained(SEED_REPO, subfolder="PARS-bert", revision=local_hub.first_seed_commit)
    tagged = LengthPredictor.from_spec(f"{SEED_REPO}:PARS-bert@v1.0")
    assert pinned.info.source.commit == local_hub.first_seed_commit
    assert new.info.source.commit != local_hub.first_seed_commit
    np.testing.assert_allclose(pinned.score(PROMPTS), tagged.score(PROMPTS))
    assert not np.allclose(pinned.score(PROMPTS), new.score(PROMPTS))


def test_authors_run_layout_loads(local_hub):
    predictor = LengthPredictor.from_spec(f"{AUTHORS_REPO}:{AUTHORS_RUN}", accept_license=[ACCEPT])
    assert predictor.info.backbone == "facebook/opt-125m"
    assert np.isfinite(predictor.score(PROMPTS)).all()


def test_second_load_works_offline_from_the_cache(local_hub, tmp_path):
    LengthPredictor.from_pretrained(SEED_REPO, subfolder="A2-bert-nofilter").score(PROMPTS)
    script = (
        "from ltr_predictors import LengthPredictor;"
        f"p = LengthPredictor.from_pretrained({SEED_REPO!r}, subfolder='A2-bert-nofilter');"
        "import json; print(json.dumps([p.info.source.commit, p.score(['hello world']).tolist()]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing to reach
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    commit, scores = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(commit) == 40 and len(scores) == 1


def test_non_commercial_weights_need_acceptance(local_hub, monkeypatch):
    monkeypatch.delenv("LTR_PREDICTORS_ACCEPT_LICENSES", raising=False)
    with pytest.raises(LicenseNotAcceptedError) as err:
        LengthPredictor.from_pretrained(SEED_REPO, subfolder="A1-opt125m-margin")
    message = str(err.value)
    assert "opt-175b-license" in message and "non-commercial" in message and "accept_license" in message
    monkeypatch.setenv("LTR_PREDICTORS_ACCEPT_LICENSES", "cc-by-4.0, opt-175b-license")
    assert LengthPredictor.from_pretrained(SEED_REPO, subfolder="A1-opt125m-margin").info.license.license == ACCEPT


def test_pickle_only_checkpoint_is_refused_without_unpickling(local_hub, monkeypatch):
    import pickle

    def no_unpickling(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(PickleCheckpointError, match=r"pytorch_model\.bin.*never unpickles"):
        LengthPredictor.from_pretrained("testorg/pickle-only", subfolder="old")


def test_the_license_is_decided_before_any_weights_come_down(local_hub, monkeypatch, tmp_path):
    """The metadata download includes the weights' `finetuned/config.json` (it sets the license floor), and a
    refused license leaves no weights in the cache."""
    monkeypatch.delenv("LTR_PREDICTORS_ACCEPT_LICENSES", raising=False)
    with pytest.raises(LicenseNotAcceptedError, match="backbone"):
        LengthPredictor.from_pretrained(SEED_REPO, subfolder="A1-opt125m-margin", cache_dir=tmp_path)
    (snapshot,) = tmp_path.glob("*/snapshots/*")
    assert (snapshot / "A1-opt125m-margin" / "finetuned" / "config.json").is_file()
    assert not list(tmp_path.rglob("*.safetensors"))


@pytest.mark.parametrize(
    ("subfolder", "reason"),
    [
        ("..", "'..' would leave the repo"),
        ("../escape", "'..' would leave the repo"),
        ("a/../../b", "'..' would leave the repo"),
        (".git", "'.git' holds git's own data"),
        ("PARS-bert/.GIT/x", "'.git' holds git's own data"),
        ("PARS-bert\\finetuned", "a backslash is not a separator"),
        ("/etc", "an absolute path"),
        ("C:/models", "an absolute path"),
        ("PARS-bert\n", "control characters"),
    ],
)
def test_bad_subfolders_are_refused_by_name_before_any_download(subfolder, reason, monkeypatch):
    from ltr_predictors.loading.hub import PredictorSpec

    monkeypatch.setattr("ltr_predictors.loading.hub.snapshot_download", _no_download)
    with pytest.raises(PredictorSpecError, match=re.escape(reason)):
        LengthPredictor.from_pretrained(SEED_REPO, subfolder=subfolder)
    with pytest.raises(PredictorSpecError, match=re.escape(reason)):
        PredictorSpec.parse(f"{SEED_REPO}:{subfolder}")


def _no_download(*args, **kwargs):
    raise AssertionError("a bad subfolder reached the Hub")


def test_an_absolute_subfolder_never_loads_a_local_folder_as_the_hub_repo(local_hub, tmp_path):
    """`subfolder="/abs/path"` over a Hub repo used to load that local folder, reported as the repo's."""
    from tiny_models import write_seed_predictor

    local = write_seed_predictor(tmp_path / "local", "bert")
    with pytest.raises(PredictorSpecError, match="an absolute path"):
        LengthPredictor.from_pretrained(SEED_REPO, subfolder=str(local))


def test_a_subfolder_is_normalised(local_hub):
    predictor = LengthPredictor.from_pretrained(SEED_REPO, subfolder="./PARS-bert//")
    assert predictor.info.source.subfolder == predictor.info.name == "PARS-bert"
    assert LengthPredictor.from_spec(f"{SEED_REPO}:PARS-bert/").info.source.subfolder == "PARS-bert"


@pytest.mark.parametrize("repo_id", ["bad id!!", "a/b/c", "https://huggingface.co/x/y", "a--b/c", "x" * 200])
def test_invalid_hub_ids_are_named(repo_id, monkeypatch):
    monkeypatch.setattr("ltr_predictors.loading.hub.snapshot_download", _no_download)
    with pytest.raises(PredictorSpecError, match="neither an existing folder nor a valid Hub repo id"):
        LengthPredictor.from_pretrained(repo_id)


def test_an_invalid_backbone_id_for_the_tokenizer_is_named(tmp_path):
    from tiny_models import write_seed_predictor

    folder = write_seed_predictor(tmp_path / "pred", "bert", pred_model="google-bert/bert base uncased")
    with pytest.raises(PredictorSpecError, match="not a valid Hub repo id"):
        LengthPredictor.from_pretrained(folder, accept_license=ACCEPT)
