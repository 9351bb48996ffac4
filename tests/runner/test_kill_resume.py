"""`csr-bench eval` killed with SIGKILL at seeded random moments, again and again on the same run folder, then left
to finish: the result equals an uninterrupted run byte for byte (samples.jsonl, metrics.json), every item is there
exactly once, and no kill ever leaves a half-written file behind.

Each kill point is drawn from a seeded numpy Generator: either "as soon as k samples are on disk" (k between the
samples already there and the end, so the kill lands mid-batch, between two items, or in the final metrics and
manifest writes) or "t seconds after the start" (model loading, the manifest's first write).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.kill_helpers import (
    assert_nothing_half_written,
    complete_lines,
    fork_server,
    hidden_leftovers,
    run_and_kill,
    whole_lines,
)

SCENARIOS = {
    # Greedy decoding in batches of 4 over two tasks: kills land inside a batch, and between tasks.
    "greedy-batched": (["--suite", "pope_adversarial,chair_probe", "--batch-size", "4", "--limit", "20"], 6),
    # Sampling with two decoding seeds (one run folder per seed).
    "sampled-two-seeds": (["--suite", "mme", "--sample", "--seeds", "0,1", "--batch-size", "1", "--limit", "16"], 5),
    # Sampling in batches of 4: a resume must regenerate a partly done batch whole, with the batch's own seed.
    "sampled-batched": (["--suite", "pope_random", "--sample", "--seeds", "0,1", "--batch-size", "4", "--limit", "12"], 4),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("kill_world") / "world"
    generate_world(root, config=WorldConfig.quick(seed=0))
    return root


def _samples_files(out: Path) -> list[Path]:
    return sorted(out.rglob("samples.jsonl"))


def _lines_on_disk(out: Path) -> int:
    return sum(complete_lines(p) for p in _samples_files(out))


def _without_timestamps(manifest_path: Path) -> dict:
    manifest = json.loads(manifest_path.read_text())
    return {k: v for k, v in manifest.items() if k not in ("created", "finished")}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_eval_killed_repeatedly_equals_an_uninterrupted_run(world, tmp_path, scenario):
    extra, planned_kills = SCENARIOS[scenario]
    args = ["eval", "--model", "tiny", "--world", world, "--threads", "1", *extra]
    server = fork_server()
    full = tmp_path / "full"
    assert server.run([*args, "--out", full], tmp_path / "full.log") == 0
    reference = {p.relative_to(full): p for p in _samples_files(full)}
    total = sum(complete_lines(p) for p in reference.values())
    assert len(reference) >= 2 and total >= 3 * planned_kills

    rng = np.random.default_rng(20240514 + len(scenario))
    out = tmp_path / "killed"
    kills, torn_seen = 0, 0
    for attempt in range(planned_kills):
        done = _lines_on_disk(out)
        left = planned_kills - attempt
        if done <= total // 2 and rng.random() < 0.25:
            # A moment measured from the start (loading, the first manifest write): with half the items or more
            # still to do, no run is that short.
            trigger, delay = (lambda: True), float(rng.uniform(0.0, 0.3))
        else:
            # As soon as the k-th sample is on disk, k spread so that later kills still have room. Only the last
            # kill may wait for the very last sample (a kill in the final metrics and manifest writes, a race the
            # run may win by finishing first).
            hi = min(total, done + max(1, 2 * (total - done) // (left + 1)))
            target = int(rng.integers(done + 1, hi + 1)) if hi > done else total
            trigger, delay = (lambda t=target: _lines_on_disk(out) >= t), 0.0
        killed = run_and_kill(server, [*args, "--out", out], tmp_path / f"kill{attempt}.log", trigger, delay)
        if not killed:
            assert left == 1, f"the run finished before kill {attempt + 1} of {planned_kills}"
            break
        kills += 1
        torn_seen += len(assert_nothing_half_written(out))
        for path in _samples_files(out):  # no item twice, even mid-way
            ids = [json.loads(line)["item_id"] for line in whole_lines(path)]
            assert len(ids) == len(set(ids)), f"{path}: an item was written twice"
    assert server.run([*args, "--out", out], tmp_path / "resume.log") == 0

    assert {p.relative_to(out) for p in _samples_files(out)} == set(reference)
    for rel, ref in reference.items():
        got, want = out / rel, ref
        assert got.read_bytes() == want.read_bytes(), f"{rel} differs from the uninterrupted run"
        ids = [json.loads(line)["item_id"] for line in whole_lines(got)]
        assert len(ids) == len(set(ids)) == complete_lines(want)
        assert (got.parent / "metrics.json").read_bytes() == (want.parent / "metrics.json").read_bytes()
        assert _without_timestamps(got.parent / "manifest.json") == _without_timestamps(want.parent / "manifest.json")
    assert_nothing_half_written(out)
    assert hidden_leftovers(out) == []  # the temporaries of killed atomic writes were cleaned up by the resumes
    print(f"{scenario}: {kills} kills, {torn_seen} torn lines seen and dropped")


@pytest.mark.slow
@pytest.mark.parametrize("kept", [2, 6])
def test_sampled_batch_killed_mid_way_resumes_to_the_uninterrupted_run(world, tmp_path, kept):
    """Sampling in batches of 4, killed after `kept` samples (inside batch 0 or 1): the resume regenerates that
    batch whole with its own seed and appends only its missing items, so every output is the uninterrupted run's."""
    args = ["eval", "--model", "tiny", "--world", world, "--threads", "1", "--suite", "pope_random", "--sample",
            "--batch-size", "4", "--limit", "12"]
    server = fork_server()
    full = tmp_path / "full"
    assert server.run([*args, "--out", full], tmp_path / "full.log") == 0
    out = tmp_path / "killed"
    run = out / "tiny" / "pope_random" / "seed0"
    samples = run / "samples.jsonl"
    assert run_and_kill(server, [*args, "--out", out], tmp_path / "kill.log", lambda: complete_lines(samples) >= kept)
    # A batch's samples are appended one by one right after it is generated; the poll sees the kept-th line a few
    # appends late at worst, so the file is cut back to its first `kept` lines: what a kill just after them leaves.
    assert_nothing_half_written(out)
    lines = whole_lines(samples)
    assert len(lines) >= kept and not (run / "metrics.json").exists()
    samples.write_bytes(b"".join(line + b"\n" for line in lines[:kept]))
    assert server.run([*args, "--out", out], tmp_path / "resume.log") == 0

    ref = full / "tiny" / "pope_random" / "seed0"
    for name in ("samples.jsonl", "metrics.json"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    assert _without_timestamps(run / "manifest.json") == _without_timestamps(ref / "manifest.json")
    assert hidden_leftovers(out) == []
