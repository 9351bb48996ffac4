"""csr-bench: an evaluation-first harness for vision-language models.

`import csr_bench` is light on purpose (no torch): heavy libraries are imported by the plugins that use them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
