"""LengthPredictor on local folders: layouts, families, bad input, licenses from cards and configs."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from tiny_models import bert_model, bert_tokenizer, write_seed_predictor, write_tokenizer_repo

from ltr_predictors import (
    CardMetadataError,
    LengthPredictor,
    LicenseNotAcceptedError,
    PickleCheckpointError,
    PredictorSpecError,
    UnknownFamilyError,
    UsageConfigError,
    WeightsNotFoundError,
)
from ltr_predictors.loading.ltr_config import LTRConfig

PROMPTS = ["hello world", "write a long essay", "", "no"]
OPT = "opt-175b-license"


@pytest.fixture
def tokenizers(tmp_path):
    return {kind: write_tokenizer_repo(tmp_path / f"tok-{kind}", kind) for kind in ("opt", "bert")}


def seed_folder(tmp_path, tokenizers, kind="bert", mtype="rank", num_labels=1, name="pred"):
    return write_seed_predictor(tmp_path / name, kind, mtype, num_labels, pred_model=str(tokenizers[kind]))


def load(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local tokenizer paths have no known license
        return LengthPredictor.from_pretrained(folder, **kwargs)


def test_flat_folder_with_its_own_tokenizer(tmp_path):
    folder = tmp_path / "flat"
    tokenizer = bert_tokenizer()
    bert_model(1, len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "usage_config.json").write_text(
        json.dumps({"model": {"pred_model": None, "num_labels": 1, "mtype": "regression", "activation": None}})
    )
    LTRConfig(license={"license": "apache-2.0"}).save(folder)
    predictor = LengthPredictor.from_pretrained(folder)
    assert predictor.info.family == "regression" and predictor.info.score_direction == "higher_is_longer"
    assert predictor.info.license.license == "apache-2.0" and predictor.info.license.source == "ltr_config.json"
    raw = predictor.scorer.raw(PROMPTS)[:, 0]
    np.testing.assert_allclose(predictor.score(PROMPTS), raw)  # regression: log length, already higher = longer


def test_direction_field_flips_rank_scores(tmp_path, tokenizers):
    folder = seed_folder(tmp_path, tokenizers)
    default = load(folder).score(PROMPTS)
    LTRConfig(score_direction="higher_is_longer").save(folder)
    np.testing.assert_allclose(load(folder).score(PROMPTS), -default)


def test_class_scores_are_expected_lengths_within_the_table(tmp_path, tokenizers):
    folder = seed_folder(tmp_path, tokenizers, "opt", "class", 10)
    scores = load(folder, accept_license=OPT).score(PROMPTS)  # OPT-architecture weights: under the OPT floor
    assert ((scores > 410) & (scores < 7786)).all()
    LTRConfig(buckets=[[0, 10], [10, 20], [20, 30], [30, 40], [40, 50]] * 2).save(folder)
    assert (load(folder, accept_license=OPT).score(PROMPTS) < 50).all()


def test_save_pretrained_round_trip(tmp_path, tokenizers):
    original = load(seed_folder(tmp_path, tokenizers))
    original.ltr.license = {"license": "apache-2.0"}
    saved = original.save_pretrained(tmp_path / "saved")
    assert (saved / "finetuned" / "model.safetensors").is_file()
    assert (saved / "finetuned" / "tokenizer.json").is_file()  # our layout carries its tokenizer
    again = LengthPredictor.from_pretrained(saved)
    np.testing.assert_allclose(again.score(PROMPTS), original.score(PROMPTS), rtol=1e-3, atol=1e-4)


def test_prompt_input_checks(tmp_path, tokenizers):
    predictor = load(seed_folder(tmp_path, tokenizers))
    assert predictor.score([]).shape == (0,)
    assert predictor.rank([]).shape == (0,)
    with pytest.raises(TypeError, match=r"prompts\[1\] is int"):
        predictor.score(["fine", 3])
    with pytest.raises(TypeError, match="single string"):
        predictor.score("hello")
    huge = "essay " * 200_000
    scores = predictor.score([huge, huge[:300], ""])
    assert np.isfinite(scores).all()
    assert scores[0] == pytest.approx(scores[1])  # both truncated to the same head of max_length tokens


def test_num_labels_disagreeing_with_weights(tmp_path, tokenizers):
    folder = seed_folder(tmp_path, tokenizers, "opt", "class", 10)
    usage = json.loads((folder / "usage_config.json").read_text())
    usage["model"]["num_labels"] = 5
    (folder / "usage_config.json").write_text(json.dumps(usage))
    with pytest.raises(UsageConfigError, match=r"'model\.num_labels' is 5 but the weights have 10 outputs"):
        load(folder, accept_license=OPT)  # OPT-architecture weights: under the OPT floor


def test_unknown_mtype_missing_config_and_missing_weights(tmp_path, tokenizers):
    folder = seed_folder(tmp_path, tokenizers)
    usage = json.loads((folder / "usage_config.json").read_text())
    usage["model"]["mtype"] = "coral"
    (folder / "usage_config.json").write_text(json.dumps(usage))
    with pytest.raises(UnknownFamilyError, match="coral"):
        load(folder)
    (folder / "usage_config.json").unlink()
    with pytest.raises(UsageConfigError, match=r"no usage_config\.json"):
        load(folder)
    other = seed_folder(tmp_path, tokenizers, name="noweights")
    (other / "finetuned" / "model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match=r"no model\.safetensors"):
        load(other)


@pytest.mark.parametrize("name", ["MODEL.BIN", "weights.pkl.gz", "weights.dat"])
def test_pickle_only_weights_are_refused_by_name_in_any_case_or_by_content(tmp_path, tokenizers, name):
    import pickle

    folder = seed_folder(tmp_path, tokenizers)
    (folder / "finetuned" / "model.safetensors").unlink()
    (folder / "finetuned" / name).write_bytes(pickle.dumps({"score.weight": [0.0]}, protocol=4))
    with pytest.raises(PickleCheckpointError, match=re.escape(name)):
        load(folder)


def test_license_from_card_and_conflicts(tmp_path, tokenizers, monkeypatch):
    monkeypatch.delenv("LTR_PREDICTORS_ACCEPT_LICENSES", raising=False)
    repo = tmp_path / "repo"
    folder = write_seed_predictor(repo / "opt-pred", "opt", pred_model="facebook/opt-125m")
    (repo / "README.md").write_text("---\nlicense: apache-2.0\n---\n# wrongly declared\n")
    with pytest.raises(LicenseNotAcceptedError, match="opt-175b-license"):
        LengthPredictor.from_pretrained(folder)  # an apache card cannot launder OPT weights
    bert = write_seed_predictor(repo / "bert-pred", "bert", pred_model=str(tokenizers["bert"]))
    info = LengthPredictor.from_pretrained(bert).info
    assert (info.license.license, info.license.source, info.commercial_use) == ("apache-2.0", "model card", True)


def test_unknown_license_warns_and_loads(tmp_path, tokenizers):
    folder = seed_folder(tmp_path, tokenizers)
    with pytest.warns(UserWarning, match="license unknown"):
        predictor = LengthPredictor.from_pretrained(folder)
    assert predictor.info.license.license is None and predictor.info.commercial_use is None


def test_default_predictor_loads_offline_when_shipped():
    from ltr_predictors.predictor import DEFAULT_PREDICTOR_DIR

    if not (DEFAULT_PREDICTOR_DIR / "usage_config.json").is_file():
        pytest.skip("the embedded default predictor is not in this checkout yet")
    predictor = LengthPredictor.default()
    assert predictor.info.commercial_use is True
    scores = predictor.score(["Say yes.", "Write a 2000-word essay on the history of Rome."])
    assert scores[1] > scores[0]


def test_batches_budget_padded_tokens_on_cpu_only():
    """On a CPU a batch holds at most `CPU_BATCH_TOKENS` padded tokens; elsewhere (here: the meta device, as an
    accelerator stands in) only `batch_size` bounds it, and an explicit budget wins on any device."""
    from ltr_predictors.scoring.transformer import CPU_BATCH_TOKENS, TransformerScorer

    tokenizer = bert_tokenizer()
    model = bert_model(num_labels=1, vocab_size=len(tokenizer))
    scorer = TransformerScorer(model, tokenizer, max_length=64, batch_size=32)
    lengths = [60] * 40
    assert scorer.token_budget() == CPU_BATCH_TOKENS
    assert [len(b) for b in scorer.batches(lengths)] == [17, 17, 6]
    model.to("meta")
    assert scorer.token_budget() == 32 * 64
    assert [len(b) for b in scorer.batches(lengths)] == [32, 8]
    scorer.max_batch_tokens = 240
    assert [len(b) for b in scorer.batches(lengths)] == [4] * 10


@pytest.mark.parametrize("kind", ["bert", "opt"])
def test_padding_batches_to_a_multiple_leaves_scores_unchanged(kind):
    """Off the CPU batches are padded to a multiple of `ACCELERATOR_PAD_MULTIPLE` tokens (never past `max_length`);
    the model sees those lengths and, thanks to the attention mask, scores as without the padding."""
    from tiny_models import opt_model, opt_tokenizer

    from ltr_predictors.scoring.transformer import ACCELERATOR_PAD_MULTIPLE, TransformerScorer

    tokenizer = bert_tokenizer() if kind == "bert" else opt_tokenizer()
    model = (bert_model if kind == "bert" else opt_model)(num_labels=1, vocab_size=len(tokenizer))
    prompts = ["short", "a somewhat longer prompt about the sea", "write " * 20, "list three things"]
    plain = TransformerScorer(model, tokenizer, max_length=48, batch_size=4)
    assert plain.padded_length(37) == 37  # on a CPU: no padding beyond the longest prompt
    seen: list[int] = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    expected = plain.raw(prompts)
    padded = TransformerScorer(model, tokenizer, max_length=48, batch_size=4, pad_multiple=16)
    assert [padded.padded_length(n) for n in (1, 16, 17, 40, 48)] == [16, 16, 32, 48, 48]
    seen.clear()
    np.testing.assert_allclose(padded.raw(prompts), expected, rtol=1e-5, atol=1e-5)
    assert seen and all(n % 16 == 0 for n in seen)
    model.to("meta")
    assert plain.padded_length(5) == min(ACCELERATOR_PAD_MULTIPLE, plain.max_length)


# ---------------------------------------------------------------------------------------- the backbone's license floor
OPT_NAMES = [
    "facebook/OPT-125m",
    " facebook/opt-125m",
    "/models/opt-125m",
    "https://huggingface.co/facebook/opt-125m",
    None,
]
DECLARATIONS = {
    "card": lambda folder: (folder.parent / "README.md").write_text("---\nlicense: apache-2.0\n---\n# says apache\n"),
    "ltr_config": lambda folder: LTRConfig(license={"license": "apache-2.0"}).save(folder),
}


@pytest.mark.parametrize("declared", list(DECLARATIONS))
@pytest.mark.parametrize("pred_model", OPT_NAMES, ids=repr)
def test_opt_weights_stay_under_the_opt_license_whatever_is_declared(tmp_path, monkeypatch, pred_model, declared):
    """OPT-architecture weights (their own config.json says so) declared apache-2.0, whatever `pred_model` says:
    loading needs the OPT license accepted, and the contradiction is kept in the notes."""
    from tiny_models import opt_tokenizer

    monkeypatch.delenv("LTR_PREDICTORS_ACCEPT_LICENSES", raising=False)
    folder = write_seed_predictor(tmp_path / "repo" / "pred", "opt")
    usage = json.loads((folder / "usage_config.json").read_text())
    usage["model"]["pred_model"] = pred_model
    (folder / "usage_config.json").write_text(json.dumps(usage))
    opt_tokenizer().save_pretrained(folder / "finetuned")
    DECLARATIONS[declared](folder)
    with pytest.raises(LicenseNotAcceptedError, match=OPT):
        LengthPredictor.from_pretrained(folder)
    info = LengthPredictor.from_pretrained(folder, accept_license=OPT).info.license
    assert (info.license, info.commercial_use, info.source.split()[0]) == (OPT, False, "backbone")
    assert "declares 'apache-2.0'" in info.notes[0]


@pytest.mark.parametrize("pred_model", OPT_NAMES[:4])
def test_an_opt_backbone_name_sets_the_floor_in_any_spelling(tmp_path, pred_model):
    """BERT-architecture weights whose `pred_model` names OPT: the name alone puts them under the OPT license."""
    folder = write_seed_predictor(tmp_path / "pred", "bert", pred_model=pred_model)
    bert_tokenizer().save_pretrained(folder / "finetuned")
    LTRConfig(license={"license": "mit"}).save(folder)
    info = LengthPredictor.from_pretrained(folder, accept_license=OPT).info.license
    assert (info.license, info.source) == (OPT, f"backbone {pred_model}")


def test_a_stricter_declared_license_is_kept(tmp_path, tokenizers):
    bert = seed_folder(tmp_path, tokenizers, name="bert")
    LTRConfig(license={"license": "cc-by-nc-4.0"}).save(bert)
    info = load(bert, accept_license="cc-by-nc-4.0").info.license
    assert (info.license, info.source, info.notes) == ("cc-by-nc-4.0", "ltr_config.json", [])
    opt = seed_folder(tmp_path, tokenizers, "opt", name="opt")
    LTRConfig(license={"license": "other", "license_name": OPT}).save(opt)
    info = load(opt, accept_license=OPT).info.license
    assert (info.license, info.source, info.notes) == (OPT, "ltr_config.json", [])


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"license": 5}, "'license.license' must be a string, got 5"),
        ({"license": "other", "license_name": ["opt"]}, "'license.license_name' must be a string"),
        ({"license": "apache-2.0", "data_licenses": 3}, "'license.data_licenses' must be a list of objects, got 3"),
        ({"license": "apache-2.0", "data_licenses": ["cc-by-4.0"]}, "'license.data_licenses' must be a list"),
    ],
)
def test_license_fields_of_the_wrong_type_are_named(tmp_path, tokenizers, block, field):
    folder = seed_folder(tmp_path, tokenizers)
    (folder / "ltr_config.json").write_text(json.dumps({"license": block}))
    with pytest.raises(UsageConfigError, match=re.escape(f"{folder / 'ltr_config.json'}: {field}")):
        load(folder)


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("---\nlicense: [apache\n---\n", "cannot read the card's YAML header"),
        ("---\n- apache-2.0\n---\n", "cannot read the card's YAML header"),
        ("---\nlicense: 5\n---\n", "'license' must be a string, got 5"),
        ("---\nlicense: other\nlicense_name: {a: 1}\n---\n", "'license_name' must be a string"),
        ("---\nx: " + "[" * 5000 + "\n---\n", "cannot read the card's YAML header"),
    ],
)
def test_card_yaml_errors_are_named(tmp_path, tokenizers, card, message):
    folder = seed_folder(tmp_path, tokenizers)
    (folder / "README.md").write_text(card)
    with pytest.raises(CardMetadataError, match=re.escape(f"{folder / 'README.md'}: {message}")):
        load(folder)


# ------------------------------------------------------------------------------------------------ local subfolders
def test_a_local_subfolder_stays_inside_the_folder(tmp_path, tokenizers):
    seed_folder(tmp_path, tokenizers, name="repo/pred")
    outside = seed_folder(tmp_path, tokenizers, name="outside")
    assert load(tmp_path / "repo", subfolder="./pred/").info.source.subfolder == "pred"
    for subfolder, reason in [
        ("../outside", "'..' would leave the repo"),
        (str(outside), "an absolute path"),
        ("pred\\finetuned", "a backslash is not a separator"),
        (".git", "'.git' holds git's own data"),
    ]:
        with pytest.raises(PredictorSpecError, match=re.escape(reason)):
            load(tmp_path / "repo", subfolder=subfolder)
    (tmp_path / "repo" / "link").symlink_to(outside)
    with pytest.raises(PredictorSpecError, match="leads outside it"):
        load(tmp_path / "repo", subfolder="link")
