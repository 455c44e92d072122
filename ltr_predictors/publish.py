"""Scripted Hub uploads: a manifest in, one atomic commit out, refused before anything is sent if a rule is broken.

    python upload_scripts/upload.py --manifest upload_scripts/manifests/seed-zoo.yaml --dry-run
    python upload_scripts/upload.py --manifest my.yaml        # token from HF_TOKEN or the `hf auth login` cache

A plan validates every predictor (it loads with `LengthPredictor`, safetensors only, usage config valid, finite
scores on a few prompts), applies the license rules of `license_checks`, renders the card, and lists every file with
its size: the README, a LICENSE per folder (texts from `LICENSES/`, REUSE layout), the root LICENSE (or, for a mixed
repo, an index of the folders' licenses), the notices, the usage configs and the weights. `--dry-run` prints it and
stops. A real upload sends it as one `create_commit`, then downloads each predictor back at that commit and checks
that it scores the probe prompts as the local copy did.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard

from .cards import CardMetadata, PredictorFacts, collect_data_licenses, render_card
from .errors import LTRPredictorError, ManifestError, PickleCheckpointError, UploadVerificationError
from .hub import PICKLE_PATTERNS, HubOptions, PredictorSpec, download_predictor
from .license_checks import (
    DeclaredLicense,
    RepoLicense,
    check_repo_license,
    license_file_names,
    license_text,
    root_license_file,
)
from .licenses import KNOWN_LICENSES
from .predictor import LengthPredictor

PROBE_PROMPTS = [
    "hello",
    "Write a long essay about the history of code, with a list of examples.",
    "yes or no?",
    "Tell me a short story.",
]
_MANIFEST_KEYS = {
    "repo_id",
    "license",
    "license_name",
    "license_link",
    "private",
    "revision",
    "commit_message",
    "card",
    "licenses_dir",
    "predictors",
}


@dataclass(frozen=True)
class ManifestEntry:
    """One predictor to publish: a local folder or a Hub spec (`REPO:SUBFOLDER@REVISION`), and its repo folder."""

    subfolder: str
    path: Path | None = None
    hub: str | None = None

    def resolve(self) -> Path:
        if self.path is not None:
            return self.path
        assert self.hub is not None
        return download_predictor(PredictorSpec.parse(self.hub), HubOptions()).folder


@dataclass
class Manifest:
    """`repo_id`, the license fields, `private`, `revision`, `commit_message`, `card` (metadata YAML), predictors."""

    path: Path
    repo_id: str
    declared: DeclaredLicense
    entries: list[ManifestEntry]
    private: bool = False
    revision: str | None = None
    commit_message: str = "Upload predictors with ltr-predictors"
    card: Path | None = None
    licenses_dir: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"{path}: cannot read the manifest ({exc})") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"{path}: expected a YAML mapping")
        unknown = sorted(set(data) - _MANIFEST_KEYS)
        if unknown:
            raise ManifestError(f"{path}: unknown keys {unknown}; known: {sorted(_MANIFEST_KEYS)}")
        for key in ("repo_id", "license", "predictors"):
            if not data.get(key):
                raise ManifestError(f"{path}: missing '{key}'")
        base = path.parent
        entries = [_entry(item, base, f"{path}: predictors[{i}]") for i, item in enumerate(data["predictors"])]
        subfolders = [e.subfolder for e in entries]
        if len(set(subfolders)) != len(subfolders) or ("." in subfolders and len(entries) > 1):
            raise ManifestError(f"{path}: subfolders must be distinct, and '.' (repo root) only for one predictor")
        return cls(
            path=path,
            repo_id=str(data["repo_id"]),
            declared=DeclaredLicense(
                str(data["license"]), data.get("license_name"), data.get("license_link"), where=str(path)
            ),
            entries=entries,
            private=bool(data.get("private", False)),
            revision=data.get("revision"),
            commit_message=data.get("commit_message") or cls.commit_message,
            card=base / data["card"] if data.get("card") else None,
            licenses_dir=base / data["licenses_dir"] if data.get("licenses_dir") else None,
        )


def _entry(item: Any, base: Path, where: str) -> ManifestEntry:
    if not isinstance(item, dict) or not item.get("subfolder") or ("path" in item) == ("hub" in item):
        raise ManifestError(f"{where}: needs 'subfolder' and exactly one of 'path' (a folder) or 'hub' (a spec)")
    subfolder = str(item["subfolder"]).strip("/") or "."
    if "hub" in item:
        return ManifestEntry(subfolder, hub=str(item["hub"]))
    folder = (base / str(item["path"])).resolve()
    if not folder.is_dir():
        raise ManifestError(f"{where}: {folder} is not a folder")
    return ManifestEntry(subfolder, path=folder)


@dataclass(frozen=True)
class PlannedFile:
    """One file of the commit: copied from `source`, or generated (`content`)."""

    path_in_repo: str
    source: Path | None = None
    content: bytes | None = None

    @property
    def size(self) -> int:
        return self.source.stat().st_size if self.source is not None else len(self.content or b"")

    def operation(self) -> CommitOperationAdd:
        return CommitOperationAdd(path_in_repo=self.path_in_repo, path_or_fileobj=self.source or self.content or b"")


@dataclass
class CheckedPredictor:
    """A predictor that passed validation, with its scores on `PROBE_PROMPTS` (compared after the upload)."""

    subfolder: str
    folder: Path
    license: str | None
    scores: np.ndarray


@dataclass
class UploadPlan:
    """Everything one commit will contain, decided and checked before anything is sent."""

    manifest: Manifest
    license: RepoLicense
    card: ModelCard
    predictors: list[CheckedPredictor]
    files: list[PlannedFile] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def operations(self) -> list[CommitOperationAdd]:
        return [f.operation() for f in self.files]

    def describe(self) -> str:
        """The dry-run report: target, license decision, each file with its size, and the card's YAML."""
        m = self.manifest
        lines = [
            f"Upload plan for {m.repo_id} (revision {m.revision or 'main'}, private: {m.private}), one commit:",
            f"  license: {m.declared.license}"
            + (f" (name {m.declared.license_name}, link {m.declared.license_link})" if m.declared.license_name else ""),
        ]
        lines += [f"  {p.subfolder}: {p.license or 'unknown'} <- {p.folder}" for p in self.predictors]
        lines.append(f"Files ({len(self.files)}, {_size(self.total_size)} in all):")
        lines += [f"  {_size(f.size):>10}  {f.path_in_repo}" for f in self.files]
        lines += ["Card YAML:", "---", self.card.data.to_yaml(), "---"]
        return "\n".join(lines)

    def write_to(self, folder: Path) -> Path:
        """Write the repo tree locally (for inspection, or to serve it from a local mirror)."""
        for planned in self.files:
            target = folder / planned.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(planned.source.read_bytes() if planned.source else planned.content or b"")
        return folder


def plan_upload(
    manifest: Manifest,
    *,
    allow_unknown_license: bool = False,
    accept_license: str | Iterable[str] | None = None,
    licenses_dir: Path | None = None,
) -> UploadPlan:
    """Validate, check licenses, render the card and list the files. Raises before anything is uploaded."""
    metadata = CardMetadata.load(manifest.card) if manifest.card else CardMetadata()
    folders = {e.subfolder: e.resolve() for e in manifest.entries}
    facts = [PredictorFacts.from_folder(folder, sub, metadata) for sub, folder in folders.items()]
    repo = check_repo_license(
        manifest.declared,
        [f.license for f in facts],
        data_licenses=collect_data_licenses(facts, metadata),
        allow_unknown_license=allow_unknown_license,
    )
    texts_dir = licenses_dir or manifest.licenses_dir or _find_licenses_dir(manifest.path)
    files = _license_files(repo, texts_dir)
    link = manifest.declared.license_link
    if link and "://" not in link and link not in {f.path_in_repo for f in files}:
        raise ManifestError(
            f"{manifest.path}: license_link {link!r} is neither a URL nor a file this upload adds "
            f"({', '.join(f.path_in_repo for f in files)})"
        )
    checked = [_check_predictor(sub, folder, accept_license) for sub, folder in folders.items()]
    for sub, folder in folders.items():
        files += _predictor_files(sub, folder)
    card = render_card(manifest.repo_id, facts, repo, metadata, license_file_names(repo))
    files.insert(0, PlannedFile("README.md", content=str(card).encode("utf-8")))
    return UploadPlan(manifest, repo, card, checked, files)


def upload(plan: UploadPlan, api: HfApi) -> CommitInfo:
    """Create the repo if needed and send the whole plan as one atomic commit."""
    m = plan.manifest
    api.create_repo(m.repo_id, private=m.private, exist_ok=True)
    if m.revision and m.revision != "main":
        api.create_branch(m.repo_id, branch=m.revision, exist_ok=True)
    return api.create_commit(
        m.repo_id, operations=plan.operations(), commit_message=m.commit_message, revision=m.revision
    )


def verify_upload(
    plan: UploadPlan,
    revision: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    accept_license: str | Iterable[str] | None = None,
) -> dict[str, float]:
    """Download each predictor at `revision`, load it, and compare its scores; return the largest difference."""
    differences: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ltr-verify-") as cache:
        for checked in plan.predictors:
            loaded = LengthPredictor.from_pretrained(
                plan.manifest.repo_id,
                subfolder=None if checked.subfolder == "." else checked.subfolder,
                revision=revision,
                accept_license=accept_license,
                endpoint=endpoint,
                token=token,
                cache_dir=cache,
            )
            scores = loaded.score(PROBE_PROMPTS)
            differences[checked.subfolder] = float(np.max(np.abs(scores - checked.scores)))
            if not np.allclose(scores, checked.scores, rtol=1e-4, atol=1e-4):
                raise UploadVerificationError(
                    f"{plan.manifest.repo_id}:{checked.subfolder}@{revision}: downloaded copy scores differently "
                    f"from {checked.folder} (largest difference {differences[checked.subfolder]:.3g})"
                )
    return differences


def _check_predictor(subfolder: str, folder: Path, accept: str | Iterable[str] | None) -> CheckedPredictor:
    pickles = sorted(str(p) for pattern in PICKLE_PATTERNS for p in folder.rglob(pattern))
    if pickles:
        raise PickleCheckpointError(f"{pickles[0]}: pickle checkpoints are never uploaded; keep safetensors only")
    predictor = LengthPredictor.from_pretrained(folder, accept_license=accept)
    scores = predictor.score(PROBE_PROMPTS)
    if not np.all(np.isfinite(scores)):
        raise UploadVerificationError(f"{folder}: scores on the probe prompts are not finite: {scores.tolist()}")
    return CheckedPredictor(subfolder, folder, predictor.info.license.license, scores)


def _predictor_files(subfolder: str, folder: Path) -> list[PlannedFile]:
    prefix = "" if subfolder == "." else f"{subfolder}/"
    return [
        PlannedFile(prefix + path.relative_to(folder).as_posix(), source=path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def _license_files(repo: RepoLicense, licenses_dir: Path) -> list[PlannedFile]:
    """A LICENSE per folder, the root license file (text, or an index when mixed) and a NOTICE when required."""
    names = license_file_names(repo)
    files: dict[str, bytes] = {}
    for item in repo.folders:
        if item.known and item.info.license:
            files[names[item.subfolder]] = license_text(item.info.license, licenses_dir).encode("utf-8")
    if repo.mixed:
        rows = [f"| `{f.subfolder}` | {f.info.license or 'unknown'} | `{names[f.subfolder]}` |" for f in repo.folders]
        index = [
            "# Licenses",
            "",
            "This repository mixes licenses. Each folder is under the license in its own LICENSE file:",
            "",
            "| folder | license | file |",
            "|---|---|---|",
            *rows,
            "",
            *repo.notices,
            "",
        ]
        files[root_license_file(repo)] = "\n".join(index).encode("utf-8")
    elif repo.folders[0].known and repo.folders[0].info.license:
        text = license_text(repo.folders[0].info.license, licenses_dir)
        files.setdefault(root_license_file(repo), text.encode("utf-8"))
    if repo.notices:
        files["NOTICE"] = ("\n".join(repo.notices) + "\n").encode("utf-8")
        for item in repo.folders:
            notice = KNOWN_LICENSES[item.info.license].notice if item.known and item.info.license else None
            if notice and item.subfolder != ".":
                files[f"{item.subfolder}/NOTICE"] = (notice + "\n").encode("utf-8")
    return [PlannedFile(path, content=content) for path, content in sorted(files.items())]


def _find_licenses_dir(manifest_path: Path) -> Path:
    for parent in manifest_path.resolve().parents:
        if (parent / "LICENSES").is_dir():
            return parent / "LICENSES"
    raise ManifestError(f"{manifest_path}: no LICENSES/ folder above it; set 'licenses_dir' or --licenses-dir")


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Publish predictors to the Hugging Face Hub in one checked commit.")
    parser.add_argument("--manifest", required=True, type=Path, help="upload manifest (YAML)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (files, sizes, card YAML); send nothing")
    parser.add_argument("--output-dir", type=Path, help="write the repo tree here instead of uploading")
    parser.add_argument("--allow-unknown-license", action="store_true", help="publish a backbone of unknown license")
    parser.add_argument("--accept-license", action="append", default=[], metavar="ID", help="to load for checks")
    parser.add_argument("--licenses-dir", type=Path, help="license texts (default: the LICENSES/ above the manifest)")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the login cache)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = plan_upload(
            Manifest.load(args.manifest),
            allow_unknown_license=args.allow_unknown_license,
            accept_license=args.accept_license,
            licenses_dir=args.licenses_dir,
        )
        print(plan.describe())
        if args.dry_run:
            print("Dry run: nothing was uploaded.")
            return 0
        if args.output_dir:
            print(f"Wrote the repo tree to {plan.write_to(args.output_dir)}")
            return 0
        api = HfApi(token=args.token)
        commit = upload(plan, api)
        print(f"Committed {commit.oid} to {plan.manifest.repo_id}: {commit.commit_url}")
        differences = verify_upload(
            plan, commit.oid, endpoint=api.endpoint, token=args.token, accept_license=args.accept_license
        )
        for subfolder, diff in differences.items():
            print(f"  verified {subfolder}: loads back, largest score difference {diff:.2g}")
        return 0
    except LTRPredictorError as exc:
        print(f"upload: refused: {exc}", file=sys.stderr)
        return 2
