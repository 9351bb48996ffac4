"""Sweeps: a small sweep on the quick world runs end to end and a rerun does no work; bad sweep files are one-line
errors; the shipped sweep files (benchmarks/sweeps/world.toml, benchmarks/csr_paper.toml) parse and plan."""

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from csr_bench.errors import UserError
from csr_bench.runner.sweep import DONE, RESUME, TODO, WAITS, describe_plan, load_sweep, plan_sweep, run_sweep

REPO = Path(__file__).resolve().parents[2]
CSR_TINY = REPO / "csr_bench" / "improvers" / "configs" / "csr-tiny.toml"

SMALL_SWEEP = """
out = "out"
seeds = [0, 1]
threads = 1
baseline = "tiny"
title = "test sweep"

[world]
dir = "world"
quick = true

[generation]
batch_size = 8
limit = 6

[[models]]
name = "tiny"
spec = "tiny"

[[improvers]]
model = "tiny"
config = "csr-small.toml"
iterations = 1
training_seeds = [0]

[[tasks]]
name = "pope_random"

[[tasks]]
name = "chair_probe"
"""


def cli(*args):
    return subprocess.run([sys.executable, "-m", "csr_bench", *map(str, args)], capture_output=True, text=True)


def mtimes(*folders):
    return {p: p.stat().st_mtime_ns for f in folders for p in Path(f).rglob("*") if p.is_file()}


def forbid_work(monkeypatch):
    """Loading a model, evaluating, improving or generating the world fails the test."""
    import csr_bench.improvers.base
    import csr_bench.models
    import csr_bench.runner.evaluate
    import csr_bench.world

    def boom(*args, **kwargs):
        raise AssertionError("the sweep did work although everything was up to date")

    monkeypatch.setattr(csr_bench.models, "load_adapter", boom)
    monkeypatch.setattr(csr_bench.runner.evaluate, "evaluate", boom)
    monkeypatch.setattr(csr_bench.improvers.base, "improve", boom)
    monkeypatch.setattr(csr_bench.world, "generate_world", boom)


def outputs(run_dir):
    return [json.loads(line)["output"] for line in (Path(run_dir) / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_small_sweep_runs_then_a_rerun_does_no_work(tmp_path, monkeypatch):
    from csr_bench.runner.evaluate import evaluate
    from csr_bench.runner.store import load_run
    from csr_bench.runner.tasks import world_tasks

    small = CSR_TINY.read_text().replace("max_prompts = 1000", "max_prompts = 8")  # one CSR iteration in seconds
    assert "max_prompts = 8" in small
    (tmp_path / "csr-small.toml").write_text(small)
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(SMALL_SWEEP)
    out, world = tmp_path / "out", tmp_path / "world"

    said = []
    result = run_sweep(sweep_file, say=said.append, progress=False)
    assert result.worked and said[0].startswith(f"sweep {sweep_file}: to do: the world, 6 runs, 1 checkpoint")
    assert (world / "world.json").is_file()
    expected_runs = {out / "runs" / label / task / f"seed{seed}"
                     for label, seeds in (("tiny", (0, 1)), ("tiny+csr-it1", (0,)))
                     for task in ("pope_random", "chair_probe") for seed in seeds}
    assert set(result.run_dirs) == expected_runs
    for run_dir in expected_runs:
        run = load_run(run_dir)
        assert run.metrics is not None and run.manifest.finished and run.manifest.n_items == 6
    lineage = json.loads((out / "improve" / "tiny+csr" / "seed0" / "lineage.json").read_text())
    assert [r["iteration"] for r in lineage["iterations"]] == [1] and lineage["base_model"] == "tiny"
    checkpoint = lineage["iterations"][0]["path"]
    assert load_run(out / "runs" / "tiny+csr-it1" / "pope_random" / "seed0").manifest.model["spec"] == checkpoint
    board = (out / "leaderboard.md").read_text()
    assert board.startswith("# test sweep")
    assert "## pope_random" in board and "## chair_probe" in board
    assert "| tiny " in board and "| tiny+csr-it1" in board and "Δ against tiny" in board
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"

    # The sweep's run is the run `evaluate` makes by itself: same identity, same outputs, same metrics.
    direct = evaluate("tiny", [world_tasks(world)["chair_probe"]], out=tmp_path / "direct", seeds=(1,), name="tiny",
                      batch_size=8, limit=6, progress=False)[0]
    ours = out / "runs" / "tiny" / "chair_probe" / "seed1"
    assert load_run(ours).manifest.identity() == load_run(direct).manifest.identity()
    assert outputs(ours) == outputs(direct)
    assert json.loads((ours / "metrics.json").read_text())["metrics"] == json.loads((direct / "metrics.json").read_text())["metrics"]

    # A rerun loads no model, evaluates, improves nothing, writes nothing and says so in one line.
    before = mtimes(out, world)
    with monkeypatch.context() as m:
        forbid_work(m)
        said = []
        again = run_sweep(sweep_file, say=said.append, progress=False)
    assert said == ["everything is up to date: 6 runs, 1 checkpoint"] and not again.worked
    proc = cli("sweep", sweep_file)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["everything is up to date: 6 runs, 1 checkpoint"]
    dry = cli("sweep", sweep_file, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    statuses = [line.split()[0] for line in dry.stdout.splitlines()[1:-1]]
    assert statuses == [DONE] * len(statuses) and len(statuses) == 1 + 6 + 1 + 1  # world, runs, iteration, board
    assert mtimes(out, world) == before

    # A run without metrics (killed at the end) is resumed; nothing else is touched but the leaderboard.
    victim = out / "runs" / "tiny" / "chair_probe" / "seed1"
    (victim / "metrics.json").unlink()
    plan = plan_sweep(load_sweep(sweep_file))
    assert [(r.label, r.task, r.seed) for r in plan.runs if r.status != DONE] == [("tiny", "chair_probe", 1)]
    assert plan.runs_todo[0].status == RESUME
    before = mtimes(out, world)
    run_sweep(sweep_file, say=lambda _: None, progress=False)
    after = mtimes(out, world)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {victim / "metrics.json", victim / "manifest.json", out / "leaderboard.md", out / "forest.png"}

    # Editing the sweep file (a comment) rewrites the leaderboard only, with no model loaded.
    sweep_file.write_text(SMALL_SWEEP + "\n# edited\n")
    before = mtimes(out, world)
    with monkeypatch.context() as m:
        forbid_work(m)
        said = []
        run_sweep(sweep_file, say=said.append, progress=False)
    assert "the leaderboard" in said[0] and "0 runs" in said[0]
    after = mtimes(out, world)
    assert {p for p in after if before.get(p) != after[p]} == {out / "leaderboard.md", out / "forest.png"}

    # Other settings for the same folders are refused before any work, naming the run folder.
    sweep_file.write_text(SMALL_SWEEP.replace("limit = 6", "limit = 5"))
    with pytest.raises(UserError, match=r"runs/tiny/pope_random/seed0: holds a run with another config"):
        run_sweep(sweep_file, say=lambda _: None, progress=False)
    assert mtimes(out, world) == after


def test_dry_run_writes_nothing_and_plans_the_world_first(tmp_path):
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(SMALL_SWEEP.replace('spec = "tiny"', 'spec = "vllm:tiny"'))
    (tmp_path / "csr-small.toml").write_text(CSR_TINY.read_text())
    plan = plan_sweep(load_sweep(sweep_file), dry_run=True)
    assert plan.world_todo and plan.leaderboard_todo and not plan.up_to_date
    assert [r.status for r in plan.runs] == [TODO] * 4 + [WAITS] * 2
    assert plan.improves[0].base_spec == "hf:tiny"  # a vllm model is trained through transformers
    lines = describe_plan(plan)
    assert lines[-1] == "to do: the world, 6 runs, 1 checkpoint, the leaderboard (done: 0 runs, 0 checkpoints)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csr-small.toml", "sweep.toml"]
    proc = cli("sweep", sweep_file, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csr-small.toml", "sweep.toml"]


def test_shipped_world_sweep_parses_and_plans(tmp_path):
    sweep = load_sweep(REPO / "benchmarks" / "sweeps" / "world.toml")
    assert sweep.out == (REPO / "results" / "sweeps" / "world").resolve()
    sweep = dataclasses.replace(sweep, out=tmp_path / "out")
    plan = plan_sweep(sweep, dry_run=True)
    labels = list(dict.fromkeys(r.label for r in plan.runs))
    assert labels == ["tiny", "tiny+csr-it1", "tiny+csr-it2"]
    assert len(plan.runs) == 20 and plan.n_checkpoints == 4
    assert {t.name for t in sweep.tasks} == {"chair_probe", "pope_adversarial", "mme", "gqa"}


def test_csr_paper_sweep_parses_and_plans_the_ten_suites(tmp_path):
    from csr_bench.core.registry import suites
    from csr_bench.improvers.base import get_improver
    from csr_bench.report.paper_table import RUN_SOURCES

    sweep = load_sweep(REPO / "benchmarks" / "csr_paper.toml")
    assert [m.spec for m in sweep.models] == ["hf:llava-hf/llava-1.5-7b-hf"]
    # The twelve tasks feed every column of the paper's table (POPE: three splits, averaged).
    task_suites = [t.suite for t in sweep.tasks]
    assert sorted(set(task_suites)) == sorted({suite for suite, _, _ in RUN_SOURCES.values()})
    assert len(sweep.tasks) == 12 and task_suites.count("pope") == 3
    data = (REPO / "data").resolve()
    for t in sweep.tasks:  # every data path is a placeholder under data/ at the repository root
        assert Path(t.data).is_relative_to(data), t
        accepted = inspect.signature(suites.get(t.suite).__init__).parameters
        assert all(key in accepted for key in t.options), (t.name, t.options)
    chain = sweep.improvers[0]
    assert chain.iterations == 3 and get_improver("csr").load_config(chain.config).iterations == 3
    assert Path(chain.prompts).is_relative_to(data)

    plan = plan_sweep(dataclasses.replace(sweep, out=tmp_path / "out"), dry_run=True)
    assert len(plan.runs) == 48 and plan.n_checkpoints == 3
    assert [r.label for r in plan.runs[::12]] == ["llava-1.5-7b", "llava-1.5-7b+csr-it1", "llava-1.5-7b+csr-it2",
                                                   "llava-1.5-7b+csr-it3"]
    assert [r.status for r in plan.runs] == [TODO] * 12 + [WAITS] * 36
    assert describe_plan(plan)[-1] == "to do: 48 runs, 3 checkpoints, the leaderboard (done: 0 runs, 0 checkpoints)"


BAD_SWEEPS = [
    ("out = 'o'\nbogus = 1\n", "unknown key 'bogus'"),
    ("out = 'o'\nseeds = '0'\n", "'seeds': expected a list of an integer"),
    ("out = 'o'\n[[models]]\nname = 'a'\n", "models[0]: missing key 'spec'"),
    ("out = 'o'\n[[models]]\nname = 'a'\nspec = 'tiny'\ncolour = 1\n", "unknown key 'models[0].colour'"),
    ("out = 'o'\ntasks = ['pope']\n", "'tasks' must be an array of tables"),
    ("out = 'o'\n[generation]\nbatch_size = 0\n[[models]]\nname = 'a'\nspec = 'tiny'\n[[tasks]]\nname = 't'\ndata = 'd'\n",
     "'generation.batch_size' = 0: expected at least 1"),
    ("[[models]]\nname = 'a'\nspec = 'tiny'\n", "missing key 'out'"),
    ("out = 'o'\n[[models]]\nname = 'a'\nspec = 'tiny'\n", "no [[tasks]]"),
    ("out = 'o'\n[[models]]\nname = 'a'\nspec = 'tiny'\n[[tasks]]\nname = 'pope'\n", "tasks[0] 'pope' has no 'data'"),
    ("out = 'o'\n[[models]]\nname = 'a/b'\nspec = 'tiny'\n[[tasks]]\nname = 't'\ndata = 'd'\n", "it names a folder"),
    ("out = 'o'\n[[models]]\nname = 'a'\nspec = 'tiny'\n[[models]]\nname = 'a'\nspec = 'x'\n[[tasks]]\nname = 't'\ndata = 'd'\n",
     "labels must differ"),
    ("out = 'o'\n[[models]]\nname = 'a'\nspec = 'tiny'\n[[improvers]]\nmodel = 'b'\n[[tasks]]\nname = 't'\ndata = 'd'\n",
     "improvers[0].model 'b' is not a [[models]] name"),
    ("out = 'o'\n[[models]]\nname = 'a'\nspec = 'tiny'\n[[improvers]]\nmodel = 'a'\nadapter = 'nope'\n[[tasks]]\nname = 't'\ndata = 'd'\n",
     "improvers[0].adapter 'nope'"),
    ("out = 'o'\nbaseline = 'zz'\n[[models]]\nname = 'a'\nspec = 'tiny'\n[[tasks]]\nname = 't'\ndata = 'd'\n",
     "baseline 'zz' is not a model"),
    ("out = 'o'\n[world]\nquick = 'yes'\n", "'world.quick': expected true or false"),
    ("out = [\n", "malformed TOML"),
]


@pytest.mark.parametrize("text,fragment", BAD_SWEEPS)
def test_bad_sweep_files_are_one_line_user_errors(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_sweep(path)
    message = str(e.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_bad_sweep_file_on_the_command_line_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("out = 'o'\n[[models]]\nname = 'a'\n")
    for proc, fragment in ((cli("sweep", path), "models[0]: missing key 'spec'"),
                           (cli("sweep", tmp_path / "missing.toml"), "sweep file not found")):
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
