"""CSR, Calibrated Self-Rewarding (arXiv 2405.14622), as an improver.

config.py  the typed config (TOML tables: top level, [search], [train], [lora]) and the two calibrations
rewards.py reward arithmetic of both calibrations (plain numbers)
pairs.py   search trees, chosen/rejected selection, preference pair files
clip.py    the CLIP relevance scorer (tiny open_clip or transformers CLIP)
search.py  sentence-level search with a reused prefix cache and a diverse beam search of our own
dpo.py     TRL DPOTrainer + peft LoRA on the language model, merge, save
improver.py the registered improver (@improver("csr")) that runs one iteration

Only config, rewards and pairs are imported here (no torch).
"""

from csr_bench.improvers.csr.config import CSRConfig, LoraConfig, SearchConfig, TrainConfig
from csr_bench.improvers.csr.pairs import PreferencePair, SentenceNode, select_official, select_paper

__all__ = ["CSRConfig", "LoraConfig", "PreferencePair", "SearchConfig", "SentenceNode", "TrainConfig",
           "select_official", "select_paper"]
