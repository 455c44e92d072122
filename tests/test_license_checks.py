"""The license rules for publishing, as a table: which declarations each set of predictor folders allows or refuses.

Only `usage_config.json` (the backbone) and `ltr_config.json` (a license block) matter here, so the folders hold no
weights. Every refusal must name the file at fault and the rule.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ltr_predictors.licensing.publication_rules import (
    DeclaredLicense,
    FolderLicense,
    LicenseRefusal,
    check_repo_license,
    folder_license,
    license_text,
    suggest_declared,
)
from ltr_predictors.licensing.terms import BACKBONE_LICENSES, KNOWN_LICENSES, OPT_NOTICE

REPO_ROOT = Path(__file__).resolve().parents[1]
LICENSES_DIR = REPO_ROOT / "LICENSES"
# sha256 of facebookresearch/metaseq projects/OPT/MODEL_LICENSE.md at 67a3a81 (11,035 characters)
OPT_LICENSE_SHA256 = "11203fa656a6dfd929ded198012b18d5d0f2b95e24d13298be37b70c327329a4"

BACKBONES = {
    "opt": "facebook/opt-125m",
    "bert": "bert-base-uncased",
    "unknown": "someone/unknown-encoder",
}
NC_BLOCK = {"license": "cc-by-nc-4.0"}  # a BERT predictor whose training data made it non-commercial


def make_folder(root: Path, name: str, kind: str, license_block: dict | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    usage = {
        "model": {
            "pred_model": BACKBONES[kind],
            "num_labels": 1,
            "mtype": "rank",
            "activation": None,
            "path": "x/finetuned",
            "max_length": 32,
            "max_batch_size": 8,
        }
    }
    (folder / "usage_config.json").write_text(json.dumps(usage))
    if license_block is not None:
        (folder / "ltr_config.json").write_text(json.dumps({"format_version": 1, "license": license_block}))
    return folder


def folders(root: Path, spec: list[tuple[str, dict | None]]) -> list[FolderLicense]:
    result = []
    for index, (kind, block) in enumerate(spec):
        folder = make_folder(root, f"p{index}-{kind}", kind, block)
        backbone, info = folder_license(folder)
        result.append(FolderLicense(folder.name, folder, backbone, info))
    return result


OTHER_OPT = DeclaredLicense("other", "opt-175b-license", "LICENSE")
MIXED = DeclaredLicense("other", "mixed-licenses", "LICENSE.md")

ALLOWED = [
    ("opt alone, other + opt-175b-license", [("opt", None)], OTHER_OPT, False),
    ("bert alone, apache-2.0", [("bert", None)], DeclaredLicense("apache-2.0"), False),
    ("two bert, apache-2.0", [("bert", None), ("bert", None)], DeclaredLicense("apache-2.0"), False),
    ("opt + bert, other (mixed)", [("opt", None), ("bert", None)], MIXED, False),
    ("bert made non-commercial by its data", [("bert", NC_BLOCK)], DeclaredLicense("cc-by-nc-4.0"), False),
    ("unknown backbone, allowed explicitly", [("unknown", None)], DeclaredLicense("other", "x", "LICENSE"), True),
]


@pytest.mark.parametrize(("case", "spec", "declared", "allow_unknown"), ALLOWED, ids=[c[0] for c in ALLOWED])
def test_allowed(tmp_path, case, spec, declared, allow_unknown):
    items = folders(tmp_path, spec)
    repo = check_repo_license(declared, items, allow_unknown_license=allow_unknown)
    assert repo.mixed is (len({f.info.license for f in items}) > 1)
    assert (OPT_NOTICE in repo.notices) is any(kind == "opt" for kind, _ in spec)


REFUSED = [
    ("opt as apache-2.0", [("opt", None)], DeclaredLicense("apache-2.0"), "noncommercial-weights", "manifest"),
    ("opt as mit", [("opt", None)], DeclaredLicense("mit"), "noncommercial-weights", "manifest"),
    ("opt as cc-by-4.0", [("opt", None)], DeclaredLicense("cc-by-4.0"), "noncommercial-weights", "manifest"),
    ("opt as unknown hub id", [("opt", None)], DeclaredLicense("bsd-3-clause"), "noncommercial-weights", "manifest"),
    (
        "mixed as apache-2.0",
        [("opt", None), ("bert", None)],
        DeclaredLicense("apache-2.0"),
        "noncommercial-weights",
        "manifest",
    ),
    ("mixed as the opt license", [("opt", None), ("bert", None)], OTHER_OPT, "mixed-needs-other", "manifest"),
    (
        "bert + nc-bert as cc-by-nc",
        [("bert", None), ("bert", NC_BLOCK)],
        DeclaredLicense("cc-by-nc-4.0"),
        "mixed-needs-other",
        "manifest",
    ),
    (
        "other without link",
        [("opt", None)],
        DeclaredLicense("other", "opt-175b-license"),
        "other-needs-name-and-link",
        "manifest",
    ),
    ("bert as mit", [("bert", None)], DeclaredLicense("mit"), "declared-matches-provenance", "manifest"),
    ("opt alone as mixed", [("opt", None)], MIXED, "declared-matches-provenance", "manifest"),
    (
        "provenance says apache on opt",
        [("opt", {"license": "apache-2.0"})],
        OTHER_OPT,
        "declared-matches-provenance",
        "ltr_config.json",
    ),
    ("unknown backbone", [("unknown", None)], DeclaredLicense("apache-2.0"), "unknown-license", "usage_config.json"),
]


@pytest.mark.parametrize(("case", "spec", "declared", "rule", "file"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused(tmp_path, case, spec, declared, rule, file):
    with pytest.raises(LicenseRefusal) as caught:
        check_repo_license(declared, folders(tmp_path, spec))
    refusal = caught.value
    assert refusal.rule == rule
    assert refusal.path.endswith(file)
    assert f"[rule: {rule}]" in str(refusal) and str(refusal).startswith(refusal.path)


def test_cc_by_data_needs_attribution(tmp_path):
    items = folders(tmp_path, [("bert", None)])
    data = [{"name": "CASTILLO", "license": "cc-by-4.0", "where": "model_cards/x.yaml"}]
    with pytest.raises(LicenseRefusal, match=r"model_cards/x.yaml: .*CASTILLO.*\[rule: data-attribution\]"):
        check_repo_license(DeclaredLicense("apache-2.0"), items, data_licenses=data)
    data[0]["attribution"] = "CASTILLO (Perez-Ramirez et al.), CC-BY-4.0"
    assert check_repo_license(DeclaredLicense("apache-2.0"), items, data_licenses=data).data_licenses == data


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ([("opt", None)], ("other", "opt-175b-license", "LICENSE")),
        ([("bert", None)], ("apache-2.0", None, None)),
        ([("opt", None), ("bert", None)], ("other", "mixed-licenses", "LICENSE.md")),
    ],
)
def test_suggested_declaration_passes_the_rules(tmp_path, spec, expected):
    items = folders(tmp_path, spec)
    suggestion = suggest_declared(items)
    assert (suggestion.license, suggestion.license_name, suggestion.license_link) == expected
    check_repo_license(suggestion, items)


def test_license_texts_come_from_licenses_dir(tmp_path):
    opt_text = license_text("opt-175b-license", LICENSES_DIR)
    assert hashlib.sha256(opt_text.encode("utf-8")).hexdigest() == OPT_LICENSE_SHA256
    assert OPT_NOTICE in opt_text
    assert "Apache License" in license_text("apache-2.0", LICENSES_DIR)
    for license_id in set(BACKBONE_LICENSES.values()):
        assert (LICENSES_DIR / f"{KNOWN_LICENSES[license_id].spdx}.txt").is_file(), license_id
    with pytest.raises(LicenseRefusal, match=r"LicenseRef-OPT-175B.txt: missing.*\[rule: license-text\]"):
        license_text("opt-175b-license", tmp_path)


@pytest.mark.parametrize(
    ("backbone", "expected"), [("facebook/opt-125m", "opt-175b-license"), ("bert-base-uncased", "apache-2.0")]
)
def test_a_mixed_repo_card_does_not_hide_the_backbone_license(backbone, expected):
    from ltr_predictors.licensing.terms import resolve_license

    info = resolve_license(None, "other", backbone, card_license_name="mixed-licenses", card_license_link="LICENSE.md")
    assert info.license == expected and info.source == f"backbone {backbone}"
    assert "mixed-licenses" in info.notes[0]


OPT_CONFIG = {"model_type": "opt", "architectures": ["OPTForSequenceClassification"]}


@pytest.mark.parametrize(
    ("pred_model", "config"),
    [
        ("facebook/OPT-125m", None),
        (" facebook/opt-125m", None),
        ("/models/opt-125m", None),
        ("https://huggingface.co/facebook/opt-125m/", None),
        (None, OPT_CONFIG),
        ("someone/unknown-encoder", {"model_type": "OPT"}),
        ("bert-base-uncased", {"architectures": ["OPTForCausalLM"]}),
    ],
    ids=["upper case", "leading space", "local path", "url", "null + config.json", "model_type", "architectures"],
)
def test_uploads_take_the_floor_from_the_backbone_name_and_the_weights_config(tmp_path, pred_model, config):
    """OPT weights declared apache-2.0, named any way or not at all: the folder is refused, and a repo of them is
    never planned as apache-2.0."""
    folder = make_folder(tmp_path, "p", "bert")
    usage = json.loads((folder / "usage_config.json").read_text())
    usage["model"]["pred_model"] = pred_model
    (folder / "usage_config.json").write_text(json.dumps(usage))
    if config is not None:
        (folder / "finetuned").mkdir()
        (folder / "finetuned" / "config.json").write_text(json.dumps(config))
    backbone, info = folder_license(folder)
    assert info.license == "opt-175b-license" and info.commercial_use is False
    item = FolderLicense(folder.name, folder, backbone, info)
    with pytest.raises(LicenseRefusal, match=r"\[rule: noncommercial-weights\]"):
        check_repo_license(DeclaredLicense("apache-2.0"), [item])
    assert suggest_declared([item]).license_name == "opt-175b-license"
    (folder / "ltr_config.json").write_text(json.dumps({"license": {"license": "apache-2.0"}}))
    with pytest.raises(LicenseRefusal, match=r"ltr_config\.json: declares license 'apache-2\.0'.*opt-175b-license"):
        folder_license(folder)


def test_a_non_commercial_floor_keeps_only_its_own_license():
    from ltr_predictors.licensing.terms import license_floor, resolve_license

    floor = license_floor("/models/opt-125m")
    assert floor is not None and floor.allows("opt-175b-license") and not floor.allows("cc-by-nc-4.0")
    info = resolve_license(
        {"license": "cc-by-nc-4.0", "data_licenses": [{"name": "d"}]}, None, None, model_config=OPT_CONFIG
    )
    assert (info.license, info.data_licenses) == ("opt-175b-license", [{"name": "d"}])
    assert "declares 'cc-by-nc-4.0'" in info.notes[0] and "config.json" in info.source
    assert license_floor("facebook/optimus-7b") is None and license_floor("bert-base-uncased").allows("mit")
