"""A local judge: any model our adapters load (csr_bench.models), greedy decoding, with the same cache."""

from __future__ import annotations

import os
from typing import Any

from csr_bench.judges.base import JudgeCounters, JudgeReply, JudgeRequest, request_key
from csr_bench.judges.cache import JudgeCache


class HFJudge:
    """Judge with a local model spec ("tiny", "hf:PATH_OR_HUB_ID", a checkpoint folder), loaded on first use.

    Decoding is greedy whatever the request's temperature (a local judge is run deterministically); the request's
    `max_tokens` bounds the reply. A generation error is a failed reply (the item is missing), not an exception.
    """

    def __init__(self, model_spec: str, *, cache_dir: str | os.PathLike | None = None, adapter: Any = None,
                 **adapter_options: Any):
        self.model_spec = model_spec
        self._adapter = adapter
        self._adapter_options = adapter_options
        self.cache = JudgeCache(cache_dir) if cache_dir is not None else None
        self.counters = JudgeCounters()
        self._fingerprint: str | None = None

    def _load(self) -> Any:
        if self._adapter is None:
            from csr_bench.models import load_adapter

            self._adapter = load_adapter(self.model_spec, **self._adapter_options)
        return self._adapter

    def describe(self) -> dict[str, Any]:
        return {"kind": "hf", "model": self.model_spec}

    def _identity(self) -> dict[str, Any]:
        # The weights' fingerprint keys the cache, so a retrained checkpoint at the same path is not served
        # stale replies.
        if self._fingerprint is None:
            self._fingerprint = str(self._load().fingerprint())
        return {**self.describe(), "fingerprint": self._fingerprint}

    def complete(self, request: JudgeRequest) -> JudgeReply:
        from csr_bench.core.types import Message, TextPart
        from csr_bench.models import GenRequest

        key = request_key(self._identity(), request)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.counters.cache_hits += 1
            return JudgeReply(hit["text"], cached=True, model=self.model_spec)
        messages = tuple(Message(role, (TextPart(content),)) for role, content in request.messages)  # type: ignore[arg-type]
        self.counters.network_calls += 1
        try:
            text = self._load().generate([GenRequest(messages)], max_new_tokens=request.max_tokens, do_sample=False)[0]
        except Exception as e:  # a local model can fail on one prompt (too long, ...): that item is missing
            self.counters.failures += 1
            self.counters.errors.append(f"{type(e).__name__}: {e}")
            return JudgeReply(None, error=f"{type(e).__name__}: {e}")
        if self.cache is not None:
            self.cache.put(key, request.to_dict(), text, self.model_spec)
        return JudgeReply(text, model=self.model_spec)
