"""Interoperability with other harnesses: lmms-eval sample logs, tasks and models.

Light on purpose: `lmms_eval` (an optional extra, `pip install 'csr-bench[lmms]'`) is imported only by
`csr_bench.interop.lmms_model` and `csr_bench.interop.lmms_run`, never here.
"""

from csr_bench.interop.lmms_import import (
    LMMS_FORMATS,
    ConvertedLog,
    convert_lmms_samples,
    import_lmms_samples,
    lmms_format_for_task,
    read_lmms_sample_log,
)

__all__ = [
    "LMMS_FORMATS",
    "ConvertedLog",
    "convert_lmms_samples",
    "import_lmms_samples",
    "lmms_format_for_task",
    "read_lmms_sample_log",
]
