"""Core types, registry and file helpers. Light: imports nothing heavy."""

from csr_bench.core.types import (
    SCHEMA_VERSION,
    ImagePart,
    Item,
    Message,
    RunManifest,
    Sample,
    TextPart,
)
from csr_bench.core.registry import Registry, adapter, adapters, improver, improvers, suite, suites

__all__ = [
    "SCHEMA_VERSION",
    "ImagePart",
    "Item",
    "Message",
    "RunManifest",
    "Sample",
    "TextPart",
    "Registry",
    "adapter",
    "adapters",
    "improver",
    "improvers",
    "suite",
    "suites",
]
