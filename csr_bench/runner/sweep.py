"""Sweeps: models × tasks × seeds, and improver checkpoints, from one TOML file, run with one command.

`run_sweep(FILE)` plans every unit of work (the world, each improver iteration, each run, the leaderboard),
skips the finished ones, runs the rest through `improve` and `evaluate`, and writes the leaderboard. Rerun
after completion, it loads no model and prints one line: "everything is up to date: N runs, K checkpoints".

A sweep file (TOML; relative paths are relative to the file's folder; every key but `out`, [[models]] and
[[tasks]] may be left out):

    out = "../../results/sweeps/world"  # everything the sweep writes goes here
    seeds = [0, 1]                      # decoding seeds of the [[models]] runs
    threads = 1                         # torch CPU threads (0: torch's choice)
    baseline = "tiny"                   # leaderboard baseline (default: the first model)
    title = "tiny before and after CSR" # leaderboard title

    [world]                             # optional: the embedded world, generated when missing or different
    dir = ""                            # "": OUT/world
    quick = true                        # the small world
    seed = 0

    [generation]                        # as `csr-bench eval`; 0 keeps the suite's own length / all items
    batch_size = 16
    limit = 0
    max_new_tokens = 0
    do_sample = false
    temperature = 1.0
    num_beams = 1

    [[models]]                          # label in runs and leaderboards, and the spec as on the command line
    name = "tiny"
    spec = "tiny"

    [[improvers]]                       # one improver run per training seed, each iteration's checkpoint evaluated
    model = "tiny"                      # the [[models]] name to improve
    improver = "csr"
    config = "tiny"                     # a shipped config name or a TOML file ("" : the improver's default)
    prompts = ""                        # prompt file or world folder ("": the config's, else the sweep's world)
    iterations = 3                      # 0: the config's
    training_seeds = [0]
    name = ""                           # checkpoint labels are NAME-it<k> ("": "<model>+<improver>")
    adapter = "hf"                      # adapter that evaluates the checkpoints (hf or vllm)

    [[tasks]]                           # a world task by name ...
    name = "pope_random"
    [[tasks]]                           # ... or a suite on real data
    name = "pope_adversarial"
    suite = "pope"                      # default: the task's name
    data = "/data/pope/coco_pope_adversarial.json"
    image_root = "/data/coco/val2014"
    max_new_tokens = 0                  # 0: [generation] max_new_tokens
    options = { prompt_suffix = "..." } # other keyword arguments of the suite

Layout under `out`:

    world/                                   the world (unless [world] dir names another folder)
    runs/<label>/<task>/seed<k>/             one run folder per (model or checkpoint, task, seed)
    improve/<chain>/seed<s>/                 one improver run per training seed (lineage.json, iter<k>/)
    leaderboard.md, forest.png

Checkpoint k of training seed s is labelled `<chain>-it<k>` and evaluated with decoding seed s into
runs/<chain>-it<k>/<task>/seed<s>, so the leaderboard groups the training seeds of one iteration as one model
and its intervals cover items and training seeds (as `csr-bench demo` does).

Finished means: a run folder with metrics.json whose manifest matches the sweep (task, suite and its options,
data fingerprint, seed, generation settings, model spec; the weights' fingerprint is checked when a run is
reopened, not by the planner, which loads no model); an improver iteration recorded in lineage.json whose
checkpoint is on disk, under a lineage with the same improver, base model, config, seed and prompts; a
leaderboard newer than every run's metrics and than the sweep file. A folder holding a run with other
settings is refused, as `csr-bench eval` refuses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from csr_bench.errors import UserError

LEADERBOARD_FILE = "leaderboard.md"
FOREST_FILE = "forest.png"
# Suite options that name files or folders: relative values are taken relative to the sweep file.
PATH_OPTIONS = ("prompts", "image_root", "image_cache", "judge_cache", "cache_dir")
# Labels become folder names.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

DONE, TODO, RESUME, WAITS = "done", "to do", "resume", "waits"


# ------------------------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class ModelEntry:
    """A model to evaluate on every task and seed."""

    name: str  # label in run folders and the leaderboard
    spec: str  # model spec as on the command line: 'tiny', 'hf:PATH_OR_HUB_ID', 'vllm:...', a folder


@dataclass(frozen=True)
class ImproverEntry:
    """An improver run on one of the models, once per training seed; every iteration's checkpoint is evaluated."""

    model: str  # the [[models]] name of the base model
    improver: str = "csr"
    config: str = ""  # a shipped config name or a TOML file; "": the improver's default
    prompts: str = ""  # prompt file or world folder; "": the config's prompts, else the sweep's world
    iterations: int = 0  # 0: the config's
    training_seeds: tuple[int, ...] = (0,)
    name: str = ""  # checkpoint labels are NAME-it<k>; "": "<model>+<improver>"
    # The adapter that evaluates the checkpoints ("hf" or "vllm"); training always goes through transformers
    # (a base model given as "vllm:MODEL" is trained as "hf:MODEL").
    adapter: str = "hf"

    @property
    def label(self) -> str:
        return self.name or f"{self.model}+{self.improver}"

    def checkpoint_label(self, iteration: int) -> str:
        return f"{self.label}-it{iteration}"

    def checkpoint_spec(self, path: str | os.PathLike) -> str:
        """The model spec that evaluates the checkpoint in `path` with this chain's adapter."""
        return str(path) if self.adapter == "hf" else f"{self.adapter}:{path}"


@dataclass(frozen=True)
class TaskEntry:
    """A world task by name, or a suite on real data (as `csr-bench eval --suite S --data D`)."""

    name: str
    suite: str = ""  # "": the world task `name`, or the suite `name` with data
    data: str = ""  # the suite's main file or folder; "": a world task
    image_root: str = ""
    max_new_tokens: int = 0  # 0: [generation] max_new_tokens, else the suite's own
    options: dict[str, Any] = field(default_factory=dict)  # other keyword arguments of the suite


@dataclass(frozen=True)
class WorldEntry:
    """The embedded world the world tasks and default prompts come from; generated when missing."""

    dir: str = ""  # "": OUT/world
    quick: bool = False
    seed: int = 0


@dataclass(frozen=True)
class GenerationEntry:
    """Generation settings of every run (as the options of `csr-bench eval`)."""

    batch_size: int = 8
    limit: int = 0  # evaluate the first N items of each task; 0: all
    max_new_tokens: int = 0  # 0: the suite's own
    do_sample: bool = False
    temperature: float = 1.0
    num_beams: int = 1


@dataclass(frozen=True)
class _SweepFile:
    """The top level of a sweep file (tables and arrays of tables are checked by their own dataclasses)."""

    out: str = ""
    seeds: tuple[int, ...] = (0,)
    threads: int = 0
    baseline: str = ""
    title: str = ""
    generation: GenerationEntry = field(default_factory=GenerationEntry)
    world: Any = None
    models: Any = ()
    improvers: Any = ()
    tasks: Any = ()


@dataclass(frozen=True)
class Sweep:
    """A sweep with absolute paths; `load_sweep` reads one from a file, `csr_bench.demo` builds one in code."""

    out: Path
    models: tuple[ModelEntry, ...]
    tasks: tuple[TaskEntry, ...]
    seeds: tuple[int, ...] = (0,)
    improvers: tuple[ImproverEntry, ...] = ()
    world: WorldEntry | None = None
    generation: GenerationEntry = field(default_factory=GenerationEntry)
    threads: int = 0
    baseline: str = ""
    title: str = "Sweep"
    source: str = "sweep"  # the file, named in messages
    file: Path | None = None  # the sweep file: a leaderboard older than it is rewritten

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    @property
    def world_dir(self) -> Path | None:
        if self.world is None:
            return None
        return Path(self.world.dir) if self.world.dir else self.out / "world"


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep file; every problem is a one-line UserError naming the file and the key."""
    from csr_bench.improvers.base import config_from_dict, read_toml

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{p}: sweep file not found")
    source = str(path)
    top = config_from_dict(_SweepFile, read_toml(p), source=source)
    base = p.resolve().parent
    if not top.out:
        raise UserError(f"{source}: missing key 'out' (the folder the sweep writes into)")

    def entries(key: str, cls: type, required: Sequence[str]) -> list[Any]:
        raw = getattr(top, key)
        if isinstance(raw, dict) or not isinstance(raw, (list, tuple)) or not all(isinstance(x, dict) for x in raw):
            raise UserError(f"{source}: '{key}' must be an array of tables ([[{key}]]), got {raw!r}")
        out = []
        for i, table in enumerate(raw):
            where = f"{key}[{i}]"
            for k in required:
                if k not in table:
                    raise UserError(f"{source}: {where}: missing key '{k}'")
            table = dict(table)
            options = table.pop("options", {}) if cls is TaskEntry else None
            entry = config_from_dict(cls, table, source=source, prefix=f"{where}.")
            if cls is TaskEntry:
                if not isinstance(options, dict):
                    raise UserError(f"{source}: '{where}.options' must be a table of suite options, got {options!r}")
                entry = dataclasses.replace(entry, options=dict(options))
            out.append(entry)
        return out

    models = entries("models", ModelEntry, ("name", "spec"))
    chains = entries("improvers", ImproverEntry, ("model",))
    tasks = entries("tasks", TaskEntry, ("name",))
    world = None
    if top.world is not None:
        if not isinstance(top.world, dict):
            raise UserError(f"{source}: 'world' must be a table ([world]), got {top.world!r}")
        world = config_from_dict(WorldEntry, top.world, source=source, prefix="world.")
        if world.dir:
            world = dataclasses.replace(world, dir=str(_resolve(base, world.dir)))

    tasks = [_resolve_task_paths(t, base) for t in tasks]
    chains = [dataclasses.replace(
        c,
        config=str(_resolve(base, c.config)) if _names_a_file(c.config) else c.config,
        prompts=str(_resolve(base, c.prompts)) if c.prompts else "",
    ) for c in chains]
    sweep = Sweep(
        out=_resolve(base, top.out), models=tuple(models), tasks=tuple(tasks), seeds=top.seeds,
        improvers=tuple(chains), world=world, generation=top.generation, threads=top.threads,
        baseline=top.baseline, title=top.title or f"Sweep {p.stem}", source=source, file=p.resolve(),
    )
    check_sweep(sweep)
    return sweep


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _names_a_file(config: str) -> bool:
    # A shipped config is a bare name ("tiny", "paper"); a file has a folder or a .toml suffix.
    return bool(config) and (config.endswith(".toml") or "/" in config or os.sep in config)


def _resolve_task_paths(task: TaskEntry, base: Path) -> TaskEntry:
    options = {k: str(_resolve(base, v)) if k in PATH_OPTIONS and isinstance(v, str) and v else v
               for k, v in task.options.items()}
    return dataclasses.replace(
        task,
        data=str(_resolve(base, task.data)) if task.data else "",
        image_root=str(_resolve(base, task.image_root)) if task.image_root else "",
        options=options,
    )


def check_sweep(sweep: Sweep) -> None:
    """The checks that need no data: names, references between entries, ranges."""
    src = sweep.source
    if not sweep.models:
        raise UserError(f"{src}: no [[models]]; expected at least one (name, spec)")
    if not sweep.tasks:
        raise UserError(f"{src}: no [[tasks]]; expected at least one (name)")
    if not sweep.seeds:
        raise UserError(f"{src}: 'seeds' is empty; expected at least one seed")
    if len(set(sweep.seeds)) != len(sweep.seeds):
        raise UserError(f"{src}: 'seeds' {list(sweep.seeds)} repeats a seed")
    if sweep.threads < 0:
        raise UserError(f"{src}: 'threads' = {sweep.threads}: expected 0 (torch's choice) or more")
    gen = sweep.generation
    for key, value, low in (("batch_size", gen.batch_size, 1), ("num_beams", gen.num_beams, 1), ("limit", gen.limit, 0),
                            ("max_new_tokens", gen.max_new_tokens, 0)):
        if value < low:
            raise UserError(f"{src}: 'generation.{key}' = {value}: expected at least {low}")
    if gen.do_sample and not gen.temperature > 0:
        raise UserError(f"{src}: 'generation.temperature' = {gen.temperature}: expected more than 0 when sampling")
    labels: dict[str, str] = {}

    def claim(label: str, where: str) -> None:
        if not _LABEL.match(label):
            raise UserError(f"{src}: {where} '{label}': expected letters, digits and . _ + - (it names a folder)")
        if label in labels:
            raise UserError(f"{src}: {where} '{label}' is also {labels[label]}; labels must differ")
        labels[label] = where

    for i, m in enumerate(sweep.models):
        claim(m.name, f"models[{i}].name")
        if not m.spec.strip():
            raise UserError(f"{src}: models[{i}].spec is empty; expected 'tiny', 'hf:PATH_OR_HUB_ID' or a folder")
    names = {m.name for m in sweep.models}
    chain_labels: set[str] = set()
    for i, c in enumerate(sweep.improvers):
        if c.model not in names:
            raise UserError(f"{src}: improvers[{i}].model '{c.model}' is not a [[models]] name ({', '.join(sorted(names))})")
        from csr_bench.core.registry import adapters

        if c.adapter not in adapters.names():
            raise UserError(f"{src}: improvers[{i}].adapter '{c.adapter}': expected one of {', '.join(adapters.names())}")
        if c.iterations < 0:
            raise UserError(f"{src}: improvers[{i}].iterations = {c.iterations}: expected 0 (the config's) or more")
        if not c.training_seeds or len(set(c.training_seeds)) != len(c.training_seeds):
            raise UserError(f"{src}: improvers[{i}].training_seeds {list(c.training_seeds)}: expected distinct seeds")
        if c.label in chain_labels:
            raise UserError(f"{src}: improvers[{i}] is named '{c.label}' like another chain; set 'name'")
        chain_labels.add(c.label)
        claim(c.checkpoint_label(1), f"improvers[{i}] checkpoint")
    task_names: set[str] = set()
    for i, t in enumerate(sweep.tasks):
        if not _LABEL.match(t.name):
            raise UserError(f"{src}: tasks[{i}].name '{t.name}': expected letters, digits and . _ + - (it names a folder)")
        if t.name in task_names:
            raise UserError(f"{src}: tasks[{i}].name '{t.name}' appears twice")
        task_names.add(t.name)
        if t.max_new_tokens < 0:
            raise UserError(f"{src}: tasks[{i}].max_new_tokens = {t.max_new_tokens}: expected 0 or more")
        if not t.data and sweep.world is None:
            raise UserError(f"{src}: tasks[{i}] '{t.name}' has no 'data'; give the suite's data, or a [world] for world tasks")
    if sweep.baseline and sweep.baseline not in names and not any(
        sweep.baseline.startswith(c.label + "-it") for c in sweep.improvers
    ):
        raise UserError(f"{src}: baseline '{sweep.baseline}' is not a model or checkpoint label of the sweep")


# ------------------------------------------------------------------------------------------- the plan


@dataclass
class RunUnit:
    """One (label, task, seed) evaluation."""

    label: str
    task: str
    seed: int
    run_dir: Path
    status: str
    spec: str | None  # None until its checkpoint exists
    note: str = ""


@dataclass
class ImproveUnit:
    """One improver run (a chain and a training seed): its finished and missing iterations."""

    chain: ImproverEntry
    seed: int
    out_dir: Path
    iterations: int
    base_spec: str
    records: list[Any] = field(default_factory=list)  # CheckpointRecords of the finished iterations
    improver: Any = None
    config: Any = None
    prompts: list[Any] | None = None  # None when they cannot be read yet (the world is not generated)
    note: str = ""

    @property
    def done(self) -> int:
        return len(self.records)


@dataclass
class SweepPlan:
    sweep: Sweep
    world_todo: bool
    tasks: dict[str, Any]  # task name -> Task (None: a world task of a world not generated yet)
    suites: dict[str, Any]  # task name -> built suite (absent where its data cannot be read: dry runs)
    runs: list[RunUnit]
    improves: list[ImproveUnit]
    leaderboard_todo: bool

    @property
    def n_checkpoints(self) -> int:
        return sum(u.iterations for u in self.improves)

    @property
    def runs_todo(self) -> list[RunUnit]:
        return [r for r in self.runs if r.status != DONE]

    @property
    def up_to_date(self) -> bool:
        return (not self.world_todo and not self.runs_todo and not self.leaderboard_todo
                and all(u.done >= u.iterations for u in self.improves))


def _chain_iterations(chain: ImproverEntry, config: Any) -> int:
    return chain.iterations or int(getattr(config, "iterations", 1))


def _world_config(world: WorldEntry):
    from csr_bench.world import WorldConfig

    return WorldConfig.quick(seed=world.seed) if world.quick else WorldConfig(seed=world.seed)


def world_matches(folder: Path, config) -> bool:
    """The folder holds a world generated with exactly this config."""
    info = folder / "world.json"
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("config") == config.to_json()
    except (json.JSONDecodeError, OSError):
        return False


def _plain(x: Any) -> Any:
    """As JSON would store it (tuples become lists), so identities read back from disk compare equal."""
    return json.loads(json.dumps(x, sort_keys=True))


def expected_identity(task, suite, seed: int, gen: GenerationEntry, max_new_tokens: int = 0) -> dict[str, Any]:
    """What `evaluate` records as a run's identity (RunManifest.identity), except the model's fingerprint.

    `max_new_tokens` is what `evaluate` is given (0: the suite's own).
    """
    from csr_bench.runner.evaluate import run_config

    config = run_config(suite, limit=gen.limit or None, max_new_tokens=max_new_tokens or None,
                        do_sample=gen.do_sample, temperature=gen.temperature, num_beams=gen.num_beams)
    return _plain({"suite": suite.name, "task": task.name, "suite_config": suite.config_dict(), "seed": seed,
                   "data_fingerprint": suite.data_fingerprint(), "config": config})


def run_status(run_dir: Path, expected: dict[str, Any], spec: str, source: str) -> str:
    """done, resume (a partial run, or one made under another spec) or to do; a different run is refused."""
    from csr_bench.core.types import RunManifest
    from csr_bench.runner.store import METRICS, check_run_folder

    raw = check_run_folder(run_dir)  # the checks `evaluate` makes of the folder before it loads a model
    if raw is None:
        return TODO
    have = _plain({k: v for k, v in RunManifest.from_dict(raw).identity().items() if k != "model"})
    if have != expected:
        diff = [k for k in expected if have.get(k) != expected[k]]
        raise UserError(f"{run_dir}: holds a run with another {', '.join(diff)} than {source} asks for; "
                        "move it away or set another 'out'")
    if (raw.get("model") or {}).get("spec") != spec:
        return RESUME  # evaluate compares the weights' fingerprint and refuses another model
    return DONE if (run_dir / METRICS).is_file() and raw.get("finished") else RESUME


class _BuiltTask:
    """A task whose suite is already built: `evaluate` reads the data once per sweep, not once per call."""

    def __init__(self, name: str, suite):
        self.name, self._suite = name, suite

    def build(self):
        return self._suite


def plan_sweep(sweep: Sweep, *, dry_run: bool = False) -> SweepPlan:
    """Every unit of work and whether it is finished. Loads data, never a model; writes nothing.

    A dry run records unreadable data or prompts in the units' notes instead of stopping.
    """
    from csr_bench.runner.evaluate import run_folder
    from csr_bench.runner.tasks import Task, world_tasks

    world_todo = False
    known_world: dict[str, Any] = {}
    if sweep.world is not None:
        world_todo = not world_matches(sweep.world_dir, _world_config(sweep.world))
        if not world_todo:
            known_world = world_tasks(sweep.world_dir)

    tasks: dict[str, Any] = {}
    suites: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for i, entry in enumerate(sweep.tasks):
        if entry.data:
            kwargs = dict(entry.options)
            if entry.image_root:
                kwargs["image_root"] = entry.image_root
            task = Task(entry.name, entry.suite or entry.name, Path(entry.data), kwargs)
        elif world_todo:
            tasks[entry.name] = None  # known once the world exists
            continue
        else:
            if entry.name not in known_world:
                raise UserError(f"{sweep.source}: tasks[{i}] '{entry.name}' is not a world task and has no 'data'; "
                                f"world tasks: {', '.join(known_world)}")
            task = known_world[entry.name]
            if entry.suite and entry.suite != task.suite:
                raise UserError(f"{sweep.source}: tasks[{i}] '{entry.name}' is a {task.suite} task of the world, not {entry.suite}")
            if entry.options or entry.image_root:
                extra = dict(entry.options, **({"image_root": entry.image_root} if entry.image_root else {}))
                task = dataclasses.replace(task, kwargs={**task.kwargs, **extra})
        tasks[entry.name] = task
        try:
            suites[entry.name] = task.build()
        except UserError as e:
            if not dry_run:
                raise UserError(f"{sweep.source}: tasks[{i}] '{entry.name}': {e}") from None
            notes[entry.name] = f"data: {e}"

    gen = sweep.generation
    identities: dict[tuple[str, int], dict[str, Any]] = {}

    def unit(label: str, task_name: str, seed: int, spec: str | None) -> RunUnit:
        run_dir = run_folder(sweep.runs_dir, label, task_name, seed)
        if spec is None:
            return RunUnit(label, task_name, seed, run_dir, WAITS, None, "after its checkpoint")
        if task_name not in suites:
            return RunUnit(label, task_name, seed, run_dir, TODO, spec, notes.get(task_name, "after the world"))
        key = (task_name, seed)
        if key not in identities:
            identities[key] = expected_identity(tasks[task_name], suites[task_name], seed, gen,
                                                _max_new_tokens(sweep, task_name))
        return RunUnit(label, task_name, seed, run_dir, run_status(run_dir, identities[key], spec, sweep.source), spec)

    runs: list[RunUnit] = []
    for m in sweep.models:
        for seed in sweep.seeds:
            runs += [unit(m.name, t.name, seed, m.spec) for t in sweep.tasks]

    specs = {m.name: _training_spec(m.spec) for m in sweep.models}
    improves: list[ImproveUnit] = []
    for i, chain in enumerate(sweep.improvers):
        for seed in chain.training_seeds:
            u = _plan_improve(sweep, i, chain, seed, specs[chain.model], world_todo, dry_run)
            improves.append(u)
            for k in range(1, u.iterations + 1):
                spec = None
                if k <= u.done:
                    spec = chain.checkpoint_spec(u.records[k - 1].path)
                runs += [unit(chain.checkpoint_label(k), t.name, seed, spec) for t in sweep.tasks]

    return SweepPlan(sweep, world_todo, tasks, suites, runs, improves, _leaderboard_stale(sweep, runs))


def _training_spec(spec: str) -> str:
    """The spec an improver trains: a `vllm:` model names the same checkpoint, trained through transformers."""
    name, sep, rest = spec.partition(":")
    return f"hf:{rest}" if sep and name == "vllm" else spec


def _plan_improve(sweep: Sweep, index: int, chain: ImproverEntry, seed: int, base_spec: str, world_todo: bool,
                  dry_run: bool) -> ImproveUnit:
    from csr_bench.improvers.base import (
        check_lineage_folder,
        config_to_dict,
        get_improver,
        load_prompts,
        prompts_fingerprint,
    )

    where = f"{sweep.source}: improvers[{index}]"
    imp = get_improver(chain.improver)
    try:
        config = imp.load_config(chain.config or None)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    out_dir = sweep.out / "improve" / chain.label / f"seed{seed}"
    u = ImproveUnit(chain, seed, out_dir, _chain_iterations(chain, config), base_spec, improver=imp, config=config)
    if u.iterations < 1:
        raise UserError(f"{where}: iterations = {u.iterations}: expected at least 1")
    source = chain.prompts or getattr(config, "prompts", "") or (str(sweep.world_dir) if sweep.world else "")
    if not source:
        raise UserError(f"{where}: no prompts; set 'prompts' (a JSON Lines file of {{\"image\", \"prompt\"}}) "
                        "or the config's 'prompts', or give the sweep a [world]")
    if world_todo and sweep.world is not None and Path(source) == sweep.world_dir:
        u.note = "after the world"
        return u
    try:
        u.prompts = load_prompts(source, image_root=getattr(config, "image_root", "") or None,
                                 limit=getattr(config, "max_prompts", 0))
    except UserError as e:
        if not dry_run:
            raise UserError(f"{where}: {e}") from None
        u.note = f"prompts: {e}"
        return u
    fresh = {"improver": imp.name, "base_model": base_spec, "config": config_to_dict(config), "seed": seed,
             "prompts": {"fingerprint": prompts_fingerprint(u.prompts)}}
    _, records = check_lineage_folder(out_dir, fresh)  # the same checks and "finished" rule as `improve`
    u.records = records[: u.iterations]
    return u


def _leaderboard_stale(sweep: Sweep, runs: list[RunUnit]) -> bool:
    from csr_bench.runner.store import METRICS

    board = sweep.out / LEADERBOARD_FILE
    if not board.is_file():
        return True
    written = board.stat().st_mtime_ns
    if sweep.file is not None and sweep.file.stat().st_mtime_ns > written:
        return True
    for r in runs:
        metrics = r.run_dir / METRICS
        if r.status == DONE and metrics.stat().st_mtime_ns > written:
            return True
    return False


# ------------------------------------------------------------------------------------------- running


@dataclass
class SweepResult:
    leaderboard: Path
    forest: Path | None
    run_dirs: list[Path]
    labels: list[str]  # models then checkpoints, in leaderboard order
    worked: bool  # False when everything was up to date
    board: dict[str, Any] | None = None  # the leaderboard as built by this call (None: up to date, not rebuilt)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def describe_plan(plan: SweepPlan) -> list[str]:
    """The plan as lines: one per unit with its status, then a summary."""
    s = plan.sweep
    lines = [f"sweep {s.source} -> {s.out}"]
    if s.world is not None:
        lines.append(f"  {TODO if plan.world_todo else DONE:<7} world        {s.world_dir}")
    by_label: dict[str, list[RunUnit]] = {}
    for r in plan.runs:
        by_label.setdefault(r.label, []).append(r)

    def run_lines(label: str, seed: int | None = None) -> list[str]:
        return [f"  {r.status:<7} evaluate     {r.label} · {r.task} · seed {r.seed}" + (f"  ({r.note})" if r.note else "")
                for r in by_label.get(label, []) if seed is None or r.seed == seed]

    for m in s.models:
        lines += run_lines(m.name)
    for u in plan.improves:
        for k in range(1, u.iterations + 1):
            status = DONE if k <= u.done else TODO
            note = f"  ({u.note})" if u.note and k > u.done else ""
            lines.append(f"  {status:<7} improve      {u.chain.label} · training seed {u.seed} · iteration {k}{note}")
            lines += run_lines(u.chain.checkpoint_label(k), u.seed)
    lines.append(f"  {TODO if plan.leaderboard_todo else DONE:<7} leaderboard  {s.out / LEADERBOARD_FILE}")
    lines.append(summary_line(plan))
    return lines


def summary_line(plan: SweepPlan) -> str:
    n_runs, n_ckpt = len(plan.runs), plan.n_checkpoints
    if plan.up_to_date:
        return f"everything is up to date: {_plural(n_runs, 'run')}, {_plural(n_ckpt, 'checkpoint')}"
    ckpt_todo = sum(u.iterations - u.done for u in plan.improves)
    todo = [_plural(len(plan.runs_todo), "run"), _plural(ckpt_todo, "checkpoint")]
    if plan.world_todo:
        todo.insert(0, "the world")
    if plan.leaderboard_todo:
        todo.append("the leaderboard")
    return (f"to do: {', '.join(todo)} (done: {_plural(n_runs - len(plan.runs_todo), 'run')}, "
            f"{_plural(n_ckpt - ckpt_todo, 'checkpoint')})")


def run_sweep(
    sweep: Sweep | str | os.PathLike,
    *,
    dry_run: bool = False,
    threads: int | None = None,
    say: Callable[[str], None] = print,
    progress: bool = True,
) -> SweepResult | None:
    """Run what is left of a sweep (or, with `dry_run`, print the plan and return None)."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    else:
        check_sweep(sweep)
    plan = plan_sweep(sweep, dry_run=dry_run)
    if dry_run:
        for line in describe_plan(plan):
            say(line)
        return None
    board, plot = sweep.out / LEADERBOARD_FILE, sweep.out / FOREST_FILE
    if plan.up_to_date:
        say(summary_line(plan))
        return SweepResult(board, plot if plot.is_file() else None, [r.run_dir for r in plan.runs], _labels(plan), False)

    started = time.perf_counter()
    say(f"sweep {sweep.source}: {summary_line(plan)}")
    n_threads = threads if threads is not None else sweep.threads
    needs_torch = plan.runs_todo or any(u.done < u.iterations for u in plan.improves)
    if n_threads and needs_torch:
        import torch

        torch.set_num_threads(n_threads)
    if plan.world_todo:
        from csr_bench.world import generate_world

        say(f"generating the world into {sweep.world_dir}")
        generate_world(sweep.world_dir, config=_world_config(sweep.world))
        plan = plan_sweep(sweep)  # the world tasks and prompts can be read now
    made = _execute(plan, say=say, progress=progress)
    built, board_path, plot_path = _write_leaderboard(plan, board, plot)
    n_runs = len(plan.runs_todo)
    say(f"done in {time.perf_counter() - started:.0f} s: {_plural(n_runs, 'run')} evaluated, "
        f"{_plural(made, 'checkpoint')} made; leaderboard {board_path}")
    return SweepResult(board_path, plot_path, [r.run_dir for r in plan.runs], _labels(plan), True, built)


def _labels(plan: SweepPlan) -> list[str]:
    return list(dict.fromkeys(r.label for r in plan.runs))


def _max_new_tokens(sweep: Sweep, task_name: str) -> int:
    entry = next(t for t in sweep.tasks if t.name == task_name)
    return entry.max_new_tokens or sweep.generation.max_new_tokens


def _evaluate(plan: SweepPlan, units: list[RunUnit], spec: str, *, adapter=None, progress: bool) -> None:
    """Evaluate one model's unfinished runs: one `evaluate` call per seed and generation length."""
    from csr_bench.runner.evaluate import evaluate

    gen = plan.sweep.generation
    groups: dict[tuple[int, int], list[str]] = {}
    for u in units:
        groups.setdefault((u.seed, _max_new_tokens(plan.sweep, u.task)), []).append(u.task)
    for (seed, tokens), names in groups.items():
        tasks = [_BuiltTask(n, plan.suites[n]) for n in names]
        evaluate(spec, tasks, out=plan.sweep.runs_dir, seeds=(seed,), name=units[0].label, batch_size=gen.batch_size,
                 limit=gen.limit or None, max_new_tokens=tokens or None, do_sample=gen.do_sample,
                 temperature=gen.temperature, num_beams=gen.num_beams, adapter=adapter, progress=progress)


def _execute(plan: SweepPlan, *, say: Callable[[str], None], progress: bool) -> int:
    """Evaluate the models, then per improver run: its missing iterations, then its checkpoints. Returns checkpoints made."""
    import gc

    from csr_bench.models import load_adapter

    pending: dict[str, list[RunUnit]] = {}
    for r in plan.runs_todo:
        pending.setdefault(r.label, []).append(r)
    for m in plan.sweep.models:
        units = pending.get(m.name, [])
        if not units:
            continue
        say(f"evaluating {m.name} ({m.spec}): {_plural(len(units), 'run')}")
        adapter = load_adapter(m.spec)  # once for all seeds
        _evaluate(plan, units, m.spec, adapter=adapter, progress=progress)
        del adapter
        gc.collect()

    made = 0
    for u in plan.improves:
        records = list(u.records)
        if u.done < u.iterations:
            records = _improve(u, say=say, progress=progress)
            made += u.iterations - u.done
        for r in records:
            label = u.chain.checkpoint_label(r.iteration)
            units = [x for x in pending.get(label, []) if x.seed == u.seed]
            if not units:
                continue
            spec = u.chain.checkpoint_spec(r.path)
            say(f"evaluating {label} (training seed {u.seed}): {_plural(len(units), 'run')}")
            _evaluate(plan, units, spec, progress=progress)
            gc.collect()
    return made


def _improve(u: ImproveUnit, *, say: Callable[[str], None], progress: bool) -> list[Any]:
    from csr_bench.improvers.base import NullProgress, RichProgress, improve

    say(f"improving {u.base_spec} with {u.chain.improver} ({u.chain.label}, training seed {u.seed}): "
        f"iterations {u.done + 1}..{u.iterations} of {u.iterations}, {_plural(len(u.prompts), 'prompt')}")
    display = RichProgress() if progress else contextlib.nullcontext(NullProgress())
    with display as shown:
        return list(improve(u.improver, u.base_spec, out_dir=u.out_dir, prompts=u.prompts, config=u.config,
                            iterations=u.iterations, seed=u.seed, progress=shown))


def _write_leaderboard(plan: SweepPlan, board: Path, plot: Path) -> tuple[dict[str, Any], Path, Path | None]:
    from csr_bench.report.leaderboard import build_leaderboard, write_leaderboard
    from csr_bench.runner.store import find_runs

    sweep = plan.sweep
    runs = find_runs([r.run_dir for r in plan.runs])
    labels = _labels(plan)
    result = build_leaderboard(runs, baseline=sweep.baseline or labels[0], title=sweep.title)
    return (result, *write_leaderboard(result, board, plot))


__all__ = [
    "GenerationEntry",
    "ImproverEntry",
    "ModelEntry",
    "Sweep",
    "SweepPlan",
    "SweepResult",
    "TaskEntry",
    "WorldEntry",
    "check_sweep",
    "describe_plan",
    "load_sweep",
    "plan_sweep",
    "run_sweep",
    "world_matches",
]
