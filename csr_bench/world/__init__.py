"""The embedded world: synthetic scenes written in the official file formats of the real suites.

See `csr_bench.world.generator` for the layout. No torch here: the tiny model's training imports this.
"""

from csr_bench.world.generator import (
    CATEGORIES,
    GENERATOR_VERSION,
    WorldConfig,
    WorldPaths,
    generate_world,
    tokenize,
    vocabulary,
)

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "WorldConfig", "WorldPaths", "generate_world", "tokenize",
           "vocabulary"]
