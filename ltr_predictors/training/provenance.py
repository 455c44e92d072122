"""How a predictor was trained, as a typed record: `Provenance`, written once into `ltr_config.json` by the training
run (`training.run`) and read back by model cards.

It names the backbone and its license, the recipe and its data sources, every `TrainingConfig` setting
(`hyperparameters`), what the run achieved (`TrainResult`, with Kendall tau on each source's held-out prompts) and
the software it ran on. Reading is lenient about what is absent (older folders, hand-written ones) and strict about
types: a field of the wrong kind, or a `training` block without one of its figures, is an error naming the file and
the field. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import UsageConfigError


@dataclass(frozen=True)
class HeldOutTau:
    """Kendall tau on the held-out (`test`) prompts of one data source, against their raw target lengths."""

    n: int
    kendall_tau: float | None


@dataclass(frozen=True)
class TrainResult:
    """What a run achieved: the best validation epoch and its tau, the split sizes, the training time, the per-epoch
    history (`epoch`, `train_loss`, `val_kendall_tau`) and, once measured, tau on each source's held-out prompts."""

    best_epoch: int
    val_kendall_tau: float
    train_examples: int
    val_examples: int
    seconds: float
    history: list[dict[str, float]]
    test_kendall_tau: dict[str, HeldOutTau] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrainResult:
        data = _mapping(data, where)
        held_out = _mapping(data.get("test_kendall_tau", {}), f"{where}.test_kendall_tau")
        values = {f.name: data.get(f.name) for f in fields(cls) if f.name != "test_kendall_tau"}
        for name, kinds in (("best_epoch", int), ("train_examples", int), ("val_examples", int)):
            _check(values[name], kinds, f"{where}.{name}")
        for name in ("val_kendall_tau", "seconds"):
            _check(values[name], (int, float), f"{where}.{name}")
        _check(values["history"], list, f"{where}.history")
        return cls(
            **values,
            test_kendall_tau={
                source: HeldOutTau(**_held_out(entry, f"{where}.test_kendall_tau.{source}"))
                for source, entry in held_out.items()
            },
        )


@dataclass(frozen=True)
class Provenance:
    """The provenance block of `ltr_config.json` (see the module docstring). Every field may be absent on reading."""

    backbone: str | None = None
    backbone_license: str | None = None
    backbone_license_link: str | None = None
    recipe: str | None = None
    description: str | None = None
    target_models: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training: TrainResult | None = None
    environment: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Provenance:
        """Read a provenance block; `where` names it in errors. Records written before the seed moved into
        `hyperparameters` keep it at the top level: it is read from there."""
        data = _mapping(data, where)
        hyperparameters = dict(_mapping(data.get("hyperparameters", {}), f"{where}.hyperparameters"))
        if "seed" in data:
            hyperparameters.setdefault("seed", data["seed"])
        for name in ("backbone", "backbone_license", "backbone_license_link", "recipe", "description"):
            _check(data.get(name), (str, type(None)), f"{where}.{name}")
        for name in ("target_models", "data"):
            _check(data.get(name, []), list, f"{where}.{name}")
        training = data.get("training")
        return cls(
            backbone=data.get("backbone"),
            backbone_license=data.get("backbone_license"),
            backbone_license_link=data.get("backbone_license_link"),
            recipe=data.get("recipe"),
            description=data.get("description"),
            target_models=[str(model) for model in data.get("target_models", [])],
            data=list(data.get("data", [])),
            hyperparameters=hyperparameters,
            training=None if training is None else TrainResult.from_dict(training, f"{where}.training"),
            environment=dict(_mapping(data.get("environment", {}), f"{where}.environment")),
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    _check(value, dict, where)
    return value


def _held_out(value: Any, where: str) -> dict[str, Any]:
    entry = _mapping(value, where)
    _check(entry.get("n"), int, f"{where}.n")
    _check(entry.get("kendall_tau"), (int, float, type(None)), f"{where}.kendall_tau")
    return {"n": entry["n"], "kendall_tau": entry.get("kendall_tau")}


def _check(value: Any, kinds: type | tuple[type, ...], where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise UsageConfigError(f"{where} must be {expected}, got {value!r}")
