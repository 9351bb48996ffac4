"""Plugin registries: decorators for built-ins, entry-point groups for other packages.

Registering stores only a dotted path or a light factory; heavy modules (torch, transformers, ...) are
imported by the plugin when it is used, never at `import csr_bench`.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

from csr_bench.errors import UserError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str, group: str, builtins: dict[str, str]):
        self.kind = kind
        self.group = group
        self._builtins = dict(builtins)  # name -> "module:attr", imported lazily
        self._objects: dict[str, Any] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            self._objects[name] = obj
            try:
                setattr(obj, "registry_name", name)
            except (AttributeError, TypeError):
                pass
            return obj

        return decorate

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            self._builtins.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(set(self._builtins) | set(self._objects))

    def get(self, name: str) -> Any:
        if name in self._objects:
            return self._objects[name]
        self._load_entry_points()
        target = self._builtins.get(name)
        if target is None:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
            raise UserError(f"unknown {self.kind} '{name}'{hint}")
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        obj = getattr(module, attr) if attr else module
        # Importing the module normally registers it through the decorator; keep the entry point's object too.
        self._objects.setdefault(name, obj)
        return self._objects[name]


BUILTIN_SUITES = {
    "pope": "csr_bench.suites.pope:PopeSuite",
    "chair": "csr_bench.suites.chair:ChairSuite",
    "mme": "csr_bench.suites.mme:MmeSuite",
    "mmbench": "csr_bench.suites.mmbench:MmbenchSuite",
    "seed_bench": "csr_bench.suites.seed_bench:SeedBenchSuite",
    "scienceqa": "csr_bench.suites.scienceqa:ScienceQASuite",
    "gqa": "csr_bench.suites.gqa:GQASuite",
    "vizwiz": "csr_bench.suites.vizwiz:VizWizSuite",
    "llava_wild": "csr_bench.suites.llava_wild:LlavaWildSuite",
    "mmvet": "csr_bench.suites.mmvet:MMVetSuite",
}

suites = Registry("suite", "csr_bench.suites", BUILTIN_SUITES)
adapters = Registry("adapter", "csr_bench.adapters", {"hf": "csr_bench.models.hf:HFAdapter", "vllm": "csr_bench.models.vllm:VLLMAdapter"})
improvers = Registry("improver", "csr_bench.improvers", {"csr": "csr_bench.improvers.csr.improver:CSRImprover"})

suite = suites.register
adapter = adapters.register
improver = improvers.register
