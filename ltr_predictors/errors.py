"""Errors raised by ltr-predictors: every public exception of the package, in one place.

Every error names the file, field or value at fault, so that a user can fix the input without reading our code.
They all derive from `LTRPredictorError`, so `except LTRPredictorError` catches anything the library raises on
bad input; the CLI answers each with one line and exit code 2. Most also derive from the builtin they refine
(`ValueError`, `TypeError`, ...), so code written against the builtins keeps working.
"""

from __future__ import annotations

from pathlib import Path


class LTRPredictorError(Exception):
    """Base class of every error raised by ltr-predictors on bad input."""


# ----------------------------------------------------------------------------------------------- loading predictors
class PredictorSpecError(LTRPredictorError, ValueError):
    """A predictor spec (`REPO[:SUBFOLDER][@REVISION]` or a path) cannot be parsed or resolved."""


class UsageConfigError(LTRPredictorError, ValueError):
    """`usage_config.json` (or our `ltr_config.json`) is missing, malformed, or has a bad field."""


class UnknownFamilyError(UsageConfigError):
    """The `mtype` of a usage config is not one this library can score."""


class WeightsNotFoundError(LTRPredictorError, FileNotFoundError):
    """No safetensors weights were found where the usage config says they are."""


class PickleCheckpointError(LTRPredictorError):
    """The only weights are a pickle (`pytorch_model.bin` & co.): refused, never unpickled."""


class LicenseNotAcceptedError(LTRPredictorError, PermissionError):
    """The weights are under a restrictive license that the caller has not accepted."""


class PromptError(LTRPredictorError, TypeError):
    """Prompts to score are not a list of strings (the message names the first bad item)."""


# ------------------------------------------------------------------------------------------ licenses and publishing
class LicenseCheckError(LTRPredictorError, ValueError):
    """A declared license contradicts what a predictor's provenance says (used by cards and uploads)."""


class LicenseRefusal(LicenseCheckError):
    """A license rule refused a publication. `path` is the file at fault, `rule` the rule's name."""

    def __init__(self, path: str | Path, rule: str, message: str) -> None:
        self.path = str(path)
        self.rule = rule
        super().__init__(f"{path}: {message} [rule: {rule}]")


class CardMetadataError(UsageConfigError):
    """A card metadata YAML file (or a provenance `eval` entry) is malformed."""


class ManifestError(LTRPredictorError, ValueError):
    """The upload manifest is malformed or names a predictor that does not exist."""


class UploadVerificationError(LTRPredictorError):
    """A predictor downloaded back after the upload does not load or does not score as the local copy."""


# ------------------------------------------------------------------------------------------- data and training
class TraceFormatError(LTRPredictorError, ValueError):
    """A trace file has a record this library cannot read (the message names file and line)."""


class ScoreTableError(LTRPredictorError, ValueError):
    """A scores file is malformed, or lacks the score of a prompt asked for (the message names the file)."""


class RecipeError(LTRPredictorError, ValueError):
    """A recipe file is missing or has a bad field (the message names the file and field)."""


class BackboneError(LTRPredictorError, ValueError):
    """A backbone id or folder cannot be loaded for training (the message names it)."""


class FrozenPrefixError(LTRPredictorError, ValueError):
    """`train_top_layers` does not fit the backbone (the message names the value and what the backbone has)."""


class LossConfigError(LTRPredictorError, ValueError):
    """A loss name or loss option is not valid (the message names it)."""


class LabelingError(LTRPredictorError, ValueError):
    """The model to label with cannot be found or run (the message names it)."""


# ------------------------------------------------------------------------------------------- vLLM and benchmarks
class HookConfigError(LTRPredictorError, ValueError):
    """An `LTR_*` environment variable has a value the vLLM hooks cannot use (the message names it)."""


class SchedulingPolicyError(LTRPredictorError, ValueError):
    """The vLLM engine does not schedule by priority, so predicted priorities would be ignored."""


class PromptTextError(LTRPredictorError, TypeError):
    """A prompt has no text for the predictor (e.g. token ids only)."""


class BatcherFull(LTRPredictorError):
    """The scoring queue is full; the caller should fall back to a neutral priority."""


class CalibrationError(LTRPredictorError, ValueError):
    """A calibration / bench results file lacks a field the queueing model needs (the message names it)."""


class PlaygroundError(LTRPredictorError, ValueError):
    """Bad input to the demo app: no predictor chosen, an empty trace, a Hub dataset with no trace file."""


class CommandLineError(LTRPredictorError, ValueError):
    """A command-line flag is malformed or contradicts another (the message names the flag)."""


# --- UPLOADS
class RepoPathError(LTRPredictorError, ValueError):
    """A path in the target repo (a manifest `subfolder`, a file) is absolute, leaves the repo, or names `.git`."""


class UnsafeFileError(LTRPredictorError, ValueError):
    """A file of a folder to upload is a symbolic link, leaves the folder, or is not a regular readable file."""


class SizeLimitError(LTRPredictorError, ValueError):
    """A size limit is malformed, or a file or the whole commit is over it (the message names the override)."""


class OutputDirError(LTRPredictorError, ValueError):
    """The folder to write a repo tree into is not new or empty, or a file would land outside it."""


class UploadFailedError(LTRPredictorError):
    """The Hub refused or did not answer a step of an upload, and reported no commit (the message says which)."""


# --- cli
class SettingError(LTRPredictorError, ValueError):
    """A setting given to a library function (a benchmark, split or training option) has a value it cannot use.

    The message names the setting and the value; the command line names the flag where it checks one itself.
    """


# --- LOADER
class WeightsConfigError(UsageConfigError):
    """The weights' `config.json` is malformed or asks for remote code (`auto_map`): refused, never run."""


class TokenizerError(LTRPredictorError, ValueError):
    """A tokenizer folder cannot be loaded, or has no vocabulary beyond its special tokens (every prompt alike)."""


class CheckpointError(LTRPredictorError, ValueError):
    """A safetensors checkpoint cannot be trusted to give the model it claims (base of the errors below)."""


class CorruptCheckpointError(CheckpointError):
    """A safetensors file or shard index is unreadable: empty, truncated, a bad or oversized header, a lost shard."""


class IncompleteWeightsError(CheckpointError):
    """The checkpoint does not give every parameter of the model: missing, unexpected, misshapen or mistyped tensors."""


class NonFiniteWeightsError(CheckpointError):
    """Some weights are NaN or infinite: every score would be meaningless."""


# --- adapter
class AdapterError(LTRPredictorError, ValueError):
    """A PEFT adapter cannot be trained or applied: an encoder or lexical backbone, a malformed or incomplete
    `adapter_config.json` / `adapter_model.safetensors`, or a base model that cannot be found (the message names it)."""


class BaseModelMismatchError(AdapterError):
    """The base model file found is not the one the adapter was trained on (the message names both files and hashes)."""


class BestPredictorMissingError(WeightsNotFoundError):
    """The `best` predictor is not shipped in this installation (its package folder is missing)."""


# --- VLLM
class NonFiniteScoreError(LTRPredictorError, ValueError):
    """A score is NaN or infinite: it has no place in a priority order (the message names its position)."""


class PromptScoringError(LTRPredictorError):
    """One prompt of a scoring batch could not be scored. `index` is its position in the batch; the predictor's
    own exception is chained as `__cause__`."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(f"prompt {index}: {message}")


class BatcherStalled(LTRPredictorError):
    """The scoring worker is still busy with a batch whose callers have all timed out: prompts are not queued
    behind it; the caller should fall back to a neutral priority at once."""
