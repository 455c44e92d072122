"""The upload manifest: which predictors go to which Hub repo, under which declared license and size limits.

A YAML file: `repo_id`, `license` (with `license_name` / `license_link` for `other`), `private`, `revision`,
`commit_message`, `card` (card metadata YAML), `licenses_dir`, `max_file_size` / `max_total_size`, and
`predictors`, each a local `path` or a `hub` spec with the repo `subfolder` it goes to. Paths are relative to the
manifest; unknown keys, clashing or nested subfolders and missing folders are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError
from ..licensing.publication_rules import DeclaredLicense
from ..loading.hub import HubOptions, PredictorSpec, ResolvedFolder, download_predictor
from .folder_scan import SizeLimits, parse_size, repo_path

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
_LIMIT_KEYS = {"max_file_size": "max_file", "max_total_size": "max_total"}  # manifest key: `SizeLimits` field


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
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
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
