"""Deterministic train / validation / test assignment of prompts by a hash of their text.

The same prompt lands in the same split in every file, every run and every process, so a recipe never trains on
a prompt that `ltr-predictors eval --split test` later scores, even across data sources that share prompts.
"""

from __future__ import annotations

import hashlib

from ..errors import SettingError

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1


def prompt_unit(prompt: str) -> float:
    """A number in [0, 1) fixed by the prompt's text (SHA-1, first 8 bytes)."""
    digest = hashlib.sha1(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse split fractions that leave no training prompts or are not shares."""
    if not (0.0 <= test_fraction < 1.0 and 0.0 <= val_fraction < 1.0 and test_fraction + val_fraction < 1.0):
        raise SettingError(
            f"split fractions: val_fraction {val_fraction} and test_fraction {test_fraction} must each be in [0, 1) "
            "and sum to less than 1"
        )


def split_of(prompt: str, val_fraction: float, test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """`test` for the first `test_fraction` of the hash range, `val` for the next `val_fraction`, else `train`."""
    check_fractions(val_fraction, test_fraction)
    unit = prompt_unit(prompt)
    if unit < test_fraction:
        return "test"
    if unit < test_fraction + val_fraction:
        return "val"
    return "train"
