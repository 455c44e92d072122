"""Scripted Hub uploads: a manifest in, one atomic commit out, refused before anything is sent if a rule is broken.

    python upload_scripts/upload.py --manifest upload_scripts/manifests/seed-zoo.yaml --dry-run
    python upload_scripts/upload.py --manifest my.yaml        # token from HF_TOKEN or the `hf auth login` cache

A plan is complete and checked before any Hub call (`create_repo`, `create_branch`, `create_commit`): every repo
path is relative, normalised and inside the repo; each folder gives only its regular files (no symbolic link, nothing
whose real path leaves it, no pickle by name or content, each file and the commit under the size limits: see
`folder_scan`); every predictor loads with `LengthPredictor` and scores a few prompts to finite values; the rules
of `licensing.publication_rules` hold. It lists every file with its size: the README, a LICENSE per folder (texts from
`LICENSES/`, REUSE layout), the root LICENSE (or, for a mixed repo, an index of the folders' licenses), the notices,
the usage configs and the weights. `--dry-run` prints it and stops; `--output-dir` writes the tree into a new or
empty folder. A real upload sends it as one `create_commit`, then downloads each predictor back at that commit and
checks that it scores the probe prompts as the local copy did.

Exit codes:
  0  uploaded and verified (or the dry run / --output-dir tree is done)
  2  refused: a rule, a path, a file or the manifest is wrong; nothing was sent to the Hub
  3  the upload failed: the Hub refused a step (or did not answer) and reported no commit; the repo history is
     unchanged, though the repo may have been created and file content may have been transferred
  4  committed at the printed commit, but the read-back verification failed: the commit EXISTS on the Hub;
     inspect it, and revert it if the copy there is wrong
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError

from ..errors import (
    LTRPredictorError,
    ManifestError,
    OutputDirError,
    RepoPathError,
    UnsafeFileError,
    UploadFailedError,
    UploadVerificationError,
)
from ..licensing.publication_rules import (
    DeclaredLicense,
    RepoLicense,
    check_repo_license,
    license_file_names,
    license_text,
    root_license_file,
)
from ..licensing.terms import KNOWN_LICENSES
from ..loading.hub import HubOptions, PredictorSpec, ResolvedFolder, download_predictor
from ..predictor import LengthPredictor
from .cards import CardMetadata, PredictorFacts, collect_data_licenses, render_card
from .folder_scan import FolderFile, SizeLimits, cache_blobs, format_size, parse_size, repo_path, scan_folder

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_UPLOAD_FAILED = 3
EXIT_COMMITTED_UNVERIFIED = 4

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
    "max_file_size",
    "max_total_size",
}


@dataclass(frozen=True)
class ManifestEntry:
    """One predictor to publish: a local folder or a Hub spec (`REPO:SUBFOLDER@REVISION`), and its repo folder."""

    subfolder: str
    path: Path | None = None
    hub: str | None = None

    def resolve(self) -> ResolvedFolder:
        if self.path is not None:
            return ResolvedFolder(folder=self.path)
        assert self.hub is not None
        return download_predictor(PredictorSpec.parse(self.hub), HubOptions())


@dataclass
class Manifest:
    """`repo_id`, the license fields, `private`, `revision`, `commit_message`, `card` (metadata YAML), predictors,
    and the size limits `max_file_size` / `max_total_size` (bytes, or `500MB` / `2GiB`)."""

    path: Path
    repo_id: str
    declared: DeclaredLicense
    entries: list[ManifestEntry]
    private: bool = False
    revision: str | None = None
    commit_message: str = "Upload predictors with ltr-predictors"
    card: Path | None = None
    licenses_dir: Path | None = None
    limits: SizeLimits = field(default_factory=SizeLimits)

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
        nested = [(a, b) for a in subfolders for b in subfolders if b.startswith(a + "/")]
        if nested:
            raise ManifestError(f"{path}: subfolder {nested[0][1]!r} is inside {nested[0][0]!r}; they must not nest")
        limits = SizeLimits(
            **{field: parse_size(data[key], f"{path}: {key}") for key, field in _LIMIT_KEYS.items() if key in data}
        )
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
            limits=limits,
        )


_LIMIT_KEYS = {"max_file_size": "max_file", "max_total_size": "max_total"}


def _entry(item: Any, base: Path, where: str) -> ManifestEntry:
    if not isinstance(item, dict) or not item.get("subfolder") or ("path" in item) == ("hub" in item):
        raise ManifestError(f"{where}: needs 'subfolder' and exactly one of 'path' (a folder) or 'hub' (a spec)")
    raw = str(item["subfolder"]).rstrip("/")
    subfolder = "." if raw == "." else repo_path(raw, f"{where}: subfolder")
    if "hub" in item:
        return ManifestEntry(subfolder, hub=str(item["hub"]))
    folder = (base / str(item["path"])).resolve()
    if not folder.is_dir():
        raise ManifestError(f"{where}: {folder} is not a folder")
    return ManifestEntry(subfolder, path=folder)


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


def upload(plan: UploadPlan, api: HfApi) -> CommitInfo:
    """Create the repo if needed and send the whole plan as one atomic commit.

    Every file is read and hashed before the first Hub call. Raises `UploadFailedError` when a Hub call fails:
    `create_commit` is atomic, so no commit was made (the repo may have been created, content may have been sent).
    """
    m = plan.manifest
    operations = plan.operations()
    step = "create_repo"
    try:
        api.create_repo(m.repo_id, private=m.private, exist_ok=True)
        if m.revision and m.revision != "main":
            step = "create_branch"
            api.create_branch(m.repo_id, branch=m.revision, exist_ok=True)
        step = "create_commit"
        return api.create_commit(m.repo_id, operations=operations, commit_message=m.commit_message, revision=m.revision)
    except HfHubHTTPError as exc:
        raise UploadFailedError(f"{m.repo_id}: {step} failed, the Hub answered: {exc}; nothing was committed") from exc
    except Exception as exc:  # a network failure or a missing token: whatever it is, no commit came back
        raise UploadFailedError(
            f"{m.repo_id}: {step} failed ({type(exc).__name__}: {exc}); the Hub reported no commit: look at the "
            "repo's history before retrying"
        ) from exc


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Publish predictors to the Hugging Face Hub in one checked commit.",
        epilog=__doc__[__doc__.index("Exit codes:") :] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--manifest", required=True, type=Path, help="upload manifest (YAML)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (files, sizes, card YAML); send nothing")
    parser.add_argument("--output-dir", type=Path, help="write the repo tree into this new or empty folder instead")
    parser.add_argument("--allow-unknown-license", action="store_true", help="publish a backbone of unknown license")
    parser.add_argument("--accept-license", action="append", default=[], metavar="ID", help="to load for checks")
    parser.add_argument("--licenses-dir", type=Path, help="license texts (default: the LICENSES/ above the manifest)")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the login cache)")
    for flag, default in (("--max-file-size", SizeLimits().max_file), ("--max-total-size", SizeLimits().max_total)):
        parser.add_argument(
            flag,
            type=_size_flag,
            metavar="SIZE",
            help=f"limit in bytes or with a unit, 500MB or 4GiB (default: the manifest's, else {format_size(default)})",
        )
    return parser


def _size_flag(text: str) -> int:
    try:
        return parse_size(text, "size")
    except LTRPredictorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Plan, then dry-run, write or upload and verify; the exit code says how far it got (module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        manifest = Manifest.load(args.manifest)
        limits = dataclasses.replace(
            manifest.limits,
            **{k: v for k, v in (("max_file", args.max_file_size), ("max_total", args.max_total_size)) if v},
        )
        plan = plan_upload(
            manifest,
            allow_unknown_license=args.allow_unknown_license,
            accept_license=args.accept_license,
            licenses_dir=args.licenses_dir,
            limits=limits,
        )
        print(plan.describe())
        if args.dry_run:
            print("Dry run: nothing was uploaded.")
            return EXIT_OK
        if args.output_dir:
            print(f"Wrote the repo tree to {plan.write_to(args.output_dir)}")
            return EXIT_OK
        api = HfApi(token=args.token)
        commit = upload(plan, api)
    except UploadFailedError as exc:
        print(f"upload: failed, no commit was made: {exc}", file=sys.stderr)
        return EXIT_UPLOAD_FAILED
    except LTRPredictorError as exc:
        print(f"upload: refused, nothing was sent to the Hub: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"Committed {commit.oid} to {plan.manifest.repo_id}: {commit.commit_url}")
    try:
        differences = verify_upload(
            plan, commit.oid, endpoint=api.endpoint, token=args.token, accept_license=args.accept_license
        )
    except Exception as exc:  # whatever failed, the commit exists: say so rather than end in a traceback
        print(
            f"upload: committed {commit.oid} to {plan.manifest.repo_id}, but verification failed: "
            f"{type(exc).__name__}: {exc}. The commit is on the Hub: inspect it, and revert it if it is wrong.",
            file=sys.stderr,
        )
        return EXIT_COMMITTED_UNVERIFIED
    for subfolder, diff in differences.items():
        print(f"  verified {subfolder}: loads back, largest score difference {diff:.2g}")
    return EXIT_OK
