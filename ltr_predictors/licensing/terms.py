"""Licenses as data: what a predictor's weights may be used for, and where we learnt it.

A `LicenseInfo` is attached to every loaded predictor. It comes from one of three places, in this order of
trust: our own `ltr_config.json` (written at training time), the YAML of the repo's model card, or an inference
from the backbone (`facebook/opt-*` weights are under Meta's OPT-175B license). Weights under a license that
forbids commercial use load only after the user accepts it, by argument or by `LTR_PREDICTORS_ACCEPT_LICENSES`.

The backbone sets a floor that no declaration lowers: `license_floor` reads the weights' own `config.json`
(`model_type`, `architectures`) and the `pred_model` name (any case, a path or URL ending in `opt-125m` alike), and
takes the most restrictive license either implies. A declared license looser than the floor is replaced by it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import LicenseNotAcceptedError

ACCEPT_ENV = "LTR_PREDICTORS_ACCEPT_LICENSES"

OPT_NOTICE = "OPT-175B is licensed under the OPT-175B license, Copyright (c) Meta Platforms, Inc. All Rights Reserved."


@dataclass(frozen=True)
class KnownLicense:
    """A license we know the terms of. `id` is the Hub's identifier (or ours for `other` licenses)."""

    id: str
    name: str
    commercial_use: bool
    terms: str
    link: str
    spdx: str  # file name stem in LICENSES/ (SPDX id or LicenseRef-...)
    hub_license: str  # value of the card's `license:` field ("other" when the Hub has no id)
    notice: str | None = None


KNOWN_LICENSES: dict[str, KnownLicense] = {
    lic.id: lic
    for lic in [
        KnownLicense(
            id="apache-2.0",
            name="Apache License 2.0",
            commercial_use=True,
            terms="permissive: any use, keep the license and NOTICE",
            link="https://www.apache.org/licenses/LICENSE-2.0",
            spdx="Apache-2.0",
            hub_license="apache-2.0",
        ),
        KnownLicense(
            id="mit",
            name="MIT License",
            commercial_use=True,
            terms="permissive: any use, keep the copyright notice",
            link="https://opensource.org/license/mit",
            spdx="MIT",
            hub_license="mit",
        ),
        KnownLicense(
            id="opt-175b-license",
            name="OPT-175B License Agreement",
            commercial_use=False,
            terms="non-commercial research use only; derivatives must carry the OPT-175B license and notice",
            link="https://github.com/facebookresearch/metaseq/blob/main/projects/OPT/MODEL_LICENSE.md",
            spdx="LicenseRef-OPT-175B",
            hub_license="other",
            notice=OPT_NOTICE,
        ),
        KnownLicense(
            id="cc-by-4.0",
            name="Creative Commons Attribution 4.0",
            commercial_use=True,
            terms="any use with attribution",
            link="https://creativecommons.org/licenses/by/4.0/",
            spdx="CC-BY-4.0",
            hub_license="cc-by-4.0",
        ),
        KnownLicense(
            id="cc-by-nc-4.0",
            name="Creative Commons Attribution-NonCommercial 4.0",
            commercial_use=False,
            terms="non-commercial use only, with attribution",
            link="https://creativecommons.org/licenses/by-nc/4.0/",
            spdx="CC-BY-NC-4.0",
            hub_license="cc-by-nc-4.0",
        ),
        KnownLicense(
            id="llama3",
            name="Meta Llama 3 Community License",
            commercial_use=True,
            terms="commercial use allowed under 700M monthly users; outputs may not improve non-Llama models",
            link="https://www.llama.com/llama3/license/",
            spdx="LicenseRef-Llama-3",
            hub_license="llama3",
        ),
    ]
}

# Backbones whose license we know without reading their card. Keys are Hub ids or id prefixes ending in "*".
BACKBONE_LICENSES: dict[str, str] = {
    "facebook/opt-*": "opt-175b-license",
    "bert-base-uncased": "apache-2.0",
    "bert-base-cased": "apache-2.0",
    "google-bert/*": "apache-2.0",
    "sentence-transformers/all-MiniLM-L6-v2": "apache-2.0",
    "distilbert/*": "apache-2.0",
    "answerdotai/ModernBERT-*": "apache-2.0",
    "HuggingFaceTB/SmolLM2-*": "apache-2.0",
}
# Model families whose architecture alone sets a license floor: we cannot tell where weights of that architecture came
# from, so they are taken to derive from the family's released checkpoints.
FAMILY_LICENSES: dict[str, str] = {"opt": "opt-175b-license"}


@dataclass
class LicenseInfo:
    """The license of one predictor's weights and where that knowledge came from.

    `source` says which piece of metadata decided (`ltr_config.json`, `model card`, `backbone facebook/opt-125m`,
    or `unknown`); `data_licenses` lists the terms of the training data when we know them.
    """

    license: str | None
    source: str
    commercial_use: bool | None = None
    license_name: str | None = None
    license_link: str | None = None
    terms: str | None = None
    data_licenses: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_id(cls, license_id: str | None, source: str, **extra: Any) -> LicenseInfo:
        """Build from a license id, filling terms, link and commercial use from `KNOWN_LICENSES`."""
        known = KNOWN_LICENSES.get(license_id or "")
        if known is None:
            return cls(license=license_id, source=source, **extra)
        extra.setdefault("license_name", known.name)
        extra.setdefault("license_link", known.link)
        return cls(license=known.id, source=source, commercial_use=known.commercial_use, terms=known.terms, **extra)

    @property
    def known(self) -> bool:
        return self.license in KNOWN_LICENSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_license_id(license_id: str | None, license_name: str | None = None) -> str | None:
    """Map a card's `license` (+ `license_name` when it is `other`) to our id."""
    if license_id is None:
        return None
    lid = license_id.strip().lower()
    if lid == "other" and license_name:
        return license_name.strip().lower()
    return lid


@dataclass(frozen=True)
class LicenseFloor:
    """The most restrictive license a predictor's backbone implies (`license`), and what implied it (`source`)."""

    license: str
    source: str

    def allows(self, license_id: str) -> bool:
        """Whether declaring `license_id` keeps the floor's terms: always on a floor that allows commercial use (we
        do not rank permissive licenses), else only the floor itself (its terms bind every derivative)."""
        return KNOWN_LICENSES[self.license].commercial_use or license_id == self.license


def license_of_backbone(backbone: str | None) -> str | None:
    """The license id of a known backbone Hub id, in any case (`facebook/OPT-125m` -> `opt-175b-license`), else None."""
    name = _normalized(backbone)
    if not name:
        return None
    for pattern, license_id in BACKBONE_LICENSES.items():
        pattern = pattern.lower()
        if (pattern.endswith("*") and name.startswith(pattern[:-1])) or name == pattern:
            return license_id
    return None


def license_floor(
    backbone: str | None, model_config: dict[str, Any] | None = None, config_where: str = "config.json"
) -> LicenseFloor | None:
    """The most restrictive license implied by the backbone name and by the weights' `config.json`, or None.

    The name counts as a Hub id in any case, and by its last path or URL component (`/models/opt-125m`); the config
    by its `model_type` and `architectures` (`OPTForSequenceClassification`).
    """
    found: list[LicenseFloor] = []
    if (by_id := license_of_backbone(backbone)) is not None:
        found.append(LicenseFloor(by_id, f"backbone {backbone}"))
    last = re.split(r"[/\\]", _normalized(backbone))[-1]
    found += [LicenseFloor(lid, f"backbone {backbone}") for f, lid in FAMILY_LICENSES.items() if _names(f, last)]
    for family in _families_of_config(model_config or {}):
        found.append(LicenseFloor(FAMILY_LICENSES[family], f"backbone architecture {family!r} ({config_where})"))
    restrictive = [floor for floor in found if not KNOWN_LICENSES[floor.license].commercial_use]
    ranked = restrictive or found
    return ranked[0] if ranked else None


def _normalized(backbone: str | None) -> str:
    """`backbone` stripped of whitespace and trailing separators, lower case ("" for None)."""
    return (backbone or "").strip().rstrip("/\\").lower()


def _names(family: str, name: str) -> bool:
    """Whether a model name (`opt-125m`, `opt`) names a checkpoint of `family`."""
    return re.fullmatch(rf"{re.escape(family)}(?:[-_.].*)?", name) is not None


def _families_of_config(config: dict[str, Any]) -> list[str]:
    """Families of `FAMILY_LICENSES` that a transformers config's `model_type` or `architectures` name."""
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    names = [model_type.lower()] if isinstance(model_type, str) else []
    if isinstance(architectures, list):
        names += [a.lower() for a in architectures if isinstance(a, str)]
    return [
        family
        for family in FAMILY_LICENSES
        if any(n == family or re.match(rf"{re.escape(family)}(for|model|pretrainedmodel)", n) for n in names)
    ]


def resolve_license(
    config_license: dict[str, Any] | None,
    card_license: str | None,
    backbone: str | None,
    *,
    card_license_name: str | None = None,
    card_license_link: str | None = None,
    model_config: dict[str, Any] | None = None,
    model_config_where: str = "config.json",
) -> LicenseInfo:
    """Decide a predictor's license from our config block, the repo card and the backbone, in that order.

    No declaration goes below the backbone's floor (`license_floor`, from the backbone name and the weights'
    `model_config`): the weights derive from that backbone, so its terms bind them. A looser or unknown declared
    license is replaced by the floor, and the contradiction kept in `notes`.
    """
    floor = license_floor(backbone, model_config, model_config_where)
    if config_license and config_license.get("license"):
        info = LicenseInfo.from_id(
            normalize_license_id(config_license["license"], config_license.get("license_name")),
            "ltr_config.json",
            data_licenses=list(config_license.get("data_licenses", [])),
        )
    elif card_license:
        info = LicenseInfo.from_id(normalize_license_id(card_license, card_license_name), "model card")
        if card_license_link and info.license_link is None:
            info.license_link = card_license_link
    elif floor is not None:
        return LicenseInfo.from_id(floor.license, floor.source)
    else:
        return LicenseInfo(license=None, source="unknown")
    if floor is None or (info.known and floor.allows(info.license or "")):
        return info
    if info.known:
        note = (
            f"{info.source} declares {info.license!r}, but the {floor.source} puts the weights under "
            f"{floor.license!r}, whose terms bind them; the backbone's terms apply"
        )
    else:
        # e.g. a multi-license repo's card (`license: other`, `license_name: mixed-licenses`): says nothing per folder
        note = f"{info.source} declares {info.license!r}, not a license we know; the {floor.source}'s terms apply"
    return LicenseInfo.from_id(floor.license, floor.source, data_licenses=info.data_licenses, notes=[note])


def accepted_licenses(accept: str | Iterable[str] | None = None) -> set[str]:
    """Licenses the caller accepts: the argument plus the comma-separated `LTR_PREDICTORS_ACCEPT_LICENSES`."""
    items: list[str] = []
    if isinstance(accept, str):
        items.append(accept)
    elif accept is not None:
        items.extend(accept)
    items.extend(os.environ.get(ACCEPT_ENV, "").split(","))
    return {item.strip().lower() for item in items if item.strip()}


def check_license_accepted(info: LicenseInfo, accept: str | Iterable[str] | None, what: str) -> None:
    """Raise `LicenseNotAcceptedError` for non-commercial weights not accepted; warn on an unknown license."""
    if info.license is None or not info.known:
        warnings.warn(
            f"{what}: license unknown ({info.license or 'not declared'}, source: {info.source}); "
            "check its terms before use",
            stacklevel=3,
        )
        return
    if info.commercial_use:
        return
    if info.license in accepted_licenses(accept):
        return
    raise LicenseNotAcceptedError(
        f"{what} is under {info.license!r} ({info.terms}; source: {info.source}; text: {info.license_link}). "
        f"Accept it with accept_license={info.license!r}, `--accept-license {info.license}`, "
        f"or {ACCEPT_ENV}={info.license}."
    )
