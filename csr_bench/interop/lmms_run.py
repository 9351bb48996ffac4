"""Run an lmms-eval task on one of our models and keep it as a csr-bench run folder.

`run_lmms_task` calls `lmms_eval.evaluator.simple_evaluate(model=<our adapter as an lmms model>, tasks=[task],
log_samples=True)`, converts the logged samples like `csr-bench import lmms` does (csr_bench.interop.lmms_import)
and writes the run folder atomically, with lmms-eval's own aggregate beside ours in metrics.json. A finished
run of the same model, task, limit and seed in the folder is reused, not recomputed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from csr_bench.errors import UserError

INSTALL_HINT = "pip install 'csr-bench[lmms]'"


def require_lmms_eval() -> None:
    """A one-line UserError when the optional lmms-eval extra is missing."""
    try:
        import lmms_eval  # noqa: F401
    except ImportError:
        raise UserError(f"--backend lmms-eval needs lmms-eval, which is not installed: {INSTALL_HINT}") from None


def _finished_run(out: Path, identity: dict[str, Any]) -> bool:
    from csr_bench.runner.store import check_run_folder

    # Not a run, a malformed manifest or a newer schema: one line, before lmms-eval starts.
    manifest = check_run_folder(out)
    if manifest is None:
        return False
    previous = (manifest.get("config") or {}).get("lmms_run")
    if previous != identity or not manifest.get("finished"):
        raise UserError(f"{out / 'manifest.json'}: this folder holds a different run; choose another --out folder")
    return True


def _plain(value: Any) -> Any:
    """lmms-eval's aggregate as JSON: numbers and strings kept, NaN and infinities (which JSON cannot hold) as null,
    anything else (e.g. 'N/A') as text."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def run_lmms_task(
    model_spec: str,
    task: str,
    out: str | os.PathLike,
    *,
    include_path: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    name: str | None = None,
    lmms_format: str | None = None,
    adapter: Any = None,
) -> Path:
    """Evaluate `model_spec` on the lmms-eval `task` into the run folder `out`; returns `out`."""
    require_lmms_eval()
    from csr_bench.interop.lmms_import import (
        convert_lmms_samples,
        converted_manifest,
        converted_metrics,
        samples_from_memory,
    )
    from csr_bench.models import load_adapter
    from csr_bench.runner.evaluate import model_label
    from csr_bench.runner.store import write_run_atomically

    out = Path(out)
    if include_path is not None and not Path(include_path).is_dir():
        raise UserError(f"--include-path {include_path}: folder not found")
    label = name or model_label(model_spec)
    adapter = adapter if adapter is not None else load_adapter(model_spec)
    fingerprint = adapter.fingerprint()
    identity = {"task": task, "model": fingerprint, "limit": limit, "seed": seed}
    if _finished_run(out, identity):
        return out

    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from csr_bench.interop.lmms_model import CsrBenchLmms

    task_manager = TaskManager("WARNING", include_path=str(include_path) if include_path is not None else None)
    if task not in task_manager.all_tasks:
        raise UserError(f"lmms-eval task '{task}' not found" + (f" (also searched {include_path})" if include_path else ""))
    lm = CsrBenchLmms(model_spec, adapter=adapter, batch_size=batch_size, seed=seed)
    results = simple_evaluate(
        model=lm, tasks=[task], task_manager=task_manager, limit=limit, log_samples=True, bootstrap_iters=0,
        random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, verbosity="WARNING",
        process_docs_parallel=1,
    )
    if results is None or task not in (results.get("samples") or {}):
        raise UserError(f"lmms-eval returned no samples for task '{task}' (is it a group of tasks? give one task)")
    converted = convert_lmms_samples(
        samples_from_memory(results["samples"][task], label=f"lmms-eval samples of {task}"), task,
        source=f"lmms-eval task {task}", lmms_format=lmms_format,
    )
    aggregate = {k: _plain(v) for k, v in results["results"][task].items() if k not in ("alias",)}
    summary = converted_metrics(converted, lmms_aggregate=aggregate)
    manifest = converted_manifest(
        converted, model_name=label, source=f"lmms-eval:{task}", seed=seed, mode="lmms-eval",
        model={"name": label, "spec": model_spec, "fingerprint": fingerprint},
    )
    manifest.config["lmms_run"] = identity
    manifest.config["include_path"] = None if include_path is None else Path(include_path).name
    write_run_atomically(out, manifest, converted.samples, summary)
    return out


__all__ = ["INSTALL_HINT", "require_lmms_eval", "run_lmms_task"]
