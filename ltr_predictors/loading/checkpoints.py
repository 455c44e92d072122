"""Find a predictor's weights folder and check it before anything loads from it: `config.json` and safetensors.

A model whose checkpoint lacks a tensor still loads in transformers, with that tensor randomly initialised: two loads
then score differently. So a checkpoint is read here first, header by header (`safetensors.safe_open`, which refuses
an empty, truncated or oversized-header file), single file or every shard of `model.safetensors.index.json`, and a
`WeightsReport` lists what keeps it from giving exactly the model's parameters: missing, unexpected, misshapen or
mistyped tensors. Backends fill the report from what they load (transformers' loading info, the lexical head's two
tensors) and raise `IncompleteWeightsError` unless it is empty; `check_finite` refuses NaN and infinite weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from ..errors import (
    CorruptCheckpointError,
    IncompleteWeightsError,
    NonFiniteWeightsError,
    WeightsConfigError,
    WeightsNotFoundError,
)
from ._json_files import read_json
from .usage_config import USAGE_CONFIG_NAME, UsageConfig

WEIGHTS_SUBDIR = "finetuned"
CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors dtypes a floating-point parameter may be stored as
_LISTED = 8  # names listed per kind of problem in an error message


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a checkpoint as its header describes it."""

    dtype: str
    shape: tuple[int, ...]
    file: Path

    @property
    def kind(self) -> str:
        """`float`, `int`, `bool`, or the dtype itself for kinds no model parameter takes (fp8, ...)."""
        if self.dtype in FLOAT_DTYPES:
            return "float"
        if self.dtype[:1] in ("I", "U") and self.dtype[1:].isdigit():
            return "int"
        return "bool" if self.dtype == "BOOL" else self.dtype


@dataclass
class WeightsReport:
    """What keeps a checkpoint from giving exactly the model's parameters; empty when it does."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    misshapen: list[str] = field(default_factory=list)  # "name: checkpoint (2, 16), model (1, 16)"
    mistyped: list[str] = field(default_factory=list)  # "name: checkpoint I32, model float"

    def raise_if_any(self, where: Path) -> None:
        """`IncompleteWeightsError` naming the checkpoint and every problem (the first few names of each kind)."""
        parts = [
            f"{label} ({len(names)}): {', '.join(sorted(names)[:_LISTED])}{', ...' if len(names) > _LISTED else ''}"
            for label, names in (
                ("missing tensors", self.missing),
                ("unexpected tensors", self.unexpected),
                ("wrong shapes", self.misshapen),
                ("wrong dtypes", self.mistyped),
            )
            if names
        ]
        if parts:
            raise IncompleteWeightsError(
                f"{where}: the checkpoint does not give every parameter of the model, refused rather than "
                f"initialised at random; {'; '.join(parts)}"
            )


def model_config(folder: Path, usage: UsageConfig) -> tuple[dict[str, Any] | None, str]:
    """The weights' `config.json` in the first place `weights_folder` looks (None if there is none), and its path."""
    for candidate in _weights_candidates(folder, usage):
        config = read_model_config(candidate)
        if config is not None:
            return config, str(candidate / CONFIG_NAME)
    return None, CONFIG_NAME


def _weights_candidates(folder: Path, usage: UsageConfig) -> list[Path]:
    """`finetuned/` beside the usage config, the last part of its stale `path`, the folder itself, in this order:
    all inside the folder."""
    candidates = [folder / WEIGHTS_SUBDIR, folder]
    stale = Path(usage.path).name
    if stale not in ("", ".", ".."):
        candidates.insert(1, folder / stale)
    return candidates


def weights_folder(folder: Path, usage: UsageConfig) -> Path:
    """`finetuned/` beside the usage config (the stale `path` is ignored), or the folder itself when flat."""
    for candidate in _weights_candidates(folder, usage):
        if (candidate / CONFIG_NAME).is_file() or any(
            (candidate / n).is_file() for n in (SAFETENSORS_NAME, INDEX_NAME)
        ):
            return candidate
    raise WeightsNotFoundError(
        f"{folder / USAGE_CONFIG_NAME}: no weights found in {folder / WEIGHTS_SUBDIR} nor in {folder} "
        f"(the stale 'model.path' {usage.path!r} is not used)"
    )


def read_model_config(weights_dir: Path) -> dict[str, Any] | None:
    """The weights' `config.json` (None when there is none), refused when malformed or asking for remote code."""
    path = weights_dir / CONFIG_NAME
    if not path.is_file():
        return None
    data = read_json(path, WeightsConfigError, finite=True)  # every number in it shapes the model
    if not isinstance(data, dict):
        raise WeightsConfigError(f"{path}: expected a JSON object")
    if "auto_map" in data:
        raise WeightsConfigError(
            f"{path}: 'auto_map' asks to run the repo's own Python code (remote code), which ltr-predictors never "
            "does; save the model with an architecture that transformers ships"
        )
    return data


def checkpoint_tensors(weights_dir: Path) -> dict[str, TensorSpec]:
    """Every tensor of the checkpoint in `weights_dir`: `model.safetensors` if present (as transformers loads it),
    else every shard that `model.safetensors.index.json` names, each present, intact and holding what it lists."""
    single = weights_dir / SAFETENSORS_NAME
    if single.is_file():
        return _file_tensors(single)
    index = weights_dir / INDEX_NAME
    if index.is_file():
        return _sharded_tensors(index)
    raise WeightsNotFoundError(f"{weights_dir}: no {SAFETENSORS_NAME}")


def mistyped(found: Mapping[str, TensorSpec], kinds: Mapping[str, str]) -> list[str]:
    """Tensors of `found` whose kind (float, int, bool) is not the kind of the model tensor of that name in `kinds`;
    a tensor the model knows by another name (a renamed legacy key) must be a float."""
    return [
        f"{name}: checkpoint {spec.dtype}, model {kinds.get(name, 'float')}"
        for name, spec in found.items()
        if spec.kind != kinds.get(name, "float")
    ]


def compare(
    found: Mapping[str, TensorSpec], expected: Mapping[str, tuple[tuple[str, ...], tuple[int | None, ...]]]
) -> WeightsReport:
    """Check `found` against `expected` (name -> dtypes allowed and shape, None for any size along an axis)."""
    report = WeightsReport(
        missing=[name for name in expected if name not in found],
        unexpected=[name for name in found if name not in expected],
    )
    for name, (dtypes, shape) in expected.items():
        spec = found.get(name)
        if spec is None:
            continue
        if len(spec.shape) != len(shape) or any(
            want not in (None, got) for want, got in zip(shape, spec.shape, strict=True)
        ):
            wanted = tuple("any" if s is None else s for s in shape)
            report.misshapen.append(f"{name}: checkpoint {spec.shape}, model {wanted}")
        if spec.dtype not in dtypes:
            report.mistyped.append(f"{name}: checkpoint {spec.dtype}, model {'/'.join(dtypes)}")
    return report


def check_finite(where: Path, non_finite: Iterable[str]) -> None:
    """`NonFiniteWeightsError` when any tensor (named in `non_finite`) holds NaN or an infinity."""
    names = sorted(non_finite)
    if names:
        listed = ", ".join(names[:_LISTED]) + (", ..." if len(names) > _LISTED else "")
        raise NonFiniteWeightsError(f"{where}: NaN or infinite values in {len(names)} tensor(s): {listed}")


def _file_tensors(path: Path) -> dict[str, TensorSpec]:
    try:
        with safe_open(str(path), framework="numpy") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
            return {name: TensorSpec(s.get_dtype(), tuple(s.get_shape()), path) for name, s in slices.items()}
    except (SafetensorError, OSError) as exc:
        raise CorruptCheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def _sharded_tensors(index: Path) -> dict[str, TensorSpec]:
    data = read_json(index, CorruptCheckpointError)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise CorruptCheckpointError(f"{index}: 'weight_map' must map every tensor name to a shard file name")
    tensors: dict[str, TensorSpec] = {}
    for shard in sorted(set(weight_map.values())):
        if shard in ("", ".", "..") or Path(shard).name != shard or "\\" in shard:
            raise CorruptCheckpointError(f"{index}: shard {shard!r} is not a file name beside the index")
        path = index.parent / shard
        if not path.is_file():
            raise CorruptCheckpointError(f"{index}: shard {shard} is missing")
        held = _file_tensors(path)
        listed = {name for name, file in weight_map.items() if file == shard}
        if set(held) != listed:
            lost, extra = sorted(listed - set(held)), sorted(set(held) - listed)
            raise CorruptCheckpointError(
                f"{path}: does not hold what {index.name} lists (listed but absent: {lost[:_LISTED]}; "
                f"present but not listed: {extra[:_LISTED]})"
            )
        tensors.update(held)
    return tensors
