"""Model cards: rendered from tiny predictor folders plus model_cards/ metadata, and read back by `ModelCard.load`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from tiny_models import SEED_ZOO, write_seed_predictor, write_seed_zoo

from ltr_predictors.cli import main as cli_main
from ltr_predictors.licensing.publication_rules import LicenseRefusal
from ltr_predictors.licensing.terms import OPT_NOTICE
from ltr_predictors.publishing.cards import CardMetadata, CardMetadataError, card_for_path

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_METADATA = REPO_ROOT / "model_cards" / "seed-zoo.yaml"
REPORTED_TAU = {  # the seed's reports, as the card must carry them
    "listMLE-opt125m": (0.559, 0.315),
    "classification-opt125m": (0.194, None),
    "PARS-bert": (0.596, 0.361),
    "A1-opt125m-margin": (0.543, 0.303),
    "A2-bert-nofilter": (0.598, 0.368),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return write_seed_zoo(tmp_path_factory.mktemp("zoo") / "zoo")


def test_seed_zoo_card_round_trips_through_modelcard_load(zoo, tmp_path):
    card = card_for_path(zoo, repo_id="ltr-predictors/vllm-ltr-seed-zoo", metadata=CardMetadata.load(SEED_METADATA))
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert (data.license, data.license_name, data.license_link) == ("other", "mixed-licenses", "LICENSE.md")
    assert data.base_model == ["facebook/opt-125m", "google-bert/bert-base-uncased"]
    assert data.library_name == "ltr-predictors" and data.pipeline_tag == "text-classification"
    assert {"ltr-predictors", "learning-to-rank", "opt", "bert"} <= set(data.tags)
    assert "lmsys/lmsys-chat-1m" in data.datasets
    found = {(r.metric_config, r.metric_name.split("(")[1].split(")")[0], r.metric_value) for r in data.eval_results}
    expected = {(name, "in-distribution", ind) for name, (ind, _) in REPORTED_TAU.items()}
    expected |= {(name, "cross", cross) for name, (_, cross) in REPORTED_TAU.items() if cross is not None}
    assert found == expected
    assert all(r.metric_type == "kendall_tau" for r in data.eval_results)
    assert loaded.data.to_dict() == card.data.to_dict()
    text = loaded.text
    for name in SEED_ZOO:
        license_row = "OPT-175B License Agreement" if "opt" in name else "Apache License 2.0"
        assert f"| `{name}` | {license_row}" in text and f"`{name}/LICENSE`" in text
    assert OPT_NOTICE in text
    assert 'accept_license="opt-175b-license"' in text
    assert "import ltr_predictors.vllm as ltr" in text and "ltr.generate(llm, prompts" in text
    assert "LTR_PREDICTOR=ltr-predictors/vllm-ltr-seed-zoo:A1-opt125m-margin" in text
    assert "--middleware ltr_predictors.vllm.LTRPriorityMiddleware" in text
    for heading in ("Classification serving failure", "Confounded ablation", "Cross-set caveats", "## How to cite"):
        assert heading in text
    assert "slate (batch) size: 4" in text and "slate (batch) size: 32" in text
    assert "meta-llama/Meta-Llama-3-8B-Instruct" in text  # labels from a Llama model's outputs, carried into the card


def test_single_apache_predictor_card(tmp_path):
    folder = write_seed_predictor(tmp_path / "my-predictor", "bert")
    card = card_for_path(folder)
    assert (card.data.license, card.data.license_name) == ("apache-2.0", None)
    assert card.data.base_model == "google-bert/bert-base-uncased"
    assert card.data.eval_results is None
    assert OPT_NOTICE not in card.text and "accept_license" not in card.text
    assert 'from_pretrained("<your-org>/my-predictor")' in card.text


def test_training_provenance_and_data_licenses_reach_the_card(tmp_path):
    """The provenance `ltr-predictors train` writes: hyperparameters, held-out tau per source, data terms."""
    folder = write_seed_predictor(tmp_path / "p", "bert")
    config = {
        "format_version": 1,
        "license": {
            "license": "apache-2.0",
            "data_licenses": [
                {"source": "castillo", "license": "cc-by-4.0", "attribution": "CASTILLO authors, CC-BY-4.0"}
            ],
        },
        "provenance": {
            "recipe": "default",
            "seed": 0,
            "target_models": ["meta-llama--Llama-3.1-8B-Instruct"],
            "hyperparameters": {"loss": "listmle", "lr": 0.01},
            "training": {
                "best_epoch": 3,
                "val_kendall_tau": 0.4731,
                "train_examples": 2800,
                "val_examples": 350,
                "seconds": 12.5,
                "history": [{"epoch": 1.0}],
                "test_kendall_tau": {"castillo": {"n": 350, "kendall_tau": 0.41}},
            },
        },
    }
    (folder / "ltr_config.json").write_text(json.dumps(config))
    card = card_for_path(folder, repo_id="org/p")
    [result] = card.data.eval_results
    assert (result.metric_value, result.dataset_type, result.dataset_split) == (0.41, "castillo", "test")
    assert "**castillo** (cc-by-4.0)" in card.text and "Attribution: CASTILLO authors, CC-BY-4.0" in card.text
    assert "- loss: listmle" in card.text and "- val kendall tau: 0.473" in card.text
    assert "history" not in card.text
    config["license"]["data_licenses"][0].pop("attribution")
    (folder / "ltr_config.json").write_text(json.dumps(config))
    with pytest.raises(LicenseRefusal, match=r"ltr_config.json: .*castillo.*\[rule: data-attribution\]"):
        card_for_path(folder)


def test_card_of_the_shipped_default_predictor():
    from ltr_predictors.predictor import DEFAULT_PREDICTOR_DIR

    if not (DEFAULT_PREDICTOR_DIR / "ltr_config.json").is_file():
        pytest.skip("the default predictor is not shipped in this checkout")
    card = card_for_path(DEFAULT_PREDICTOR_DIR, repo_id="ltr-predictors/default")
    assert card.data.license == "apache-2.0" and card.data.base_model is None
    assert "none (lexical)" in card.text and "Attribution: CASTILLO" in card.text


def test_card_refuses_a_declaration_against_provenance(zoo):
    from ltr_predictors.licensing.publication_rules import DeclaredLicense

    with pytest.raises(LicenseRefusal, match=r"noncommercial-weights"):
        card_for_path(zoo, declared=DeclaredLicense("apache-2.0", where="--license"))


def test_metadata_with_unknown_key_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("title: x\nlicence: mit\n")
    with pytest.raises(CardMetadataError, match=r"m.yaml: unknown keys \['licence'\]"):
        CardMetadata.load(path)


def test_cli_card_prints_a_loadable_readme(zoo, capsys, tmp_path):
    assert cli_main(["card", str(zoo / "PARS-bert"), "--repo-id", "org/pars"]) == 0
    out = capsys.readouterr().out
    (tmp_path / "README.md").write_text(out)
    data = ModelCard.load(tmp_path / "README.md").data
    assert data.license == "apache-2.0" and data.library_name == "ltr-predictors"
    assert cli_main(["card", str(zoo), "--license", "mit"]) == 2
    assert "[rule: noncommercial-weights]" in capsys.readouterr().err
