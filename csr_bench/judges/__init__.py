"""LLM judges for LLaVA-Bench in-the-wild and MM-Vet: an OpenAI-compatible client, a local `hf` judge, a
deterministic `world` judge, and a persistent cache of judge calls.

`make_judge(spec)` builds one from a spec string:
- "openai" or "openai:MODEL" — chat completions at CSR_BENCH_JUDGE_URL (see openai_client);
- "hf:MODEL_SPEC" — a local model through csr_bench.models (e.g. "hf:tiny", "hf:/models/llava-1.5-7b-hf");
- "world" — WorldJudge, grading the embedded world's items from its ground truth.
"""

from __future__ import annotations

import os
from typing import Any

from csr_bench.errors import UserError
from csr_bench.judges.base import Judge, JudgeCounters, JudgeReply, JudgeRequest, request_key
from csr_bench.judges.cache import JudgeCache
from csr_bench.judges.hf import HFJudge
from csr_bench.judges.openai_client import OpenAIJudge, default_cache_dir
from csr_bench.judges.world import WorldJudge


def make_judge(spec: str | Judge | None, *, default_model: str = "", cache_dir: str | os.PathLike | None = None,
               **options: Any) -> Judge:
    """A judge from a spec string (see the module docstring); a Judge instance is returned as is.

    None means "openai" (the official setting). Caching is on by default, under $CSR_BENCH_CACHE/judge
    (~/.cache/csr_bench/judge); pass cache_dir to choose the folder.
    """
    if spec is not None and not isinstance(spec, str):
        return spec
    spec = (spec or "openai").strip()
    kind, _, rest = spec.partition(":")
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    if kind == "openai":
        return OpenAIJudge(rest or os.environ.get("CSR_BENCH_JUDGE_MODEL") or default_model, cache_dir=cache,
                           **options)
    if kind == "hf":
        if not rest:
            raise UserError(f"judge spec '{spec}': expected a model after 'hf:' (e.g. 'hf:tiny')")
        return HFJudge(rest, cache_dir=cache, **options)
    if kind == "world" and not rest:
        return WorldJudge()
    raise UserError(f"unknown judge '{spec}'; expected 'openai[:MODEL]', 'hf:MODEL' or 'world'")


__all__ = [
    "HFJudge",
    "Judge",
    "JudgeCache",
    "JudgeCounters",
    "JudgeReply",
    "JudgeRequest",
    "OpenAIJudge",
    "WorldJudge",
    "make_judge",
    "request_key",
]
