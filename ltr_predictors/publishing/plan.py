"""The upload plan: every file of the one commit an upload makes, decided and checked before anything is sent.

`plan_upload` resolves the manifest's predictors and scans their folders (only regular files inside them, no
pickle, each file and the commit under the size limits: see `folder_scan`), applies the rules of
`licensing.publication_rules`, loads each predictor and scores `PROBE_PROMPTS` to finite values, renders the card,
and lists the README, a LICENSE per folder (texts from `LICENSES/`, REUSE layout), the root LICENSE (or, for a
mixed repo, an index of the folders' licenses), the notices, the usage configs and the weights. Every repo path is
relative, normalised and inside the repo. `UploadPlan.describe` is the dry-run report; `UploadPlan.write_to` writes
the tree into a new or empty folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from huggingface_hub import CommitOperationAdd, ModelCard

from ..errors import ManifestError, OutputDirError, RepoPathError, UnsafeFileError, UploadVerificationError
from ..licensing.publication_rules import (
    RepoLicense,
    check_repo_license,
    license_file_names,
    license_text,
    root_license_file,
)
from ..licensing.terms import KNOWN_LICENSES
from ..predictor import LengthPredictor
from .cards import CardMetadata, PredictorFacts, collect_data_licenses, render_card
from .folder_scan import FolderFile, SizeLimits, cache_blobs, format_size, repo_path, scan_folder
from .manifest import Manifest

PROBE_PROMPTS = [
    "hello",
    "Write a long essay about the history of code, with a list of examples.",
    "yes or no?",
    "Tell me a short story.",
]


@dataclass(frozen=True)
class PlannedFile:
    """One file of the commit: copied from `source`, or generated (`content`); its repo path is checked here."""

    path_in_repo: str
    source: Path | None = None
    content: bytes | None = None

    def __post_init__(self) -> None:
        repo_path(self.path_in_repo, str(self.source or "a generated file"))

    @property
    def origin(self) -> str:
        return str(self.source) if self.source is not None else "generated"

    @property
    def size(self) -> int:
        return self.source.stat().st_size if self.source is not None else len(self.content or b"")

    def operation(self) -> CommitOperationAdd:
        """The commit operation; hashing the file here means an unreadable file stops us before any Hub call."""
        try:
            source = self.source or self.content or b""
            return CommitOperationAdd(path_in_repo=self.path_in_repo, path_or_fileobj=source)
        except (OSError, ValueError) as exc:
            raise UnsafeFileError(f"{self.origin}: cannot be read any more ({exc})") from exc

    def write_into(self, target: Path) -> None:
        """Copy into a new file `target` (never over an existing one), streaming large sources."""
        with target.open("xb") as out:
            if self.source is None:
                out.write(self.content or b"")
            else:
                with self.source.open("rb") as source:
                    shutil.copyfileobj(source, out)


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
        lines.append(f"Files ({len(self.files)}, {format_size(self.total_size)} in all):")
        lines += [f"  {format_size(f.size):>10}  {f.path_in_repo}" for f in self.files]
        lines += ["Card YAML:", "---", self.card.data.to_yaml(), "---"]
        return "\n".join(lines)

    def write_to(self, folder: Path) -> Path:
        """Write the repo tree into `folder`, new or empty (for inspection, or to serve it from a local mirror).

        A folder with files in it is refused: the tree would mix with them, or overwrite them. Every target is
        resolved and must stay inside the folder before the first byte is written.
        """
        root = folder.resolve()
        targets = [(root / planned.path_in_repo, planned) for planned in self.files]
        for target, planned in targets:
            if not target.resolve().is_relative_to(root):
                raise OutputDirError(f"{folder}: {planned.path_in_repo} would be written outside it, through a link")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise OutputDirError(f"{folder}: not a new or empty folder; write the repo tree into a new one")
        for target, planned in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            planned.write_into(target)
        return root


def plan_upload(
    manifest: Manifest,
    *,
    allow_unknown_license: bool = False,
    accept_license: str | Iterable[str] | None = None,
    licenses_dir: Path | None = None,
    limits: SizeLimits | None = None,
) -> UploadPlan:
    """Check every file, path, size and license, validate, render the card, list the files. Sends nothing.

    `limits` (default: the manifest's) bounds each file and the whole commit.
    """
    limits = limits or manifest.limits
    metadata = CardMetadata.load(manifest.card) if manifest.card else CardMetadata()
    resolved = {e.subfolder: e.resolve() for e in manifest.entries}
    scanned = {
        sub: scan_folder(found.folder, limits, blobs=cache_blobs(found.repo_root)) for sub, found in resolved.items()
    }
    folders = {sub: found.folder for sub, found in resolved.items()}
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
    for sub, folder_files in scanned.items():
        files += _predictor_files(sub, folder_files)
    card = render_card(manifest.repo_id, facts, repo, metadata, license_file_names(repo))
    files.insert(0, PlannedFile("README.md", content=str(card).encode("utf-8")))
    _check_distinct(files)
    plan = UploadPlan(manifest, repo, card, checked, files)
    limits.check_total(str(manifest.path), plan.total_size)
    return plan


def _check_predictor(subfolder: str, folder: Path, accept: str | Iterable[str] | None) -> CheckedPredictor:
    predictor = LengthPredictor.from_pretrained(folder, accept_license=accept)
    scores = predictor.score(PROBE_PROMPTS)
    if not np.all(np.isfinite(scores)):
        raise UploadVerificationError(f"{folder}: scores on the probe prompts are not finite: {scores.tolist()}")
    return CheckedPredictor(subfolder, folder, predictor.info.license.license, scores)


def _predictor_files(subfolder: str, files: list[FolderFile]) -> list[PlannedFile]:
    prefix = "" if subfolder == "." else f"{subfolder}/"
    return [PlannedFile(prefix + f.relative, source=f.source) for f in files]


def _check_distinct(files: list[PlannedFile]) -> None:
    """Two files for one repo path (a folder's own LICENSE or README where we generate one) would shadow each other."""
    seen: dict[str, PlannedFile] = {}
    for planned in files:
        other = seen.setdefault(planned.path_in_repo, planned)
        if other is not planned:
            raise RepoPathError(
                f"{planned.path_in_repo}: both {other.origin} and {planned.origin} would be uploaded there; "
                "remove the folder's own copy"
            )


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
