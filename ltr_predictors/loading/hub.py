"""Find a predictor's files: parse a spec, download just its subfolder from the Hub (or any mirror), or use a path.

Everything goes through `huggingface_hub.snapshot_download`, so revision pins, the normal cache (a second load
works with `HF_HUB_OFFLINE=1`), `HF_ENDPOINT` mirrors and tokens for gated repos behave as they do for any Hub
model. Pickle files are never downloaded: we ask only for the files we can load safely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from ..errors import PredictorSpecError
from .pickles import PICKLE_SUFFIXES, is_pickle_name


def _any_case(suffix: str) -> str:
    """A glob matching `suffix` in any letter case (`.bin` -> `.[bB][iI][nN]`): Hub patterns are case-sensitive."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in suffix)


# Never downloaded: pickle checkpoints by name, in any case, compressed or not (content checks: `pickles`).
PICKLE_PATTERNS = [f"*{_any_case(s)}{tail}" for s in sorted(PICKLE_SUFFIXES) for tail in ("", ".*")]
TOKENIZER_PATTERNS = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.model",
    "chat_template.jinja",  # transformers 5 writes a tokenizer's chat template here
]
# Canonical models the Hub moved under an org in 2024; the Hub redirects the old ids, mirrors may not.
LEGACY_IDS = {
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-large-uncased": "google-bert/bert-large-uncased",
    "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
    "roberta-base": "FacebookAI/roberta-base",
    "gpt2": "openai-community/gpt2",
    "t5-small": "google-t5/t5-small",
}
_REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
# Only JSON files and the card come down before the license is checked. fnmatch's `*` spans folders, so
# `<subfolder>/*.json` also fetches the weights' `finetuned/config.json`, which sets the license floor.
_METADATA_PATTERN = "*.json"


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub: passed unchanged to every download of one load."""

    token: str | bool | None = None
    cache_dir: str | Path | None = None
    endpoint: str | None = None
    local_files_only: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "cache_dir": self.cache_dir,
            "endpoint": self.endpoint,
            "local_files_only": self.local_files_only,
        }


@dataclass(frozen=True)
class PredictorSpec:
    """Where a predictor lives: a Hub repo with optional subfolder and revision, or a local folder."""

    repo_id: str | None = None
    subfolder: str | None = None
    revision: str | None = None
    local_path: Path | None = None

    def __post_init__(self) -> None:
        """Normalise the subfolder (`normalize_subfolder`) and refuse a repo id the Hub would not accept."""
        object.__setattr__(self, "subfolder", normalize_subfolder(self.subfolder))
        if self.repo_id is not None:
            try:
                validate_repo_id(self.repo_id)
            except HFValidationError as exc:
                raise PredictorSpecError(
                    f"{self.repo_id!r} is neither an existing folder nor a valid Hub repo id ({exc})"
                ) from exc

    @classmethod
    def parse(cls, spec: str) -> PredictorSpec:
        """Parse `REPO[:SUBFOLDER][@REVISION]`; an existing path wins over a repo id of the same spelling."""
        if not spec or not spec.strip():
            raise PredictorSpecError("empty predictor spec; expected REPO[:SUBFOLDER][@REVISION] or a folder")
        if Path(spec).expanduser().exists():
            return cls(local_path=Path(spec).expanduser())
        rest, _, revision = spec.partition("@")
        repo_id, _, subfolder = rest.partition(":")
        if not _REPO_ID.match(repo_id) or (_ and not subfolder) or (spec.count("@") and not revision):
            raise PredictorSpecError(
                f"predictor spec {spec!r} is neither an existing folder nor REPO[:SUBFOLDER][@REVISION]"
            )
        return cls(repo_id=repo_id, subfolder=subfolder or None, revision=revision or None)

    def __str__(self) -> str:
        if self.local_path is not None:
            return str(self.local_path)
        text = str(self.repo_id)
        if self.subfolder:
            text += f":{self.subfolder}"
        if self.revision:
            text += f"@{self.revision}"
        return text


def normalize_subfolder(subfolder: str | None) -> str | None:
    """`subfolder` as a relative path inside a repo, `/`-separated without empty or `.` parts (`a/./b/` -> `a/b`);
    None for the root. An absolute path, `..`, `.git`, a backslash or a control character is refused by name."""
    if subfolder is None:
        return None
    if not isinstance(subfolder, str):
        raise PredictorSpecError(f"subfolder must be a string, got {subfolder!r}")
    if "\\" in subfolder:
        raise PredictorSpecError(f"subfolder {subfolder!r}: a backslash is not a separator in a repo, use '/'")
    if any(ord(char) < 32 or ord(char) == 127 for char in subfolder):
        raise PredictorSpecError(f"subfolder {subfolder!r}: control characters are not allowed")
    if subfolder.startswith("/") or re.match(r"[A-Za-z]:", subfolder):
        raise PredictorSpecError(f"subfolder {subfolder!r}: an absolute path; a subfolder is relative to the repo")
    parts = [part for part in subfolder.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PredictorSpecError(f"subfolder {subfolder!r}: '..' would leave the repo")
    if any(part.lower() == ".git" for part in parts):
        raise PredictorSpecError(f"subfolder {subfolder!r}: '.git' holds git's own data, not predictor files")
    return "/".join(parts) or None


@dataclass(frozen=True)
class ResolvedFolder:
    """A predictor folder on disk and, for Hub downloads, the repo root and the commit it came from."""

    folder: Path
    repo_root: Path | None = None
    commit: str | None = None


def download_predictor(spec: PredictorSpec, options: HubOptions, metadata_only: bool = False) -> ResolvedFolder:
    """Download the subfolder (and the repo card) of `spec` into the cache; return where it is.

    With `metadata_only`, only JSON files and the card come down: enough to check the license before fetching
    weights that the caller may not be allowed to use.
    """
    if spec.local_path is not None:
        return ResolvedFolder(folder=_inside(spec.local_path, spec.subfolder, str(spec.local_path)))
    assert spec.repo_id is not None
    prefix = f"{spec.subfolder}/" if spec.subfolder else ""
    patterns = [f"{prefix}{_METADATA_PATTERN}"] if metadata_only else [f"{prefix}*"]
    try:
        snapshot = _snapshot(
            spec.repo_id,
            revision=spec.revision,
            allow_patterns=[*patterns, "README.md"],
            ignore_patterns=PICKLE_PATTERNS,
            options=options,
        )
    except LocalEntryNotFoundError as exc:
        raise PredictorSpecError(f"{spec}: not in the local cache, and the Hub is off (HF_HUB_OFFLINE)") from exc
    except RepositoryNotFoundError as exc:
        raise PredictorSpecError(f"{spec}: repository {spec.repo_id!r} not found (or no access)") from exc
    root = Path(snapshot)
    folder = _inside(root, spec.subfolder, f"{spec.repo_id} at revision {spec.revision or 'main'}")
    return ResolvedFolder(folder=folder, repo_root=root, commit=root.name)


def _inside(root: Path, subfolder: str | None, where: str) -> Path:
    """`root / subfolder`, a folder whose real path stays inside `root` (no symlink out of it)."""
    folder = root / subfolder if subfolder else root
    if not folder.is_dir():
        raise PredictorSpecError(f"{where}: no folder {subfolder!r}" if subfolder else f"{folder}: no such folder")
    if subfolder and not folder.resolve().is_relative_to(root.resolve()):
        raise PredictorSpecError(f"{where}: subfolder {subfolder!r} leads outside it (to {folder.resolve()})")
    return folder


def download_tokenizer(model_id: str, options: HubOptions) -> Path:
    """Fetch only the tokenizer (and config) files of `model_id`: the seed predictors ship no tokenizer."""
    if Path(model_id).expanduser().is_dir():
        return Path(model_id).expanduser()
    candidates = [model_id] + ([LEGACY_IDS[model_id]] if model_id in LEGACY_IDS else [])
    last_error: Exception | None = None
    for candidate in candidates:
        try:
            return Path(_snapshot(candidate, revision=None, allow_patterns=TOKENIZER_PATTERNS, options=options))
        except (RepositoryNotFoundError, LocalEntryNotFoundError, PredictorSpecError) as exc:
            last_error = exc
    raise PredictorSpecError(f"cannot fetch the tokenizer of backbone {model_id!r}: {last_error}") from last_error


def download_model_files(model_id: str, files: list[str], options: HubOptions) -> Path:
    """Fetch `files` of the Hub model `model_id` with its config and tokenizer (the base an adapter applies to)."""
    try:
        folder = Path(_snapshot(model_id, revision=None, allow_patterns=[*files, *TOKENIZER_PATTERNS], options=options))
    except (RepositoryNotFoundError, LocalEntryNotFoundError) as exc:
        raise PredictorSpecError(f"cannot fetch {', '.join(files)} of model {model_id!r}: {exc}") from exc
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise PredictorSpecError(f"model {model_id!r} has no {', '.join(missing)}")
    return folder


def remote_pickle_files(spec: PredictorSpec, options: HubOptions) -> list[str]:
    """Pickle checkpoints in the spec's subfolder on the Hub (listed, never downloaded)."""
    if spec.repo_id is None or options.local_files_only:
        return []
    api = HfApi(endpoint=options.endpoint, token=options.token)
    try:
        files = api.list_repo_files(spec.repo_id, revision=spec.revision)
    except HfHubHTTPError:
        return []
    prefix = f"{spec.subfolder}/" if spec.subfolder else ""
    return [f for f in files if f.startswith(prefix) and is_pickle_name(f)]


def _snapshot(
    repo_id: str,
    *,
    revision: str | None,
    allow_patterns: list[str],
    options: HubOptions,
    ignore_patterns: list[str] | None = None,
) -> str:
    try:
        return str(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=allow_patterns,
                ignore_patterns=ignore_patterns,
                library_name="ltr-predictors",
                **options.kwargs(),
            )
        )
    except GatedRepoError as exc:
        raise PredictorSpecError(
            f"{repo_id} is gated: accept its terms on the Hub and pass token= (or set HF_TOKEN)"
        ) from exc
    except (RepositoryNotFoundError, LocalEntryNotFoundError):
        raise  # callers say what they were looking for
    except RevisionNotFoundError as exc:
        raise PredictorSpecError(f"{repo_id}: revision {revision!r} not found") from exc
    except EntryNotFoundError as exc:
        raise PredictorSpecError(f"{repo_id}: {exc}") from exc
    except HFValidationError as exc:
        raise PredictorSpecError(f"{repo_id!r}: not a valid Hub repo id or revision ({exc})") from exc
    except HfHubHTTPError as exc:
        raise PredictorSpecError(f"{repo_id}: the Hub refused the download ({exc})") from exc
