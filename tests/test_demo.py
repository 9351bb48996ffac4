"""`csr-bench demo --quick` end to end: world, evaluation, CSR, comparison, leaderboard."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quick_demo_writes_the_three_files_and_csr_lowers_chair(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "csr_bench", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = (out / "leaderboard.md").read_text()
    from csr_bench.demo import DEMO_TASKS

    for task in DEMO_TASKS:
        assert f"## {task}" in board
    for model in ("| tiny ", "| tiny+csr-it1", "| tiny+csr-it2", "| tiny+csr-it3"):
        assert model in board
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((out / "comparison.json").read_text())
    keys = {"suite", "metric", "baseline", "candidate", "delta", "low", "high", "p_value", "p_adjusted", "significant"}
    assert rows and all(keys <= set(r) for r in rows)
    chair_i = next(r for r in rows if r["suite"] == "chair_probe" and r["metric"] == "CHAIR_i")
    # CSR's purpose on the world: fewer hallucinated objects on the probe images after three iterations
    assert chair_i["candidate"] < chair_i["baseline"]
    assert chair_i["delta"] == pytest.approx(chair_i["candidate"] - chair_i["baseline"])
    # every run folder is complete
    runs = list((out / "runs").rglob("manifest.json"))
    tasks = {m.parent.parent.name for m in runs}
    assert set(DEMO_TASKS) <= tasks
    assert len(runs) == 4 * len(tasks)
    for m in runs:
        assert (m.parent / "metrics.json").is_file()
        assert json.loads(m.read_text())["finished"] is not None

    # rerunning does no new work: every run and iteration is reused
    again = subprocess.run([sys.executable, "-m", "csr_bench", "demo", "--quick", "--out", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "comparison.json").read_text()) == rows
