"""Model adapters: the Adapter protocol, model specs and the transformers adapter (`hf`, imported lazily)."""

from csr_bench.models.base import (
    TINY_LLAVA_PATH,
    TINY_MODEL_NAME,
    Adapter,
    GenRequest,
    ModelSpec,
    SentenceLogProb,
    load_adapter,
    resolve_model_spec,
)

__all__ = [
    "TINY_LLAVA_PATH",
    "TINY_MODEL_NAME",
    "Adapter",
    "GenRequest",
    "ModelSpec",
    "SentenceLogProb",
    "load_adapter",
    "resolve_model_spec",
]
