"""The Judge contract: a chat request in, a reply text (or a recorded failure) out.

A judge failure is never turned into a score: `JudgeReply.text` is None and `error` says why; suites count such
items as `judge_missing` and leave them out of their metrics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class JudgeRequest:
    """One chat-completions request: (role, content) messages, sampling temperature, reply length."""

    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 1024

    @staticmethod
    def user(content: str, *, system: str | None = None, temperature: float = 0.0,
             max_tokens: int = 1024) -> "JudgeRequest":
        messages = ((("system", system),) if system is not None else ()) + (("user", content),)
        return JudgeRequest(messages, temperature, max_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": [{"role": r, "content": c} for r, c in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }


@dataclass(frozen=True)
class JudgeReply:
    text: str | None  # None: the judge failed (see error)
    error: str | None = None
    cached: bool = False
    model: str = ""

    @property
    def ok(self) -> bool:
        return self.text is not None


@runtime_checkable
class Judge(Protocol):
    """What suites call. `describe()` goes into run manifests, so it never contains a secret."""

    def complete(self, request: JudgeRequest) -> JudgeReply: ...

    def describe(self) -> dict[str, Any]: ...


def request_key(judge_identity: dict[str, Any], request: JudgeRequest) -> str:
    """Cache key of a request: a hash of the judge's identity (kind, endpoint, model) and the full request."""
    payload = json.dumps({"judge": judge_identity, **request.to_dict()}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class JudgeCounters:
    """What a judge did in this process (for tests, logs and reports)."""

    network_calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
