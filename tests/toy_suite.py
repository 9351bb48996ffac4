"""A minimal suite used by runner and report tests: exact-match accuracy, clustered by `unit`."""

from __future__ import annotations

from csr_bench.core.registry import suite
from csr_bench.core.types import Item, Message
from csr_bench.suites.base import Metric, Scored, Suite, ratio


@suite("toy")
class ToySuite(Suite):
    name = "toy"
    description = "exact-match accuracy (test helper)"
    stat_names = ("correct", "count")

    def __init__(self, n: int = 10, per_unit: int = 2):
        self.n, self.per_unit = n, per_unit

    def items(self) -> list[Item]:
        return [
            Item(id=str(i), unit=f"u{i // self.per_unit}", messages=(Message.user(f"q{i}"),), target=str(i % 3))
            for i in range(self.n)
        ]

    def score(self, item: Item, output: str | None) -> Scored:
        ok = int(output == item.target)
        return Scored(scores={"correct": ok}, stats=[ok, 1], details={"target": item.target})

    def metrics(self) -> list[Metric]:
        return [Metric("accuracy", ratio(0, 1))]

    def data_fingerprint(self) -> str:
        return f"toy-{self.n}-{self.per_unit}"


def toy_manifest(seed: int = 0, model: str = "m"):
    from csr_bench.core.types import RunManifest

    s = ToySuite()
    return RunManifest(
        suite="toy", suite_config={}, model={"name": model, "fingerprint": model}, seed=seed,
        stat_names=list(s.stat_names), data_fingerprint=s.data_fingerprint(), n_items=s.n,
    )
