"""Errors raised by ltr-predictors.

Every error names the file, field or value at fault, so that a user can fix the input without reading our code.
They all derive from `LTRPredictorError`, so `except LTRPredictorError` catches anything the library raises on
bad input.
"""

from __future__ import annotations


class LTRPredictorError(Exception):
    """Base class of every error raised by ltr-predictors on bad input."""


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


class LicenseCheckError(LTRPredictorError, ValueError):
    """A declared license contradicts what a predictor's provenance says (used by cards and uploads)."""


class CommandLineError(LTRPredictorError, ValueError):
    """A command-line flag is malformed or contradicts another (the message names the flag)."""
