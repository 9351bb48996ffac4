"""`csr-bench demo`: the whole mission on the embedded world, on two CPU cores, in minutes.

1. generate the world (official file formats);
2. evaluate the shipped tiny LLaVA on CHAIR (probe split), POPE (three splits), MME, MMBench, GQA and VizWiz
   (and LLaVA-W / MM-Vet graded by the world's judge);
3. improve it with CSR (several iterations, one checkpoint per iteration, one or more training seeds) and
   evaluate every checkpoint;
4. compare the base model with the final checkpoint and write the leaderboard with intervals.

Every step writes resumable run folders: a killed demo, rerun, continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from csr_bench.core.files import atomic_write_json

DEMO_TASKS = ("chair_probe", "pope_random", "pope_popular", "pope_adversarial", "mme", "mmbench", "gqa", "vizwiz")
# Judge-style tasks, included when the world has them (graded by the world's judge).
JUDGED_TASKS = ("llava_wild", "mmvet")
BASE_LABEL = "tiny"


@dataclass(frozen=True)
class DemoPlan:
    quick: bool
    iterations: int = 3
    training_seeds: tuple[int, ...] = (0, 1)

    @staticmethod
    def make(quick: bool) -> "DemoPlan":
        return DemoPlan(quick=quick, iterations=3, training_seeds=(0,) if quick else (0, 1))


def run_demo(out: str | os.PathLike, *, quick: bool = False, publish: str | os.PathLike | None = None,
             say: Callable[[str], None] = print) -> dict[str, Path]:
    from csr_bench.report.compare import compare_runs
    from csr_bench.report.leaderboard import build_leaderboard, write_leaderboard
    from csr_bench.runner.evaluate import evaluate
    from csr_bench.runner.store import find_runs
    from csr_bench.runner.tasks import world_tasks
    from csr_bench.world import WorldConfig, generate_world

    import torch

    # One thread: the tiny model gains little from two, and the cores are often shared (CI, tests).
    torch.set_num_threads(1)
    plan = DemoPlan.make(quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    world = out / "world"
    config = WorldConfig.quick(seed=0) if quick else WorldConfig(seed=0)
    if not _world_matches(world, config):
        say(f"[1/4] generating the world into {world}")
        generate_world(world, config=config)
    else:
        say(f"[1/4] world already in {world}")
    known = world_tasks(world)
    tasks = [known[name] for name in DEMO_TASKS] + [known[name] for name in JUDGED_TASKS if name in known]
    runs = out / "runs"

    say(f"[2/4] evaluating the shipped tiny model on {', '.join(t.name for t in tasks)}")
    evaluate("tiny", tasks, out=runs, name=BASE_LABEL, batch_size=16)

    final_label = _improve_and_evaluate(world, tasks, runs, out, plan, say)

    say("[4/4] comparing and writing the leaderboard")
    written: dict[str, Path] = {}
    all_runs = find_runs([runs])
    board = build_leaderboard(all_runs, baseline=BASE_LABEL, title="csr-bench demo: tiny LLaVA before and after CSR")
    md, png = write_leaderboard(board, out / "leaderboard.md", out / "forest.png")
    written["leaderboard"] = md
    if png:
        written["forest"] = png
    if final_label is not None:
        rows = compare_runs(find_runs([runs / BASE_LABEL]), find_runs([runs / final_label]))
    else:
        rows = []
    atomic_write_json(out / "comparison.json", rows)
    written["comparison"] = out / "comparison.json"
    if publish is not None:
        publish = Path(publish)
        plot = publish.with_name(publish.stem + "-forest.png")
        write_leaderboard(board, publish, plot)
        written["published"] = publish
    say(f"done in {time.perf_counter() - started:.0f} s: " + ", ".join(str(p) for p in written.values()))
    return written


def _world_matches(world: Path, config) -> bool:
    info = world / "world.json"
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("config") == config.to_json()
    except (json.JSONDecodeError, OSError):
        return False


def improved_label(iteration: int) -> str:
    return f"{BASE_LABEL}+csr-it{iteration}"


def _improve_and_evaluate(world, tasks, runs, out, plan, say) -> str | None:
    """CSR for `plan.iterations` iterations per training seed; every checkpoint evaluated on every task.

    The run of checkpoint k of training seed s is runs/tiny+csr-it{k}/<task>/seed{s}: the leaderboard groups
    the seeds of one iteration as one model, so its intervals cover both items and training seeds.
    """
    from csr_bench.improvers.base import run_improve
    from csr_bench.runner.evaluate import evaluate

    for seed in plan.training_seeds:
        say(f"[3/4] CSR, training seed {seed}: {plan.iterations} iterations (search, DPO + LoRA, merge)")
        records = run_improve(
            "tiny", "csr", out=out / "improve" / f"seed{seed}", config="tiny", prompts=world,
            iterations=plan.iterations, seed=seed,
        )
        for r in records:
            say(f"      evaluating iteration {r.iteration} (training seed {seed})")
            evaluate(r.path, tasks, out=runs, name=improved_label(r.iteration), seeds=(seed,), batch_size=16)
    return improved_label(plan.iterations)
