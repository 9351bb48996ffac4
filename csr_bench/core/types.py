"""Core data types: one message format for prompts, items, samples and the run manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# Bumped whenever the meaning or layout of a run folder's files changes; readers refuse newer versions.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ImagePart:
    """An image given by path (resolved by the suite inside its data root)."""

    path: str
    type: Literal["image"] = "image"


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    parts: tuple[Part, ...]

    @staticmethod
    def user(*parts: Part | str) -> "Message":
        return Message("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "parts": [asdict(p) for p in self.parts]}


@dataclass(frozen=True)
class Item:
    """One question of a suite: the prompt, the resampling unit it belongs to and the reference.

    `id` is a string (numeric ids of official files are kept as their decimal text).
    `unit` is the resampling cluster (e.g. the image for POPE), used by the bootstrap.
    """

    id: str
    unit: str
    messages: tuple[Message, ...]
    target: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def prompt_hash(self) -> str:
        payload = json.dumps([m.to_dict() for m in self.messages], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Sample:
    """One line of samples.jsonl.

    `stats` is this item's contribution to its unit's statistics vector (named by the manifest's
    `stat_names`); a unit's statistics are the sum over its items unless the suite says otherwise.
    """

    item_id: str
    unit: str
    output: str | None
    scores: dict[str, Any]
    stats: list[float]
    details: dict[str, Any] = field(default_factory=dict)
    prompt_hash: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "item_id": self.item_id,
                "unit": self.unit,
                "prompt_hash": self.prompt_hash,
                "output": self.output,
                "scores": self.scores,
                "stats": self.stats,
                "details": self.details,
            },
            ensure_ascii=False,
            allow_nan=False,
        )

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Sample":
        return Sample(
            item_id=str(d["item_id"]),
            unit=str(d["unit"]),
            output=d.get("output"),
            scores=d.get("scores") or {},
            stats=list(d["stats"]),
            details=d.get("details") or {},
            prompt_hash=d.get("prompt_hash"),
        )


@dataclass
class RunManifest:
    """manifest.json of a run folder: what was evaluated, on what, how, with which software."""

    suite: str
    suite_config: dict[str, Any]
    model: dict[str, Any]
    seed: int
    stat_names: list[str]
    data_fingerprint: str
    n_items: int
    config: dict[str, Any] = field(default_factory=dict)
    # The task label (e.g. "pope_adversarial" for one POPE split); runs group and compare by it.
    task: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    finished: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # schema_version first: readers check it before anything else.
        return {"schema_version": d.pop("schema_version"), **d}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "RunManifest":
        known = {f for f in RunManifest.__dataclass_fields__}
        return RunManifest(**{k: v for k, v in d.items() if k in known})

    @property
    def task_name(self) -> str:
        return self.task or self.suite

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun into the same folder to resume it."""
        return {
            "suite": self.suite,
            "task": self.task_name,
            "suite_config": self.suite_config,
            "model": self.model.get("fingerprint", self.model),
            "seed": self.seed,
            "data_fingerprint": self.data_fingerprint,
            "config": self.config,
        }
