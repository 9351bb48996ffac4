"""Improvers: methods that make a model better iteration by iteration, one checkpoint per iteration.

The contract (`Improver`), config files (TOML), prompt files and the resumable loop with its lineage manifest
live in `csr_bench.improvers.base`; CSR (Calibrated Self-Rewarding) in `csr_bench.improvers.csr`. Nothing here
imports torch: an improver imports its heavy modules when it runs.
"""

from csr_bench.improvers.base import (
    LINEAGE_FILE,
    CheckpointRecord,
    Improver,
    IterationOutput,
    NullProgress,
    Progress,
    PromptRecord,
    RichProgress,
    get_improver,
    improve,
    improver_names,
    improver_rows,
    lineage_identity,
    load_config_file,
    load_prompts,
    read_lineage,
    run_improve,
)

__all__ = [
    "LINEAGE_FILE",
    "CheckpointRecord",
    "Improver",
    "IterationOutput",
    "NullProgress",
    "Progress",
    "PromptRecord",
    "RichProgress",
    "get_improver",
    "improve",
    "improver_names",
    "improver_rows",
    "lineage_identity",
    "load_config_file",
    "load_prompts",
    "read_lineage",
    "run_improve",
]
