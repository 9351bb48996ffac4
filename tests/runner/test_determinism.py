"""Determinism on the CPU: the same `csr-bench eval` command gives byte-identical samples.jsonl and metrics.json,
and the batch size does not change greedy outputs (through the CLI and at the adapter level).

The repeated commands run in separate processes with different PYTHONHASHSEED values, so an output that
depended on set or dict-of-hash ordering would show. The manifests of two runs differ only in `created` and
`finished` (wall-clock timestamps); the batch size is not part of a run's identity and is not recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from csr_bench.core.types import ImagePart, Message
from csr_bench.models import GenRequest, load_adapter

torch.set_num_threads(1)

TASKS = ("pope_random", "chair_probe")
TIMESTAMP_FIELDS = ("created", "finished")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    return generate_world(tmp_path_factory.mktemp("world") / "w", config=WorldConfig.quick(seed=0))


def run_eval(world, out: Path, *extra: str, hash_seed: str) -> dict[str, Path]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    args = ["eval", "--model", "tiny", "--world", str(world.root), "--suite", ",".join(TASKS), "--limit", "6",
            "--threads", "1", "--out", str(out), *extra]
    proc = subprocess.run([sys.executable, "-m", "csr_bench", *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    seed = extra[extra.index("--seeds") + 1] if "--seeds" in extra else "0"
    return {task: out / "tiny" / task / f"seed{seed}" for task in TASKS}


def manifest_without_timestamps(run: Path) -> dict:
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert all(manifest[k] for k in TIMESTAMP_FIELDS)  # both were written
    return {k: v for k, v in manifest.items() if k not in TIMESTAMP_FIELDS}


def outputs(run: Path) -> list[str]:
    return [json.loads(line)["output"] for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_same_eval_command_gives_identical_files_and_batch_size_keeps_greedy_outputs(world, tmp_path):
    sampled = ("--sample", "--temperature", "1.0", "--seeds", "3", "--batch-size", "4")
    first = run_eval(world, tmp_path / "sampled-1", *sampled, hash_seed="1")
    second = run_eval(world, tmp_path / "sampled-2", *sampled, hash_seed="2")
    greedy_8 = run_eval(world, tmp_path / "greedy-8", "--batch-size", "8", hash_seed="3")
    greedy_1 = run_eval(world, tmp_path / "greedy-1", "--batch-size", "1", hash_seed="4")
    for task in TASKS:
        for a, b in ((first[task], second[task]), (greedy_8[task], greedy_1[task])):
            assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes(), task
            assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes(), task
            assert manifest_without_timestamps(a) == manifest_without_timestamps(b), task
        assert len(outputs(first[task])) == 6
    # The sampled runs did sample: some caption differs from the greedy one.
    assert outputs(first["chair_probe"]) != outputs(greedy_8["chair_probe"])
    assert json.loads((first["chair_probe"] / "manifest.json").read_text())["config"]["generation"]["do_sample"]


def test_adapter_batch_size_does_not_change_greedy_outputs(world):
    adapter = load_adapter("tiny", device="cpu")
    images = sorted(world.images_val.glob("*.png"))[:9]
    prompts = ["Describe this image.", "Is there a dog in the image?", "Is there a cup in the image?"]
    # Nine requests of mixed lengths: batch 8 left-pads within a full batch and leaves a ragged last batch of 1.
    requests = [GenRequest((Message.user(ImagePart(str(p)), prompts[i % 3]),)) for i, p in enumerate(images)]
    batch_8 = adapter.generate(requests, max_new_tokens=24, batch_size=8)
    batch_1 = adapter.generate(requests, max_new_tokens=24, batch_size=1)
    assert batch_8 == batch_1 and all(batch_8)
    # Sampling is reproducible for a given seed and batch size.
    sample = dict(max_new_tokens=24, do_sample=True, temperature=1.0, seed=5, batch_size=4)
    assert adapter.generate(requests, **sample) == adapter.generate(requests, **sample)
