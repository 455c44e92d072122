"""Model cards that machines can read: `huggingface_hub.ModelCard` rendered from predictor folders plus YAML metadata.

The YAML header carries `license` / `license_name` / `license_link`, `base_model`, `datasets`, `tags`,
`library_name: ltr-predictors`, `pipeline_tag` and a `model-index` of Kendall tau results (in-distribution and
cross); the body (Jinja template `templates/model_card.md.j2`) adds the per-folder license table, the notices the
licenses require, usage for the loader and the vLLM hooks, training setup, limitations and how to cite.

Facts come from the folders (`usage_config.json`, `ltr_config.json` with its license block and the training
`Provenance`) and from a card metadata file (`model_cards/<repo>.yaml`) for what the folders cannot say, such as
figures reported elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..errors import CardMetadataError, UsageConfigError
from ..licensing.publication_rules import (
    DeclaredLicense,
    FolderLicense,
    RepoLicense,
    check_repo_license,
    folder_license,
    license_file_names,
    suggest_declared,
)
from ..licensing.terms import KNOWN_LICENSES
from ..loading.hub import LEGACY_IDS
from ..loading.ltr_config import LTR_CONFIG_NAME, LTRConfig
from ..loading.usage_config import USAGE_CONFIG_NAME, UsageConfig
from ..scoring.length_scores import DEFAULT_DIRECTION
from ..training.provenance import Provenance

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.j2"
LIBRARY_NAME = "ltr-predictors"
PIPELINE_TAG = "text-classification"
BASE_TAGS = ["ltr-predictors", "learning-to-rank", "output-length-prediction", "llm-scheduling", "vllm"]
SPLITS = ("in-distribution", "cross")
METRIC_TYPE = "kendall_tau"


@dataclass(frozen=True)
class TauFigure:
    """One reported Kendall tau: which split (`in-distribution` or `cross`), on what data, how much."""

    split: str
    value: float
    dataset_name: str
    dataset_type: str
    dataset_split: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TauFigure:
        if not isinstance(data, dict) or data.get("split") not in SPLITS or "value" not in data:
            raise CardMetadataError(f"{where}: an eval entry needs split ({' or '.join(SPLITS)}), value, dataset")
        try:
            value = float(data["value"])
        except (TypeError, ValueError) as exc:
            raise CardMetadataError(f"{where}: eval value {data['value']!r} is not a number") from exc
        name = str(data.get("dataset", data.get("dataset_type", "unknown")))
        return cls(data["split"], value, name, str(data.get("dataset_type", name)), data.get("dataset_split"))


@dataclass
class CardMetadata:
    """What a card says beyond the folders: `model_cards/<repo>.yaml`. Every field is optional."""

    title: str | None = None
    summary: str = ""
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=lambda: ["en"])
    citation: str | None = None
    limitations: list[str] = field(default_factory=list)
    eval_note: str = ""
    data: list[dict[str, Any]] = field(default_factory=list)
    predictors: dict[str, dict[str, Any]] = field(default_factory=dict)
    template: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> CardMetadata:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CardMetadataError(f"{path}: cannot read card metadata ({exc})") from exc
        if not isinstance(data, dict):
            raise CardMetadataError(f"{path}: expected a YAML mapping")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise CardMetadataError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        if not isinstance(data.get("predictors", {}), dict):
            raise CardMetadataError(f"{path}: 'predictors' must map a folder name to its facts")
        for entry in data.get("data", []):
            entry.setdefault("where", str(path))
        if data.get("template"):
            data["template"] = path.parent / data["template"]
        return cls(**data)


@dataclass
class PredictorFacts:
    """One predictor folder as a card sees it."""

    subfolder: str
    folder: Path
    usage: UsageConfig
    ltr: LTRConfig
    license: FolderLicense
    description: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    taus: list[TauFigure] = field(default_factory=list)

    @classmethod
    def from_folder(cls, folder: Path, subfolder: str, metadata: CardMetadata) -> PredictorFacts:
        """Read the folder; the metadata file's entry for `subfolder` adds to (and wins over) the provenance."""
        usage = UsageConfig.from_file(folder / USAGE_CONFIG_NAME)
        ltr = LTRConfig.from_folder(folder, usage.num_labels)
        provenance = Provenance.from_dict(ltr.provenance, f"{folder / LTR_CONFIG_NAME}: provenance")
        backbone, info = folder_license(folder)
        extra = metadata.predictors.get(subfolder, {})
        where = f"{folder} ({subfolder})"
        evals = [TauFigure.from_dict(item, where) for item in extra.get("eval", [])]
        return cls(
            subfolder=subfolder,
            folder=folder,
            usage=usage,
            ltr=ltr,
            license=FolderLicense(subfolder, folder, backbone, info),
            description=extra.get("description", provenance.description),
            training={**training_setup(provenance), **extra.get("training", {})},
            taus=evals or heldout_taus(provenance),
        )

    def tau(self, split: str) -> str:
        values = [f"{t.value:.3f}" for t in self.taus if t.split == split]
        return ", ".join(values) or "–"


def training_setup(provenance: Provenance) -> dict[str, Any]:
    """The card's "Training setup" list: recipe, target models, every setting, and the run's figures (no history)."""
    setup: dict[str, Any] = {"recipe": provenance.recipe} if provenance.recipe else {}
    if provenance.target_models:
        setup["target models"] = ", ".join(provenance.target_models)
    setup.update(provenance.hyperparameters)
    if provenance.training is not None:
        for key in ("train_examples", "best_epoch", "val_kendall_tau"):
            value = getattr(provenance.training, key)
            setup[key.replace("_", " ")] = round(value, 3) if isinstance(value, float) else value
    return setup


def heldout_taus(provenance: Provenance) -> list[TauFigure]:
    """In-distribution figures from the held-out split of each training source (`training.test_kendall_tau`)."""
    held_out = provenance.training.test_kendall_tau if provenance.training is not None else {}
    return [
        TauFigure("in-distribution", float(tau.kendall_tau), f"{source} (held-out, n={tau.n})", source, "test")
        for source, tau in sorted(held_out.items())
        if tau.kendall_tau is not None
    ]


def discover_predictors(path: Path) -> list[tuple[str, Path]]:
    """`(subfolder, folder)` pairs: the folder itself when it holds a usage config, else its direct subfolders."""
    if not path.is_dir():
        raise UsageConfigError(f"{path}: not a folder (expected a predictor folder or a folder of them)")
    if (path / USAGE_CONFIG_NAME).is_file():
        return [(".", path)]
    found = sorted((sub.name, sub) for sub in path.iterdir() if (sub / USAGE_CONFIG_NAME).is_file())
    if not found:
        raise UsageConfigError(f"{path}: no {USAGE_CONFIG_NAME} here nor in any direct subfolder")
    return found


def base_model_id(backbone: str | None) -> str | None:
    """The Hub's canonical id of a backbone (`bert-base-uncased` -> `google-bert/bert-base-uncased`)."""
    return LEGACY_IDS.get(backbone, backbone) if backbone else None


def card_data(repo_id: str, facts: list[PredictorFacts], repo: RepoLicense, metadata: CardMetadata) -> ModelCardData:
    """The YAML header: license fields, base models, datasets, tags and the model-index of tau results."""
    bases = sorted({b for f in facts if (b := base_model_id(f.usage.pred_model))})
    datasets = list(dict.fromkeys([*metadata.datasets, *(t.dataset_type for f in facts for t in f.taus)]))
    results = [
        EvalResult(
            task_type="text-classification",
            task_name="Output-length ranking",
            dataset_type=t.dataset_type,
            dataset_name=t.dataset_name,
            dataset_split=t.dataset_split,
            metric_type=METRIC_TYPE,
            metric_value=t.value,
            metric_name=f"Kendall tau ({t.split})" + ("" if f.subfolder == "." else f", {f.subfolder}"),
            metric_config=None if f.subfolder == "." else f.subfolder,
        )
        for f in facts
        for t in f.taus
    ]
    return ModelCardData(
        license=repo.declared.license,
        license_name=repo.declared.license_name,
        license_link=repo.declared.license_link,
        base_model=bases[0] if len(bases) == 1 else (bases or None),
        datasets=[d for d in datasets if "/" in d] or None,
        language=metadata.language,
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=list(dict.fromkeys([*BASE_TAGS, *metadata.tags])),
        model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results or None,
    )


def render_card(
    repo_id: str,
    facts: list[PredictorFacts],
    repo: RepoLicense,
    metadata: CardMetadata,
    license_files: dict[str, str] | None = None,
) -> ModelCard:
    """The full card. `license_files` maps a folder (`.` = root) to the license file the repo ships there."""
    files = license_files or {}
    first = facts[0]
    example_license = first.license.info
    accept = None if example_license.commercial_use is not False else example_license.license
    subfolder = None if first.subfolder == "." else first.subfolder
    context = {
        "title": metadata.title or repo_id.split("/")[-1],
        "summary": metadata.summary,
        "repo_id": repo_id,
        "eval_note": metadata.eval_note,
        "predictors": [
            {
                "folder": f.subfolder,
                "family": f.usage.mtype,
                "num_labels": f.usage.num_labels,
                "backbone": f.usage.pred_model or f"none ({f.ltr.backend})",
                "max_length": f.usage.max_length,
                "license": f.license.info.license or "unknown",
                "commercial_use": f.license.info.commercial_use,
                "direction": f.ltr.score_direction or DEFAULT_DIRECTION[f.usage.mtype],
                "tau_in": f.tau("in-distribution"),
                "tau_cross": f.tau("cross"),
                "description": f.description,
                "training": f.training,
            }
            for f in facts
        ],
        "example": {
            "subfolder": subfolder,
            "accept": accept,
            "spec": repo_id + (f":{subfolder}" if subfolder else ""),
        },
        "vllm_ltr_format": all(f.ltr.backend == "transformers" for f in facts),
        "mixed": repo.mixed,
        "license_title": _license_title(repo.license_ids[0]),
        "license_table": [
            {
                "folder": f.subfolder,
                "license": _license_title(f.license.info.license),
                "terms": f.license.info.terms or "unknown: check before use",
                "file": f"`{files[f.subfolder]}`" if f.subfolder in files else "–",
            }
            for f in facts
        ],
        "notices": repo.notices,
        "noncommercial": any(f.license.info.commercial_use is False for f in facts),
        "data_licenses": [{k: v for k, v in e.items() if k != "where"} for e in repo.data_licenses],
        "limitations": metadata.limitations,
        "citation": (metadata.citation or "").strip(),
    }
    template = metadata.template or TEMPLATE
    return ModelCard.from_template(
        card_data(repo_id, facts, repo, metadata), template_str=template.read_text(encoding="utf-8"), card=context
    )


def card_for_path(
    path: str | Path,
    *,
    repo_id: str | None = None,
    metadata: CardMetadata | None = None,
    declared: DeclaredLicense | None = None,
    allow_unknown_license: bool = False,
) -> ModelCard:
    """The card of a predictor folder (or a folder of predictor folders), with the license the rules accept."""
    path = Path(path)
    metadata = metadata or CardMetadata()
    facts = [PredictorFacts.from_folder(folder, sub, metadata) for sub, folder in discover_predictors(path)]
    folders = [f.license for f in facts]
    repo = check_repo_license(
        declared or suggest_declared(folders),
        folders,
        data_licenses=collect_data_licenses(facts, metadata),
        allow_unknown_license=allow_unknown_license,
    )
    name = repo_id or f"<your-org>/{path.resolve().name}"
    return render_card(name, facts, repo, metadata, license_file_names(repo))


def collect_data_licenses(facts: list[PredictorFacts], metadata: CardMetadata) -> list[dict[str, Any]]:
    """Data terms from the metadata file, then from each folder's license block, without duplicates by name."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in metadata.data:
        entries.setdefault(str(entry.get("name")), entry)
    for f in facts:
        for entry in f.license.info.data_licenses:  # the trainer names a data source `source`
            name = str(entry.get("name", entry.get("source")))
            entries.setdefault(name, {**entry, "name": name, "where": str(f.folder / "ltr_config.json")})
    return list(entries.values())


def _license_title(license_id: str | None) -> str:
    known = KNOWN_LICENSES.get(license_id or "")
    return f"{known.name} (`{known.id}`)" if known else f"`{license_id or 'unknown'}`"
