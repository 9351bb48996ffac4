"""The lmms-eval bridge end to end: lmms-eval runs local tasks with our tiny model, both ways round.

- `csr-bench eval --backend lmms-eval --task ...` runs lmms-eval's task through simple_evaluate and writes run folders;
- `lmms-eval eval --model csr_bench --model_args model=tiny ... --log_samples` finds our model by its entry point;
and our metrics equal lmms-eval's own aggregate where that one is correct. Needs the optional extra.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval", reason="optional extra csr-bench[lmms] not installed")

from tests.interop.lmms_fixture_data import build_lmms_tasks  # noqa: E402

TASKS = ("csr_pope", "csr_mme")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _env(tmp_path: Path) -> dict:
    import os

    # A private datasets cache: lmms-eval loads the local tasks without touching the user's cache.
    return {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("lmms")
    generate_world(root / "world", seed=0, config=WorldConfig.quick(seed=0))
    return root, build_lmms_tasks(root / "world", root / "fixture")


def _agreement(metrics: dict, aggregate: dict) -> int:
    """Our metrics against lmms-eval's aggregate, per the format's agreement table; returns how many compared."""
    lmms = metrics["lmms_eval"]
    compared = 0
    for lmms_metric, spec in lmms["agreement"].items():
        key = f"{lmms_metric},none"
        if key in aggregate:
            assert metrics["metrics"][spec["metric"]] * spec["factor"] == pytest.approx(aggregate[key], abs=1e-9), key
            compared += 1
    return compared


@pytest.mark.slow
def test_csr_bench_eval_with_lmms_backend(local_tasks, tmp_path):
    root, tasks_dir = local_tasks
    out = tmp_path / "runs"
    args = ["eval", "--model", "tiny", "--task", ",".join(TASKS), "--out", out, "--backend", "lmms-eval",
            "--include-path", tasks_dir, "--threads", "1"]
    proc = subprocess.run([sys.executable, "-m", "csr_bench", *map(str, args)], capture_output=True, text=True,
                          env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for task in TASKS:
        run = out / "tiny" / task / "seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["suite_config"]["variant"] == "lmms" and manifest["task"] == task
        assert _agreement(metrics, metrics["lmms_eval"]["aggregate"]) >= 1
        # simple_evaluate's samples keep the doc, so POPE clusters by image and MME by image as our suites do.
        assert metrics["lmms_eval"]["unit"] == "image"
        assert metrics["n_units"] < metrics["n_items"]
    pope = json.loads((out / "tiny" / "csr_pope" / "seed0" / "metrics.json").read_text())
    samples = [json.loads(line) for line in (out / "tiny" / "csr_pope" / "seed0" / "samples.jsonl").read_text().splitlines()]
    answered_yes = sum(s["details"]["parsed"] == "yes" for s in samples) / len(samples)
    assert pope["metrics"]["yes_ratio"] == pytest.approx(answered_yes)

    # A rerun reuses the finished runs (no model call; same files).
    before = (out / "tiny" / "csr_pope" / "seed0" / "samples.jsonl").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "csr_bench", *map(str, args)], capture_output=True, text=True,
                          env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "tiny" / "csr_pope" / "seed0" / "samples.jsonl").read_bytes() == before


@pytest.mark.slow
def test_lmms_eval_cli_runs_our_model_and_its_log_imports(local_tasks, tmp_path):
    root, tasks_dir = local_tasks
    lmms_eval_cli = Path(sys.executable).parent / "lmms-eval"
    logs = tmp_path / "logs"
    proc = subprocess.run(
        [str(lmms_eval_cli), "eval", "--model", "csr_bench", "--model_args", "model=tiny", "--tasks", ",".join(TASKS),
         "--include_path", str(tasks_dir), "--log_samples", "--output_path", str(logs), "--batch_size", "8"],
        capture_output=True, text=True, env=_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(logs.rglob("*_results.json")).read_text())["results"]
    for task in TASKS:
        log = next(logs.rglob(f"*_samples_{task}.jsonl"))
        out = tmp_path / f"import_{task}"
        imported = subprocess.run([sys.executable, "-m", "csr_bench", "import", "lmms", str(log), "--task", task,
                                   "--out", str(out)], capture_output=True, text=True, env=_env(tmp_path))
        assert imported.returncode == 0, imported.stderr
        assert _agreement(json.loads((out / "metrics.json").read_text()), results[task]) >= 1
