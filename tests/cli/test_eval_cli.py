"""`csr-bench eval` on the embedded world: bad input, and a run killed mid-way that resumes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.test_cli import assert_user_error, cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("w") / "world"
    generate_world(root, config=WorldConfig.quick(seed=0))
    return root


def test_eval_bad_input(world, tmp_path):
    out = tmp_path / "results"
    assert_user_error(cli("eval", "--model", "tinyy", "--world", world, "--suite", "pope_random", "--out", out), "tinyy", "'tiny'")
    assert_user_error(cli("eval", "--model", "tiny", "--world", world, "--suite", "pope_randm", "--out", out), "did you mean pope_random")
    assert_user_error(cli("eval", "--model", "tiny", "--suite", "popee", "--data", world / "x.json", "--out", out), "did you mean pope")
    empty = tmp_path / "ckpt"
    empty.mkdir()
    shutil.copy(world.parent / "world" / "world.json", empty / "config.json")
    assert_user_error(cli("eval", "--model", empty, "--world", world, "--suite", "pope_random", "--out", out), "ckpt", "weights")
    broken = tmp_path / "broken"
    shutil.copytree(world, broken)
    first = json.loads((broken / "pope" / "coco_pope_random.json").read_text().splitlines()[0])
    (broken / "images" / "val2014" / first["image"]).unlink()
    assert_user_error(cli("eval", "--model", "tiny", "--world", broken, "--suite", "pope_random", "--out", out), first["image"], f"item {first['question_id']}")
    assert not out.exists()


@pytest.mark.slow
def test_eval_killed_mid_way_resumes_without_loss_or_duplication(world, tmp_path):
    args = ["eval", "--model", "tiny", "--world", str(world), "--suite", "pope_adversarial", "--batch-size", "1", "--threads", "1"]
    full = tmp_path / "full"
    assert cli(*args, "--out", full).returncode == 0
    part = tmp_path / "part"
    samples = part / "tiny" / "pope_adversarial" / "seed0" / "samples.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "csr_bench", *args, "--out", str(part)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and (not samples.exists() or len(samples.read_bytes().splitlines()) < 20):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_killed = len(samples.read_bytes().splitlines())
    total = len((full / "tiny" / "pope_adversarial" / "seed0" / "samples.jsonl").read_bytes().splitlines())
    assert 20 <= n_killed < total, "the kill should land mid-run"
    assert cli(*args, "--out", part).returncode == 0
    a, b = (d / "tiny" / "pope_adversarial" / "seed0" for d in (full, part))
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()


def test_world_vqa_tasks_run_through_the_official_scorers(world, tmp_path):
    proc = cli("eval", "--model", "tiny", "--world", world, "--suite", "gqa,vizwiz", "--limit", "12", "--threads", "1", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    for task in ("gqa", "vizwiz"):
        run = tmp_path / "tiny" / task / "seed0"
        lines = (run / "samples.jsonl").read_text().splitlines()
        assert len(lines) == 12
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["suite"] == task and manifest["suite_config"]["variant"] == "llava"
        accuracy = json.loads((run / "metrics.json").read_text())["metrics"]["accuracy"]
        assert 0.0 <= accuracy <= 100.0
