"""Sealed uploads: what leaves a folder, where it goes, how large it may be, and what the exit code says happened.

Every refusal runs a REAL upload (no `--dry-run`) against a mocked `HfApi` and asserts that no method of it was
called: uploads cannot reach a real Hub here (the socket guard refuses off-machine connections, olah is read-only).
The mock also stands in for a Hub that fails a commit (HTTP 500, a dropped connection). The "committed but not
verified" case commits into a local git repo that olah serves, and the check downloads it back through the Hub API.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import zlib
from pathlib import Path
from unittest import mock

import httpx2
import numpy as np
import pytest
import torch
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from test_publish import LocalGitHubApi, predictor_with_tokenizer, write_manifest

from ltr_predictors import SizeLimitError, UnsafeFileError
from ltr_predictors.cli.upload import build_parser, main
from ltr_predictors.publishing.folder_scan import SizeLimits, parse_size, scan_folder
from ltr_predictors.publishing.manifest import Manifest
from ltr_predictors.publishing.plan import plan_upload
from ltr_predictors.publishing.upload import upload

GiB = 2**30


@pytest.fixture(scope="module")
def source_predictor(tmp_path_factory) -> Path:
    return predictor_with_tokenizer(tmp_path_factory.mktemp("src") / "pars", "bert", seed=1)


@pytest.fixture
def folder(tmp_path, source_predictor) -> Path:
    """A fresh copy of a valid predictor (it uploads as it is) that a test may spoil."""
    return Path(shutil.copytree(source_predictor, tmp_path / "pars"))


@pytest.fixture
def api():
    """The `HfApi` that `main` builds: a mock, so that a test can assert it was never called."""
    api = mock.create_autospec(HfApi, instance=True)
    with mock.patch("ltr_predictors.cli.upload.HfApi", return_value=api):
        yield api


def upload_main(manifest: Path, *flags: str) -> int:
    return main(["--manifest", str(manifest), *flags])


def refused(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert "ltr-predictors upload: error: refused, nothing was sent to the Hub:" in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    return err


# ------------------------------------------------------------------------------------------------ symbolic links
def _link_outside_file(folder: Path, outside: Path) -> Path:
    (outside / "token").write_text("hf_secret_token")
    link = folder / "finetuned" / "notes.txt"
    link.symlink_to(outside / "token")
    return link


def _link_outside_dir(folder: Path, outside: Path) -> Path:
    (outside / "token").write_text("hf_secret_token")
    link = folder / "extra"
    link.symlink_to(outside, target_is_directory=True)
    return link


def _link_inside(folder: Path, outside: Path) -> Path:
    link = folder / "finetuned" / "usage_copy.json"
    link.symlink_to(Path("..") / "usage_config.json")
    return link


@pytest.mark.parametrize("make_link", [_link_outside_file, _link_outside_dir, _link_inside])
def test_symbolic_links_are_refused_before_any_hub_call(tmp_path, folder, api, capsys, make_link):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = make_link(folder, outside)
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder})
    assert upload_main(manifest) == 2
    refused(capsys, f"{link}: a symbolic link")
    assert api.mock_calls == []
    assert upload_main(manifest, "--dry-run") == 2
    assert "hf_secret_token" not in capsys.readouterr().out


def test_special_files_are_refused(tmp_path, folder, api, capsys):
    os.mkfifo(folder / "finetuned" / "pipe")
    assert upload_main(write_manifest(tmp_path / "m.yaml", {"pars": folder})) == 2
    refused(capsys, "pipe: not a regular file")
    assert api.mock_calls == []


def test_hub_cache_links_are_followed_only_into_their_own_blobs(tmp_path):
    repo = tmp_path / "models--org--zoo"
    snapshot = repo / "snapshots" / ("a" * 40)
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "b1").write_text('{"model": {}}')
    (snapshot / "pars").mkdir(parents=True)
    (snapshot / "pars" / "usage_config.json").symlink_to(Path("../../../blobs/b1"))
    files = scan_folder(snapshot / "pars", SizeLimits(), blobs=repo / "blobs")
    assert [(f.relative, f.source) for f in files] == [("usage_config.json", (repo / "blobs" / "b1").resolve())]

    (tmp_path / "token").write_text("secret")
    (snapshot / "pars" / "token").symlink_to(tmp_path / "token")
    with pytest.raises(ValueError, match="token: a symbolic link"):
        scan_folder(snapshot / "pars", SizeLimits(), blobs=repo / "blobs")


# -------------------------------------------------------------------------------------------------- repo paths
@pytest.mark.parametrize(
    "subfolder", ["../escape", "..", "a/../../b", ".git", "x/.GIT/y", "/abs", "a//b", "./a", "a\\b", "a\nb"]
)
def test_subfolders_outside_the_repo_are_refused_before_any_hub_call(tmp_path, folder, api, capsys, subfolder):
    manifest = write_manifest(tmp_path / "m.yaml", {subfolder: folder})
    before = sorted(tmp_path.rglob("*"))
    assert upload_main(manifest) == 2
    refused(capsys, f"{subfolder!r} is not a path inside the repo")
    assert api.mock_calls == []
    assert upload_main(manifest, "--output-dir", str(tmp_path / "out" / "tree")) == 2
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, inside the output dir or beside it


def test_nested_subfolders_are_refused(tmp_path, folder, source_predictor, api, capsys):
    manifest = write_manifest(tmp_path / "m.yaml", {"group": folder, "group/pars": source_predictor})
    assert upload_main(manifest) == 2
    refused(capsys, "subfolder 'group/pars' is inside 'group'")
    assert api.mock_calls == []


def test_a_folder_file_that_would_shadow_a_generated_one_is_refused(tmp_path, folder, api, capsys):
    (folder / "LICENSE").write_text("MIT License\n")  # would replace the Apache-2.0 text we generate for pars/
    assert upload_main(write_manifest(tmp_path / "m.yaml", {"pars": folder})) == 2
    refused(capsys, f"pars/LICENSE: both generated and {folder / 'LICENSE'} would be uploaded there")
    assert api.mock_calls == []


# ----------------------------------------------------------------------------------------------------- pickles
def _torch_zip() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    return buffer.getvalue()


def _object_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("relative", "content"),
    [
        ("finetuned/MODEL.BIN", b"whatever the content"),
        ("finetuned/model.joblib", zlib.compress(pickle.dumps({"w": [1.0]}, protocol=4))),
        ("extra/scores.pkl.gz", gzip.compress(pickle.dumps([1, 2, 3]))),
        ("finetuned/weights.dat", pickle.dumps({"w": [1.0]}, protocol=4)),
        ("finetuned/table.npy", _object_npy()),
        ("finetuned/checkpoint", _torch_zip()),
    ],
)
def test_pickles_are_refused_by_name_or_content(tmp_path, folder, api, capsys, relative, content):
    path = folder / relative
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    assert upload_main(write_manifest(tmp_path / "m.yaml", {"pars": folder})) == 2
    refused(capsys, f"{path}: ", "pickle files are never uploaded")
    assert api.mock_calls == []


# ------------------------------------------------------------------------------------------------------- sizes
def test_size_limits_refuse_before_any_hub_call_and_name_the_override(tmp_path, folder, api, capsys):
    huge = folder / "finetuned" / "huge.dat"
    with huge.open("wb") as sparse:  # 60 GiB that take no disk
        sparse.truncate(60 * GiB)
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder})
    assert upload_main(manifest) == 2
    refused(capsys, f"{huge}: 60.0 GiB is over the per-file limit of 2.0 GiB", "--max-file-size", "max_file_size")
    assert upload_main(manifest, "--max-file-size", "64GiB") == 2
    refused(capsys, "over the total limit of 10.0 GiB", "--max-total-size", "max_total_size")
    assert api.mock_calls == []

    assert upload_main(manifest, "--dry-run", "--max-file-size", "64GiB", "--max-total-size", "70GB") == 0
    assert "60.0 GiB  pars/finetuned/huge.dat" in capsys.readouterr().out
    keyed = write_manifest(tmp_path / "keyed.yaml", {"pars": folder}, max_file_size="64GiB", max_total_size=80 * GiB)
    assert upload_main(keyed, "--dry-run") == 0
    assert upload_main(keyed, "--dry-run", "--max-total-size", "1MiB") == 2  # the flag wins over the manifest
    refused(capsys, "over the total limit of 1.0 MiB")


@pytest.mark.parametrize(
    ("text", "size"), [(1024, 1024), ("1500", 1500), ("500MB", 500 * 10**6), ("2GiB", 2 * GiB), ("1.5 kib", 1536)]
)
def test_sizes_parse_with_units(text, size):
    assert parse_size(text, "where") == size


@pytest.mark.parametrize("text", ["2XB", "-1", "0", "", "1e9", "GiB", True, None, [1]])
def test_bad_sizes_are_refused(text):
    with pytest.raises(SizeLimitError, match=r"where: .* is not a size"):
        parse_size(text, "where")


def test_bad_size_in_manifest_or_flag_is_refused(tmp_path, folder, api, capsys):
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder}, max_file_size="lots")
    assert upload_main(manifest) == 2
    refused(capsys, "m.yaml: max_file_size: 'lots' is not a size")
    with pytest.raises(SystemExit) as exit_info:
        upload_main(write_manifest(tmp_path / "ok.yaml", {"pars": folder}), "--max-total-size", "12 parsecs")
    assert exit_info.value.code == 2 and "'12 parsecs' is not a size" in capsys.readouterr().err
    assert api.mock_calls == []


# -------------------------------------------------------------------------------------------------- output dir
def test_output_dir_gets_exactly_the_plan(tmp_path, folder, api):
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder})
    out = tmp_path / "out"
    assert upload_main(manifest, "--output-dir", str(out)) == 0
    plan = plan_upload(Manifest.load(manifest))
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(f.path_in_repo for f in plan.files)
    weights = "finetuned/model.safetensors"
    assert (out / "pars" / weights).read_bytes() == (folder / weights).read_bytes()
    assert api.mock_calls == []


def test_output_dir_must_be_new_or_empty(tmp_path, folder, capsys):
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder})
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert upload_main(manifest, "--output-dir", str(out)) == 2
    refused(capsys, f"{out}: not a new or empty folder")
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_output_dir_never_writes_through_a_link_out_of_it(tmp_path, folder, capsys):
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "pars").symlink_to(elsewhere, target_is_directory=True)
    assert upload_main(manifest, "--output-dir", str(out)) == 2
    refused(capsys, "would be written outside it")
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------------------------------------- exit codes
def _http_error(status: int) -> HfHubHTTPError:
    request = httpx2.Request("POST", "https://huggingface.co/api/models/testorg/published/commit/main")
    return HfHubHTTPError(f"{status} Server Error", response=httpx2.Response(status, request=request))


@pytest.mark.parametrize(
    ("failing", "error", "message"),
    [
        ("create_commit", _http_error(500), "create_commit failed, the Hub answered: 500 Server Error"),
        ("create_repo", _http_error(403), "create_repo failed, the Hub answered: 403 Server Error"),
        ("create_commit", httpx2.ConnectError("connection reset"), "ConnectError: connection reset"),
    ],
)
def test_a_failed_hub_call_exits_3_and_says_no_commit_was_made(tmp_path, folder, api, capsys, failing, error, message):
    getattr(api, failing).side_effect = error
    assert upload_main(write_manifest(tmp_path / "m.yaml", {"pars": folder})) == 3
    err = capsys.readouterr().err
    assert "upload: failed, no commit was made: testorg/published: " in err and message in err
    assert "Traceback" not in err and "refused" not in err
    api.create_repo.assert_called_once()
    assert api.create_commit.call_count == (1 if failing == "create_commit" else 0)


class CorruptingHub(LocalGitHubApi):
    """A Hub that stores other weights than those sent: the commit lands, the read-back check must catch it."""

    def __init__(self, local_hub, wrong_weights: Path) -> None:
        super().__init__(local_hub)
        self.wrong_weights = wrong_weights

    def create_commit(self, repo_id, operations, commit_message, revision=None):
        swapped = [
            CommitOperationAdd(op.path_in_repo, self.wrong_weights) if op.path_in_repo.endswith(".safetensors") else op
            for op in operations
        ]
        return super().create_commit(repo_id, swapped, commit_message, revision)


def test_committed_but_unverified_exits_4_and_says_the_commit_exists(tmp_path, folder, local_hub, capsys):
    other = predictor_with_tokenizer(tmp_path / "other", "bert", seed=2)
    manifest = write_manifest(tmp_path / "m.yaml", {"pars": folder}, repo_id="testorg/unverified")
    hub = CorruptingHub(local_hub, other / "finetuned" / "model.safetensors")
    with mock.patch("ltr_predictors.cli.upload.HfApi", return_value=hub):
        assert upload_main(manifest) == 4
    captured = capsys.readouterr()
    sha = captured.out.split("Committed ", 1)[1].split()[0]
    assert f"upload: committed {sha} to testorg/unverified, but verification failed" in captured.err
    assert "scores differently" in captured.err and "refused" not in captured.err
    assert "pars/finetuned/model.safetensors" in HfApi().list_repo_files("testorg/unverified", revision=sha)


def test_a_file_gone_after_planning_stops_the_upload_before_any_hub_call(tmp_path, folder):
    plan = plan_upload(Manifest.load(write_manifest(tmp_path / "m.yaml", {"pars": folder})))
    (folder / "finetuned" / "model.safetensors").unlink()
    api = mock.create_autospec(HfApi, instance=True)
    with pytest.raises(UnsafeFileError, match=r"model\.safetensors: cannot be read any more"):
        upload(plan, api)
    assert api.mock_calls == []


def test_help_documents_the_exit_codes():
    text = build_parser().format_help()
    for line in ("0  uploaded and verified", "2  refused", "3  the upload failed", "4  committed at the printed"):
        assert line in text
