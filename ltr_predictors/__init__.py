"""ltr-predictors: output-length predictors for LLM scheduling, from the Hugging Face Hub to stock vLLM."""

from .errors import (
    LicenseCheckError,
    LicenseNotAcceptedError,
    LTRPredictorError,
    PickleCheckpointError,
    PredictorSpecError,
    UnknownFamilyError,
    UsageConfigError,
    WeightsNotFoundError,
)
from .licenses import LicenseInfo
from .predictor import LengthPredictor, PredictorInfo, PredictorSource

__version__ = "0.1.0"

__all__ = [
    "LTRPredictorError",
    "LengthPredictor",
    "LicenseCheckError",
    "LicenseInfo",
    "LicenseNotAcceptedError",
    "PickleCheckpointError",
    "PredictorInfo",
    "PredictorSource",
    "PredictorSpecError",
    "UnknownFamilyError",
    "UsageConfigError",
    "WeightsNotFoundError",
    "__version__",
]
