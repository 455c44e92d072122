"""License rules for publishing predictors: what a Hub repo may declare, given where each predictor's weights come from.

Every refusal is a `LicenseRefusal` naming the file at fault and the rule it breaks (`rule` attribute, also in the
message), so that a publisher knows what to change. The rules:

- `noncommercial-weights`: weights derived from a non-commercial backbone (OPT) are never declared under a license
  that allows commercial use (apache-2.0, mit, ...).
- `mixed-needs-other`: a repo whose folders are under different licenses declares `license: other`, ships a LICENSE
  file per folder and the OPT notice (the plan adds those), and does not pretend to be under one of them.
- `declared-matches-provenance`: the declared license is the one each predictor's provenance gives (its
  `ltr_config.json` license block, else its backbone), and a provenance block never contradicts its backbone.
- `other-needs-name-and-link`: `license: other` comes with `license_name` and `license_link`.
- `unknown-license`: a predictor whose license cannot be decided is refused unless explicitly allowed.
- `data-attribution`: training data under an attribution license (CC-BY) names its attribution.
- `license-text`: every license used has its text in `LICENSES/` (REUSE layout), which is what gets uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LicenseRefusal
from ..loading.checkpoints import model_config
from ..loading.ltr_config import LTR_CONFIG_NAME, LTRConfig
from ..loading.usage_config import USAGE_CONFIG_NAME, UsageConfig
from .terms import KNOWN_LICENSES, LicenseInfo, license_floor, normalize_license_id, resolve_license

MIXED_LICENSE_NAME = "mixed-licenses"


@dataclass(frozen=True)
class DeclaredLicense:
    """The license fields a repo's card declares (from a manifest, or suggested from the folders)."""

    license: str
    license_name: str | None = None
    license_link: str | None = None
    where: str = "manifest"

    @property
    def id(self) -> str:
        """Our id: the Hub id, or `license_name` when the license is `other`."""
        return normalize_license_id(self.license, self.license_name) or self.license

    @property
    def commercial_use(self) -> bool | None:
        known = KNOWN_LICENSES.get(self.id)
        return None if known is None else known.commercial_use


@dataclass
class FolderLicense:
    """One predictor folder, its path in the repo and the license its provenance gives."""

    subfolder: str
    folder: Path
    backbone: str | None
    info: LicenseInfo

    @property
    def known(self) -> bool:
        return self.info.known


@dataclass
class RepoLicense:
    """The checked outcome: the declared license, each folder's license, and what the repo must ship."""

    declared: DeclaredLicense
    folders: list[FolderLicense]
    data_licenses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def license_ids(self) -> list[str]:
        return sorted({f.info.license or "unknown" for f in self.folders})

    @property
    def mixed(self) -> bool:
        return len(self.license_ids) > 1

    @property
    def notices(self) -> list[str]:
        """Attribution notices the licenses in the repo require (the OPT notice for OPT-derived weights)."""
        found = {KNOWN_LICENSES[f.info.license].notice for f in self.folders if f.known and f.info.license}
        return sorted(n for n in found if n)


def folder_license(folder: Path) -> tuple[str | None, LicenseInfo]:
    """The backbone and license of the predictor in `folder`, from its `ltr_config.json` or its backbone.

    The backbone's floor comes from `pred_model` and the weights' own `config.json` (`license_floor`), as when
    loading. Refuses (`declared-matches-provenance`) a license block looser than that floor, instead of silently
    preferring the backbone as loading does.
    """
    usage = UsageConfig.from_file(folder / USAGE_CONFIG_NAME)
    ltr = LTRConfig.from_folder(folder, usage.num_labels)
    config, config_where = model_config(folder, usage)
    floor = license_floor(usage.pred_model, config, config_where)
    block = ltr.license or {}
    declared = KNOWN_LICENSES.get(normalize_license_id(block.get("license"), block.get("license_name")) or "")
    if declared and floor and not floor.allows(declared.id):
        raise LicenseRefusal(
            folder / LTR_CONFIG_NAME,
            "declared-matches-provenance",
            f"declares license {declared.id!r}, but the weights derive from the {floor.source} under "
            f"{floor.license!r}, whose terms bind them; declare the backbone's license",
        )
    info = resolve_license(ltr.license, None, usage.pred_model, model_config=config, model_config_where=config_where)
    return usage.pred_model, info


def suggest_declared(folders: list[FolderLicense]) -> DeclaredLicense:
    """The card fields that the rules accept for these folders: the one license, or `other` when mixed."""
    ids = sorted({f.info.license or "unknown" for f in folders})
    if len(ids) > 1:
        return DeclaredLicense("other", MIXED_LICENSE_NAME, "LICENSE.md", where="suggested")
    known = KNOWN_LICENSES.get(ids[0])
    if known is None:
        return DeclaredLicense("other", ids[0], "LICENSE", where="suggested")
    if known.hub_license == "other":
        return DeclaredLicense("other", known.id, "LICENSE", where="suggested")
    return DeclaredLicense(known.hub_license, where="suggested")


def check_repo_license(
    declared: DeclaredLicense,
    folders: list[FolderLicense],
    *,
    data_licenses: list[dict[str, Any]] | None = None,
    allow_unknown_license: bool = False,
) -> RepoLicense:
    """Apply the rules (module docstring) to a repo of `folders` declaring `declared`; return what it must ship."""
    where = declared.where
    if declared.license.strip().lower() == "other" and not (declared.license_name and declared.license_link):
        raise LicenseRefusal(
            where,
            "other-needs-name-and-link",
            "`license: other` needs `license_name` and `license_link` (a LICENSE file in the repo or a URL)",
        )
    for item in folders:
        if not item.known and not allow_unknown_license:
            raise LicenseRefusal(
                item.folder / USAGE_CONFIG_NAME,
                "unknown-license",
                f"the license of backbone {item.backbone!r} is unknown (license {item.info.license!r}, "
                f"source: {item.info.source}); add a license block to {LTR_CONFIG_NAME} or pass "
                "--allow-unknown-license after checking its terms",
            )
    for item in folders:
        if item.known and item.info.commercial_use is False and _may_allow_commercial(declared):
            raise LicenseRefusal(
                where,
                "noncommercial-weights",
                f"declares {declared.id!r}, but {item.subfolder} ({item.folder}) derives from {item.backbone} under "
                f"{item.info.license!r}, which forbids commercial use; it can never be published under a license "
                "that allows it",
            )
    result = RepoLicense(declared, folders, list(data_licenses or []))
    if result.mixed:
        if declared.license.strip().lower() != "other" or declared.id in KNOWN_LICENSES:
            raise LicenseRefusal(
                where,
                "mixed-needs-other",
                f"the folders are under different licenses ({', '.join(result.license_ids)}); declare "
                f"`license: other` with a license_name that is none of them (e.g. {MIXED_LICENSE_NAME}); "
                "each folder then gets its own LICENSE file",
            )
    else:
        (only,) = result.license_ids
        if only in KNOWN_LICENSES and declared.id != only:
            suggestion = suggest_declared(folders)
            raise LicenseRefusal(
                where,
                "declared-matches-provenance",
                f"declares {declared.id!r}, but every predictor's provenance says {only!r}; declare "
                f"`license: {suggestion.license}`"
                + (f", `license_name: {suggestion.license_name}`" if suggestion.license_name else ""),
            )
    for entry in result.data_licenses:
        data_id = str(entry.get("license", "")).lower()
        if data_id.startswith("cc-by") and not entry.get("attribution"):
            raise LicenseRefusal(
                entry.get("where", where),
                "data-attribution",
                f"training data {entry.get('name')!r} is under {data_id!r}, which requires attribution: add an "
                "`attribution` to its entry",
            )
    return result


def license_file_names(repo: RepoLicense) -> dict[str, str]:
    """Each folder's LICENSE file in the repo (`.` is the repo root when the predictor sits there)."""
    return {f.subfolder: "LICENSE" if f.subfolder == "." else f"{f.subfolder}/LICENSE" for f in repo.folders}


def root_license_file(repo: RepoLicense) -> str:
    """The root license file: the text for a single-license repo, an index of the folders' licenses when mixed."""
    return "LICENSE.md" if repo.mixed else "LICENSE"


def _may_allow_commercial(declared: DeclaredLicense) -> bool:
    """True for a license known to allow commercial use, and for any Hub license id we do not know (bsd, openrail...).

    `other` with a name we do not know is left to the mixed/match rules, which then decide.
    """
    if declared.commercial_use is not None:
        return declared.commercial_use
    return declared.license.strip().lower() != "other"


def license_text(license_id: str, licenses_dir: Path) -> str:
    """The text of `license_id` from `LICENSES/<spdx>.txt` (REUSE layout)."""
    known = KNOWN_LICENSES.get(license_id)
    if known is None:
        raise LicenseRefusal(licenses_dir, "license-text", f"no known text for license {license_id!r}")
    path = licenses_dir / f"{known.spdx}.txt"
    if not path.is_file():
        raise LicenseRefusal(path, "license-text", f"missing: the text of {license_id!r} must be in {licenses_dir}")
    return path.read_text(encoding="utf-8")
