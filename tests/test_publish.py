"""Uploads: the plan (validation, license files, card), `--dry-run`, the commit operations, and a round trip.

Uploads cannot reach a real Hub here: the socket guard refuses off-machine connections and olah is read-only. So the
commit is checked against a mocked `HfApi`, and the round trip uses a stand-in API whose `create_commit` writes the
operations into a local git repo that olah serves on loopback; the predictors are then downloaded back through the
Hub API with `LengthPredictor.from_pretrained`, as after a real upload.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from conftest import SEED_REPO
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard
from tiny_models import SEED_ZOO, bert_tokenizer, opt_tokenizer, write_seed_predictor

from ltr_predictors import LengthPredictor, LicenseNotAcceptedError, PickleCheckpointError
from ltr_predictors.cli import main as cli_main
from ltr_predictors.cli.upload import main
from ltr_predictors.errors import UploadVerificationError
from ltr_predictors.licensing.terms import OPT_NOTICE
from ltr_predictors.publishing.manifest import Manifest
from ltr_predictors.publishing.plan import PROBE_PROMPTS, plan_upload
from ltr_predictors.publishing.upload import upload, verify_upload

REPO_ROOT = Path(__file__).resolve().parents[1]
LICENSES_DIR = REPO_ROOT / "LICENSES"
SEED_MANIFEST = REPO_ROOT / "upload_scripts" / "manifests" / "seed-zoo.yaml"
OPT = "opt-175b-license"


def predictor_with_tokenizer(folder: Path, kind: str, seed: int = 0) -> Path:
    """A seed-layout predictor that carries its tokenizer in `finetuned/`, so it loads without any Hub."""
    write_seed_predictor(folder, kind, seed=seed)
    (opt_tokenizer() if kind == "opt" else bert_tokenizer()).save_pretrained(folder / "finetuned")
    return folder


def write_manifest(path: Path, predictors: dict[str, Path], **fields) -> Path:
    data = {
        "repo_id": fields.pop("repo_id", "testorg/published"),
        "license": "apache-2.0",
        "licenses_dir": str(LICENSES_DIR),
        "predictors": [{"path": str(folder), "subfolder": sub} for sub, folder in predictors.items()],
        **fields,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def bert_pair(tmp_path) -> dict[str, Path]:
    return {
        "pars": predictor_with_tokenizer(tmp_path / "src" / "pars", "bert", seed=1),
        "nofilter": predictor_with_tokenizer(tmp_path / "src" / "nofilter", "bert", seed=2),
    }


@pytest.fixture
def mixed_zoo(tmp_path) -> dict[str, Path]:
    return {
        "opt-rank": predictor_with_tokenizer(tmp_path / "src" / "opt-rank", "opt", seed=3),
        "bert-rank": predictor_with_tokenizer(tmp_path / "src" / "bert-rank", "bert", seed=4),
    }


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, bert_pair, capsys):
    manifest = write_manifest(tmp_path / "m.yaml", bert_pair)
    before = tree_digest(tmp_path / "src")
    with (
        mock.patch.object(HfApi, "create_commit", side_effect=AssertionError("dry run sent a commit")),
        mock.patch.object(HfApi, "create_repo", side_effect=AssertionError("dry run created a repo")),
    ):
        assert main(["--manifest", str(manifest), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert tree_digest(tmp_path / "src") == before
    plan = plan_upload(Manifest.load(manifest))
    for planned in plan.files:  # every file, with its size
        assert planned.path_in_repo in out
    assert {
        "README.md",
        "LICENSE",
        "pars/LICENSE",
        "nofilter/LICENSE",
        "pars/usage_config.json",
        "pars/finetuned/model.safetensors",
    } <= {f.path_in_repo for f in plan.files}
    assert "NOTICE" not in {f.path_in_repo for f in plan.files}
    assert "Card YAML:" in out and "license: apache-2.0" in out and "library_name: ltr-predictors" in out
    assert "Dry run: nothing was uploaded." in out


def test_upload_is_a_subcommand_and_the_script_runs_it(tmp_path, bert_pair, capsys):
    """`ltr-predictors upload` and `python upload_scripts/upload.py` are one command: same flags, same exit codes."""
    manifest = write_manifest(tmp_path / "m.yaml", bert_pair)
    with mock.patch.object(HfApi, "create_commit", side_effect=AssertionError("dry run sent a commit")):
        assert cli_main(["upload", "--manifest", str(manifest), "--dry-run"]) == 0
    assert "Dry run: nothing was uploaded." in capsys.readouterr().out
    assert cli_main(["upload", "--manifest", str(tmp_path / "missing.yaml")]) == 2
    assert "ltr-predictors upload: error: refused, nothing was sent to the Hub:" in capsys.readouterr().err
    script = subprocess.run(
        [sys.executable, str(REPO_ROOT / "upload_scripts" / "upload.py"), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )
    assert script.returncode == 0 and "--manifest" in script.stdout and "4  committed at the printed" in script.stdout


def test_upload_is_one_create_commit_with_every_file(tmp_path, bert_pair):
    """Against a mocked HfApi: uploads cannot reach a real Hub here (socket guard; olah is read-only)."""
    plan = plan_upload(Manifest.load(write_manifest(tmp_path / "m.yaml", bert_pair, private=True)))
    api = mock.create_autospec(HfApi, instance=True)
    api.create_commit.return_value = CommitInfo(
        commit_url="https://huggingface.co/testorg/published/commit/" + "a" * 40,
        commit_message="x",
        commit_description="",
        oid="a" * 40,
    )
    info = upload(plan, api)
    assert info.oid == "a" * 40
    api.create_repo.assert_called_once_with("testorg/published", private=True, exist_ok=True)
    api.create_branch.assert_not_called()
    api.create_commit.assert_called_once()
    operations = api.create_commit.call_args.kwargs["operations"]
    assert all(isinstance(op, CommitOperationAdd) for op in operations)
    by_path = {op.path_in_repo: op for op in operations}
    assert sorted(by_path) == sorted(f.path_in_repo for f in plan.files)
    assert by_path["LICENSE"].path_or_fileobj == (LICENSES_DIR / "Apache-2.0.txt").read_bytes()
    assert by_path["pars/LICENSE"].path_or_fileobj == (LICENSES_DIR / "Apache-2.0.txt").read_bytes()
    assert by_path["README.md"].path_or_fileobj == str(plan.card).encode()
    assert Path(by_path["nofilter/finetuned/model.safetensors"].path_or_fileobj) == (
        bert_pair["nofilter"] / "finetuned" / "model.safetensors"
    )
    assert not any(p.endswith((".bin", ".pt", ".pkl")) for p in by_path)


def test_refusals_stop_before_anything_is_sent(tmp_path, mixed_zoo, bert_pair, capsys):
    api = mock.create_autospec(HfApi, instance=True)
    with mock.patch("ltr_predictors.cli.upload.HfApi", return_value=api):
        manifest = write_manifest(tmp_path / "apache.yaml", mixed_zoo)
        assert main(["--manifest", str(manifest)]) == 2
        err = capsys.readouterr().err
        assert f"{manifest}: declares 'apache-2.0'" in err and "[rule: noncommercial-weights]" in err

        manifest = write_manifest(
            tmp_path / "link.yaml", bert_pair, license="other", license_name="apache-2.0", license_link="LICENSE.txt"
        )
        assert main(["--manifest", str(manifest)]) == 2
        assert "license_link 'LICENSE.txt' is neither a URL nor a file this upload adds" in capsys.readouterr().err

        (bert_pair["pars"] / "finetuned" / "pytorch_model.bin").write_bytes(b"pickle")
        manifest = write_manifest(tmp_path / "pickle.yaml", bert_pair)
        assert main(["--manifest", str(manifest)]) == 2
        err = capsys.readouterr().err
        assert "pytorch_model.bin: named like a pickle checkpoint (.bin); pickle files are never uploaded" in err
    api.create_commit.assert_not_called()
    api.create_repo.assert_not_called()
    with pytest.raises(PickleCheckpointError):
        plan_upload(Manifest.load(manifest))


class LocalGitHubApi:
    """Stands in for HfApi: `create_commit` writes the operations into a git repo that olah serves on loopback."""

    def __init__(self, local_hub) -> None:
        self.hub = local_hub
        self.endpoint = local_hub.endpoint
        self.commits: list[list[CommitOperationAdd]] = []

    def create_repo(self, repo_id, private=False, exist_ok=False):
        return None

    def create_commit(self, repo_id, operations, commit_message, revision=None):
        self.commits.append(operations)
        with tempfile.TemporaryDirectory() as tree:
            for op in operations:
                target = Path(tree) / op.path_in_repo
                target.parent.mkdir(parents=True, exist_ok=True)
                source = op.path_or_fileobj
                if isinstance(source, Path | str):
                    shutil.copyfile(source, target)
                else:
                    target.write_bytes(source)
            sha = self.hub.commit(repo_id, Path(tree), commit_message)
        return CommitInfo(
            commit_url=f"{self.endpoint}/{repo_id}/commit/{sha}",
            commit_message=commit_message,
            commit_description="",
            oid=sha,
            _endpoint=self.endpoint,
        )


def test_published_bert_repo_loads_back_through_olah(tmp_path, bert_pair, local_hub, capsys):
    manifest = write_manifest(tmp_path / "m.yaml", bert_pair, repo_id="testorg/published-bert")
    api = LocalGitHubApi(local_hub)
    with mock.patch("ltr_predictors.cli.upload.HfApi", return_value=api):
        assert main(["--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert len(api.commits) == 1
    assert "verified pars: loads back" in out and "verified nofilter: loads back" in out
    loaded = LengthPredictor.from_pretrained("testorg/published-bert", subfolder="pars")
    local = LengthPredictor.from_pretrained(bert_pair["pars"])
    np.testing.assert_allclose(loaded.score(PROBE_PROMPTS), local.score(PROBE_PROMPTS), rtol=1e-5, atol=1e-6)
    assert loaded.info.license.license == "apache-2.0" and loaded.info.license.source == "model card"  # ours
    assert len(loaded.info.source.commit or "") == 40


@pytest.mark.license(OPT)
def test_mixed_repo_round_trip_with_per_folder_licenses(tmp_path, mixed_zoo, local_hub, monkeypatch):
    manifest = write_manifest(
        tmp_path / "m.yaml",
        mixed_zoo,
        repo_id="testorg/published-mixed",
        license="other",
        license_name="mixed-licenses",
        license_link="LICENSE.md",
    )
    plan = plan_upload(Manifest.load(manifest))
    paths = {f.path_in_repo: f for f in plan.files}
    assert {"LICENSE.md", "NOTICE", "opt-rank/LICENSE", "opt-rank/NOTICE", "bert-rank/LICENSE"} <= set(paths)
    assert "bert-rank/NOTICE" not in paths
    assert paths["opt-rank/LICENSE"].content == (LICENSES_DIR / "LicenseRef-OPT-175B.txt").read_bytes()
    assert paths["bert-rank/LICENSE"].content == (LICENSES_DIR / "Apache-2.0.txt").read_bytes()
    assert OPT_NOTICE.encode() in (paths["LICENSE.md"].content or b"")

    commit = upload(plan, LocalGitHubApi(local_hub))  # type: ignore[arg-type]
    differences = verify_upload(plan, commit.oid, endpoint=local_hub.endpoint)
    assert set(differences) == {"opt-rank", "bert-rank"} and max(differences.values()) < 1e-4
    opt = LengthPredictor.from_pretrained("testorg/published-mixed", subfolder="opt-rank", revision=commit.oid)
    assert opt.info.license.license == OPT and opt.info.commercial_use is False
    with monkeypatch.context() as env:  # the repo's `other`/mixed card does not hide the folder's OPT terms
        env.delenv("LTR_PREDICTORS_ACCEPT_LICENSES")
        with pytest.raises(LicenseNotAcceptedError, match=OPT):
            LengthPredictor.from_pretrained("testorg/published-mixed", subfolder="opt-rank", revision=commit.oid)
    card = ModelCard.load("testorg/published-mixed")
    assert (card.data.license, card.data.license_name) == ("other", "mixed-licenses")

    plan.predictors[0].scores = plan.predictors[0].scores + 1.0  # a copy that scores differently is caught
    with pytest.raises(UploadVerificationError, match="scores differently"):
        verify_upload(plan, commit.oid, endpoint=local_hub.endpoint)


@pytest.mark.license(OPT)
def test_seed_zoo_manifest_dry_run(local_hub, capsys):
    """The shipped manifest, against the loopback replica of Luna2099/vllm-ltr-predictors."""
    assert main(["--manifest", str(SEED_MANIFEST), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Upload plan for ltr-predictors/vllm-ltr-seed-zoo" in out
    for name in SEED_ZOO:
        assert f"{name}/LICENSE" in out and f"{name}/finetuned/model.safetensors" in out
        assert f"{name}/NOTICE" in out if "opt" in name else f"{name}/NOTICE" not in out
    assert "license_name: mixed-licenses" in out and "kendall_tau" in out
    assert SEED_REPO in Manifest.load(SEED_MANIFEST).entries[0].hub  # type: ignore[operator]
