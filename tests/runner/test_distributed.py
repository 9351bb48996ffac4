"""Sharded evaluation: ranks started by accelerate launch / torchrun write the run folder one process writes."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from csr_bench.core.types import Sample
from csr_bench.errors import UserError
from csr_bench.runner.distributed import LaunchEnv, cut_batches, launch_env, shard_batches
from csr_bench.runner.evaluate import batch_seed, run_items
from csr_bench.runner.store import consolidate_samples, shard_file_name
from tests.toy_suite import ToySuite, toy_manifest

RUN_FILES = {"manifest.json", "samples.jsonl", "metrics.json"}
# Timestamps: when a run started and ended. They are the only manifest fields that may differ between two
# evaluations of the same thing (one process or several); `world_size` is deliberately not recorded.
TIMESTAMPS = ("created", "finished")


def answer(items):
    # deterministic "model": right on even ids
    return [it.target if int(it.id) % 2 == 0 else "x" for it in items]


def sample_answer(batch):
    # a stand-in for a sampling model: each output depends on the batch's seed and the item's place in the batch
    rng = np.random.default_rng(batch.seed)
    return [str(d) for d in rng.integers(0, 3, len(batch))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ the split


@pytest.mark.parametrize("n,batch,world", [(0, 4, 2), (1, 4, 2), (10, 3, 2), (24, 4, 2), (23, 4, 3), (7, 8, 4), (5, 1, 5)])
def test_shards_are_the_single_process_batches_dealt_round_robin(n, batch, world):
    items = list(range(n))
    single = [items[i : i + batch] for i in range(0, n, batch)]
    shards = [shard_batches(cut_batches(items, batch), rank, world) for rank in range(world)]
    for rank, mine in enumerate(shards):
        assert mine == single[rank::world]
    dealt = sorted((b for mine in shards for b in mine), key=lambda b: b[0])
    assert dealt == single  # every batch exactly once, none split or merged
    with pytest.raises(ValueError):
        shard_batches(cut_batches(items, batch), world, world)


def test_launch_env_reads_what_the_launchers_set():
    assert launch_env({}) == LaunchEnv(rank=0, world_size=1, local_rank=0)
    env = launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.is_main, env.sharded) == (3, 4, 1, False, True)
    assert launch_env({"RANK": "0", "WORLD_SIZE": "2"}).local_rank == 0
    with pytest.raises(UserError, match="WORLD_SIZE='two'"):
        launch_env({"WORLD_SIZE": "two"})
    with pytest.raises(UserError, match="RANK=2, WORLD_SIZE=2"):
        launch_env({"RANK": "2", "WORLD_SIZE": "2"})


# --------------------------------------------------------------------------- shard files in the store


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_leftover_shards_fold_into_samples_in_item_order(tmp_path):
    suite = ToySuite(n=10)
    full = tmp_path / "full"
    run_items(suite, suite.items(), answer, full, toy_manifest(), batch_size=3)
    lines = _lines(full / "samples.jsonl")

    part = tmp_path / "part"  # a killed 2-rank run: manifest, an earlier samples.jsonl, two shards, a torn line
    part.mkdir()
    (part / "manifest.json").write_text((full / "manifest.json").read_text())
    (part / "samples.jsonl").write_text(lines[0] + lines[1])
    (part / shard_file_name(0, 2)).write_text(lines[6] + lines[2])
    (part / shard_file_name(1, 2)).write_text(lines[4] + lines[3][:7])
    order = {it.id: n for n, it in enumerate(suite.items())}
    done = consolidate_samples(part, order)
    assert list(done) == ["0", "1", "2", "4", "6"]
    assert _lines(part / "samples.jsonl") == [lines[i] for i in (0, 1, 2, 4, 6)]
    assert {p.name for p in part.iterdir()} == {"manifest.json", "samples.jsonl"}

    (part / shard_file_name(1, 3)).write_text(lines[9])  # a later rerun with another world size, also killed
    seen = []

    def record(batch):
        seen.extend(it.id for it in batch)
        return answer(batch)

    run_items(suite, suite.items(), record, part, toy_manifest(), batch_size=3)  # one process finishes it
    # Batches [0,1,2] and [9] are done and skipped; the partly done [3,4,5] and [6,7,8] are generated again whole
    # (their composition fixes the outputs), and only their missing items are appended.
    assert seen == ["3", "4", "5", "6", "7", "8"]
    for name in ("samples.jsonl", "metrics.json"):
        assert (part / name).read_bytes() == (full / name).read_bytes()
    assert {p.name for p in part.iterdir()} == RUN_FILES


# ---------------------------------------------------- run_items_sharded on two gloo ranks (toy suite)


def _toy_rank(rank: int, world: int, port: int, root: str) -> None:
    """One rank: a fresh run, a resumed run and a refused run, recording what it generated."""
    import torch

    from csr_bench.runner.distributed import ProcessGroup
    from csr_bench.runner.evaluate import run_items_sharded

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    suite = ToySuite(n=10)
    record: dict = {"batches": {}, "error": None}
    with ProcessGroup(launch_env()) as group:
        assert group.backend == "gloo"
        for name, model in (("fresh", answer), ("resume", answer), ("sampled", sample_answer)):
            produced = record["batches"].setdefault(name, [])
            record.setdefault("seeds", {})[name] = seeds = []

            def produce(batch, produced=produced, seeds=seeds, model=model):
                produced.append([it.id for it in batch])
                seeds.append([batch.index, batch.seed])
                return model(batch)

            summary = run_items_sharded(suite, suite.items(), produce, Path(root) / name, toy_manifest(), group, batch_size=3)
            record.setdefault("accuracy", []).append(summary["metrics"]["accuracy"])
        try:
            run_items_sharded(suite, suite.items(), answer, Path(root) / "fresh", toy_manifest(seed=1), group, batch_size=3)
        except UserError as e:
            record["error"] = str(e)
    Path(root, f"rank{rank}.json").write_text(json.dumps(record))


@pytest.mark.slow  # spawns two processes (several seconds of imports)
def test_two_ranks_write_the_single_process_run_and_resume_per_shard(tmp_path):
    import torch.multiprocessing as mp

    suite = ToySuite(n=10)
    single = tmp_path / "single"
    run_items(suite, suite.items(), answer, single, toy_manifest(), batch_size=3)
    lines = _lines(single / "samples.jsonl")
    resume = tmp_path / "resume"  # killed earlier: items 0, 2, 4 and 8 done, item 5 torn
    resume.mkdir()
    (resume / "manifest.json").write_text((single / "manifest.json").read_text())
    (resume / "samples.jsonl").write_text(lines[0])
    (resume / shard_file_name(0, 2)).write_text(lines[2] + lines[8])
    (resume / shard_file_name(1, 2)).write_text(lines[4] + lines[5][:-3])
    # A sampled run killed earlier: item 1 of batch [0,1,2] done, batch [3,4,5] done, item 7 of [6,7,8] done.
    single_sampled = tmp_path / "single-sampled"
    run_items(suite, suite.items(), sample_answer, single_sampled, toy_manifest(), batch_size=3)
    sampled_lines = _lines(single_sampled / "samples.jsonl")
    sampled = tmp_path / "sampled"
    sampled.mkdir()
    (sampled / "manifest.json").write_text((single_sampled / "manifest.json").read_text())
    (sampled / "samples.jsonl").write_text(sampled_lines[1] + sampled_lines[7])
    (sampled / shard_file_name(1, 2)).write_text("".join(sampled_lines[3:6]))

    mp.start_processes(_toy_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # Fresh: batches [0,1,2] [3,4,5] [6,7,8] [9] of one process, dealt round-robin.
    assert ranks[0]["batches"]["fresh"] == [["0", "1", "2"], ["6", "7", "8"]]
    assert ranks[1]["batches"]["fresh"] == [["3", "4", "5"], ["9"]]
    # Resume (0, 2, 4, 8 done): the same batches, dealt by batch index; every one is partly done or to do.
    assert ranks[0]["batches"]["resume"] == [["0", "1", "2"], ["6", "7", "8"]]
    assert ranks[1]["batches"]["resume"] == [["3", "4", "5"], ["9"]]
    # Sampled resume: batch 1 is done and skipped; batches 0 and 2 are generated again whole, with their own seeds.
    assert ranks[0]["batches"]["sampled"] == [["0", "1", "2"], ["6", "7", "8"]]
    assert ranks[1]["batches"]["sampled"] == [["9"]]
    assert ranks[0]["seeds"]["sampled"] == [[0, batch_seed(0, 0)], [2, batch_seed(0, 2)]]
    assert ranks[1]["seeds"]["sampled"] == [[3, batch_seed(0, 3)]]
    for name, reference in (("fresh", single), ("resume", single), ("sampled", single_sampled)):
        for f in ("samples.jsonl", "metrics.json"):
            assert (tmp_path / name / f).read_bytes() == (reference / f).read_bytes(), (name, f)
        assert {p.name for p in (tmp_path / name).iterdir()} == RUN_FILES
    sampled_accuracy = json.loads((single_sampled / "metrics.json").read_text())["metrics"]["accuracy"]
    assert ranks[0]["accuracy"] == ranks[1]["accuracy"] == [0.5, 0.5, sampled_accuracy]
    # A different run in the same folder is refused on every rank with the same one-line error.
    assert ranks[0]["error"] == ranks[1]["error"] and "different run (differs in seed)" in ranks[0]["error"]


# ------------------------------------------------ the CLI: one process vs accelerate launch / torchrun

EVAL_ARGS = ["--model", "tiny", "--suite", "pope_random,chair_probe", "--limit", "24", "--batch-size", "4", "--threads", "1"]
TASKS = ("pope_random", "chair_probe")


def _env(tmp: Path) -> dict:
    # HF_HOME in a fresh folder: no accelerate config file is read (flags decide everything), nothing prompts.
    return {**os.environ, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def _timed(cmd: list, tmp: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=_env(tmp), timeout=600)
    return proc, time.perf_counter() - t0


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def accelerate_cmd(n: int) -> list:
    # --multi_gpu is accelerate's torchrun-based multi-process launcher; on a CPU-only machine the ranks use
    # gloo. (accelerate's `--cpu --num_processes N` starts one process, or needs mpirun.)
    return [_bin("accelerate"), "launch", "--multi_gpu", "--num_processes", n, "--num_machines", 1, "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", free_port(), "-m", "csr_bench", "eval"]


def torchrun_cmd(n: int) -> list:
    return [_bin("torchrun"), "--nproc_per_node", n, "--master_port", free_port(), "-m", "csr_bench", "eval"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("w") / "world"
    generate_world(root, config=WorldConfig.quick(seed=0))
    return root


@pytest.fixture(scope="module")
def single_run(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    proc, seconds = _timed([sys.executable, "-m", "csr_bench", "eval", *EVAL_ARGS, "--world", world, "--out", tmp / "out"], tmp)
    assert proc.returncode == 0, proc.stderr
    print(f"\n1 process: {seconds:.1f} s")
    return tmp / "out" / "tiny"


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def assert_same_run(a: Path, b: Path, *, same_created: bool = False) -> None:
    assert {p.name for p in b.iterdir()} == RUN_FILES  # no shard or temporary file left
    for name in ("samples.jsonl", "metrics.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = _manifest(a), _manifest(b)
    assert list(ma) == list(mb)
    assert mb["finished"] is not None
    differ = {k for k in ma if ma[k] != mb[k]}
    assert differ <= set(TIMESTAMPS if not same_created else ("finished",)), differ


@pytest.mark.slow
def test_accelerate_launch_two_processes_equals_one(world, single_run, tmp_path):
    out = tmp_path / "out"
    proc, seconds = _timed([*accelerate_cmd(2), *EVAL_ARGS, "--world", world, "--out", out], tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(f"\naccelerate launch, 2 processes: {seconds:.1f} s")
    assert proc.stdout.count("· seed 0") == len(TASKS)  # one progress bar per run: rank 0 only
    for task in TASKS:
        assert_same_run(single_run / task / "seed0", out / "tiny" / task / "seed0")


def _sentinel(line: str) -> str:
    """The same sample with another output: if it survives, the item was not generated again."""
    d = json.loads(line)
    d["output"] = "SENTINEL"
    return Sample.from_dict(d).to_json() + "\n"


@pytest.mark.slow
def test_torchrun_resumes_a_killed_sharded_run(world, single_run, tmp_path):
    ref = single_run / "pope_random" / "seed0"
    lines = _lines(ref / "samples.jsonl")
    run = tmp_path / "out" / "tiny" / "pope_random" / "seed0"
    run.mkdir(parents=True)
    manifest = _manifest(ref)
    manifest["finished"] = None  # as a killed run leaves it
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    # Done earlier: items 0-3 merged, 8-9 in rank 0's shard, 12-13 in rank 1's; item 14 torn mid-write.
    (run / "samples.jsonl").write_text(lines[0] + _sentinel(lines[1]) + lines[2] + lines[3])
    (run / shard_file_name(0, 2)).write_text(lines[8] + lines[9])
    (run / shard_file_name(1, 2)).write_text(_sentinel(lines[12]) + lines[13] + lines[14][:25])

    proc, seconds = _timed([*torchrun_cmd(2), *EVAL_ARGS, "--world", world, "--out", tmp_path / "out"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(f"\ntorchrun, 2 processes, resume of 24 - 8 items: {seconds:.1f} s")
    expected = list(lines)
    expected[1], expected[12] = _sentinel(lines[1]), _sentinel(lines[12])
    assert _lines(run / "samples.jsonl") == expected  # the rest regenerated identically, in item order
    assert (run / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()  # stats were kept as logged
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert _manifest(run)["created"] == manifest["created"]
    assert_same_run(single_run / "chair_probe" / "seed0", tmp_path / "out" / "tiny" / "chair_probe" / "seed0")


@pytest.mark.slow
def test_bad_input_fails_on_every_rank_without_hanging(world, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(world, broken)
    first = json.loads((broken / "pope" / "coco_pope_random.json").read_text().splitlines()[0])
    (broken / "images" / "val2014" / first["image"]).unlink()
    out = tmp_path / "out"
    proc, seconds = _timed([*torchrun_cmd(2), *EVAL_ARGS, "--world", broken, "--out", out], tmp_path)
    assert proc.returncode != 0 and seconds < 300
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all(first["image"] in e for e in errors), proc.stderr  # one line per rank
    # The first rank to exit exits 2 (torchrun then stops the other, if still running, and itself exits 1).
    assert "exitcode  : 2" in proc.stderr
    frames = [line for line in proc.stderr.splitlines() if line.strip().startswith("File ")]
    assert not any("csr_bench" in f for f in frames), proc.stderr  # no traceback from our ranks (torchrun's own is there)
    assert not out.exists()
