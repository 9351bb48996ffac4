"""`csr-bench demo`: the whole mission on the embedded world, on two CPU cores, in minutes.

1. generate the world (official file formats);
2. evaluate the shipped tiny LLaVA on CHAIR (probe split), POPE (three splits), MME, MMBench, GQA and VizWiz
   (and LLaVA-W / MM-Vet graded by the world's judge);
3. improve it with CSR (several iterations, one checkpoint per iteration, one or more training seeds) and
   evaluate every checkpoint;
4. compare the base model with the final checkpoint and write the leaderboard with intervals.

The demo is a sweep (csr_bench.runner.sweep) built in code: every step is a unit that a rerun skips when it is
finished, so a killed demo, rerun, continues where it stopped, and a finished one does no work again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from csr_bench.core.files import atomic_write_json
from csr_bench.runner.sweep import GenerationEntry, ImproverEntry, ModelEntry, Sweep, TaskEntry, WorldEntry

DEMO_TASKS = ("chair_probe", "pope_random", "pope_popular", "pope_adversarial", "mme", "mmbench", "gqa", "vizwiz")
# Judge-style tasks, graded by the world's judge.
JUDGED_TASKS = ("llava_wild", "mmvet")
BASE_LABEL = "tiny"
CHAIN_LABEL = f"{BASE_LABEL}+csr"
TITLE = "csr-bench demo: tiny LLaVA before and after CSR"


@dataclass(frozen=True)
class DemoPlan:
    quick: bool
    iterations: int = 3
    training_seeds: tuple[int, ...] = (0, 1)

    @staticmethod
    def make(quick: bool) -> "DemoPlan":
        return DemoPlan(quick=quick, iterations=3, training_seeds=(0,) if quick else (0, 1))


def demo_sweep(out: str | os.PathLike, *, quick: bool = False) -> Sweep:
    """The demo as a sweep: the tiny model and its CSR checkpoints on every world task, decoding seed 0."""
    plan = DemoPlan.make(quick)
    out = Path(out).resolve()
    return Sweep(
        out=out,
        models=(ModelEntry(BASE_LABEL, "tiny"),),
        tasks=tuple(TaskEntry(name) for name in DEMO_TASKS + JUDGED_TASKS),
        seeds=(0,),
        # The run of checkpoint k of training seed s is runs/tiny+csr-it{k}/<task>/seed{s}: the leaderboard groups
        # the seeds of one iteration as one model, so its intervals cover both items and training seeds.
        improvers=(ImproverEntry(model=BASE_LABEL, improver="csr", config="tiny", iterations=plan.iterations,
                                 training_seeds=plan.training_seeds, name=CHAIN_LABEL),),
        world=WorldEntry(dir=str(out / "world"), quick=quick, seed=0),
        generation=GenerationEntry(batch_size=16),
        # One thread: the tiny model gains little from two, and the cores are often shared (CI, tests).
        threads=1,
        baseline=BASE_LABEL,
        title=TITLE,
        source="demo",
    )


def run_demo(out: str | os.PathLike, *, quick: bool = False, publish: str | os.PathLike | None = None,
             say: Callable[[str], None] = print) -> dict[str, Path]:
    from csr_bench.report.compare import compare_runs
    from csr_bench.runner.store import find_runs
    from csr_bench.runner.sweep import run_sweep

    started = time.perf_counter()
    sweep = demo_sweep(out, quick=quick)
    result = run_sweep(sweep, say=say)
    written: dict[str, Path] = {"leaderboard": result.leaderboard}
    if result.forest:
        written["forest"] = result.forest
    runs = sweep.runs_dir
    chain = sweep.improvers[0]
    final = chain.checkpoint_label(chain.iterations)
    rows = compare_runs(find_runs([runs / BASE_LABEL]), find_runs([runs / final]))
    atomic_write_json(sweep.out / "comparison.json", rows)
    written["comparison"] = sweep.out / "comparison.json"
    if publish is not None:
        from csr_bench.report.leaderboard import build_leaderboard, write_leaderboard

        publish = Path(publish)
        board = result.board  # built by the sweep, unless it was up to date
        if board is None:
            board = build_leaderboard(find_runs(result.run_dirs), baseline=BASE_LABEL, title=TITLE)
        write_leaderboard(board, publish, publish.with_name(publish.stem + "-forest.png"))
        written["published"] = publish
    say(f"demo done in {time.perf_counter() - started:.0f} s: " + ", ".join(str(p) for p in written.values()))
    return written
