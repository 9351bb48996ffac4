"""Suites: one module per suite. Each owns its data loading, prompt and scorer."""

from csr_bench.suites.base import Metric, Scored, Suite

__all__ = ["Metric", "Scored", "Suite"]
