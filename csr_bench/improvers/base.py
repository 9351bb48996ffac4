"""The Improver contract, the config file format, prompt files, and the resumable loop that records lineage.

An improver turns a model into a sequence of checkpoints, one per iteration. The loop here is generic: it
reads the prompts, runs the improver's `run_iteration` for each iteration not yet finished, and records each
checkpoint in `lineage.json` (written atomically) under the output folder:

    OUT/lineage.json          improver, base model, config, seed, prompts fingerprint, one record per iteration
    OUT/iter1/...             what iteration 1 wrote (for CSR: search.jsonl, pairs.jsonl, train_log.json, model/)

Rerunning the same command resumes: iterations listed in lineage.json whose checkpoint folder exists are never
redone; asking for more iterations continues from the last checkpoint; an iteration killed mid-way is handed
its folder again and resumes from its own files (see the improver). A kill at any moment leaves lineage.json
as it was or as newly written, never half-written. A folder holding a run with another improver, base model,
config, seed or prompt set (`lineage_identity`) is refused rather than mixed. Every check runs before anything
is written: a refused run leaves no file or folder behind.

Config files are TOML (read with tomllib). Each improver maps them onto a frozen dataclass whose nested
dataclasses are the TOML tables; an unknown key or a value of the wrong type is a UserError naming the file
and the key. No torch here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from csr_bench.core.files import atomic_write_json, is_atomic_write_temporary, path_inside, read_json, read_jsonl
from csr_bench.errors import UserError

LINEAGE_FILE = "lineage.json"
# Bumped when the meaning or layout of lineage.json changes; readers refuse newer versions.
LINEAGE_SCHEMA_VERSION = 1


# --------------------------------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class PromptRecord:
    """One improvement prompt: an image (absolute path) and an instruction."""

    id: str
    image: str
    prompt: str


def load_prompts(source: str | os.PathLike, *, image_root: str | os.PathLike | None = None, limit: int = 0) -> list[PromptRecord]:
    """Read improvement prompts, in file order (the first `limit` when limit > 0).

    `source` is one of:
    - a JSON Lines file of {"image", "prompt"} (optional "id"); image paths relative to `image_root`, else to
      the file's folder;
    - a JSON list in the format of the CSR authors' prompt file ({"id", "image", "input"}, with "<image>" in
      the input), image paths relative to `image_root`;
    - a world folder from `csr-bench world generate`: its improve/prompts.jsonl if present, else every training
      image with the world's caption prompt.

    Images must lie inside that root (`image_root`, the file's folder, or the world), as eval data must: a path
    that climbs out with "..", an absolute path elsewhere or a symlink leading out is a UserError naming the
    file, the line and the path.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return _world_prompts(path, limit)
    if not path.exists():
        raise UserError(f"{path}: prompt file not found; expected a JSON Lines file of {{\"image\", \"prompt\"}} or a world folder")
    root = Path(image_root).expanduser() if image_root else path.parent
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix == ".json":
        data = read_json(path, "prompt file")
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a JSON list of {{\"id\", \"image\", \"input\"}} objects")
        for n, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                raise UserError(f"{path}: entry {n}: expected an object with \"image\" and \"input\"")
            rows.append((f"entry {n}", obj))
    else:
        rows = [(f"line {lineno}", obj) for lineno, obj in read_jsonl(path, "prompt file")]
    out: list[PromptRecord] = []
    seen: set[str] = set()
    for where, obj in rows:
        text = obj.get("prompt", obj.get("input"))
        image = obj.get("image")
        if not isinstance(text, str) or not text.strip() or not isinstance(image, str) or not image:
            raise UserError(f"{path}: {where}: expected non-empty string fields \"image\" and \"prompt\"")
        # The authors' file marks the image place with "<image>"; our messages carry the image separately.
        text = text.replace("<image>\n", "").replace("\n<image>", "").replace("<image>", "").strip()
        image_path = _prompt_image(root, image, f"{path}: {where}")
        pid = str(obj.get("id", len(out)))
        if pid in seen:
            raise UserError(f"{path}: {where}: duplicate id {pid!r}")
        seen.add(pid)
        out.append(PromptRecord(pid, image_path, text))
        if limit and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{path}: no prompts; expected at least one {{\"image\", \"prompt\"}} line")
    return out


def _prompt_image(root: Path, image: str, where: str) -> str:
    """The absolute path of a prompt's image: inside `root` and an existing file, else a UserError at `where`."""
    image_path = Path(path_inside(root, image, where))
    if not image_path.is_file():
        raise UserError(f"{where}: image {image_path} not found")
    return str(image_path.resolve())


def _world_prompts(root: Path, limit: int) -> list[PromptRecord]:
    """Prompts of a generated world: its improve/prompts.jsonl when it has one, else its training images.

    improve/prompts.jsonl ({"image", "prompt"}, image paths relative to the world root), if a world has one,
    holds unlabeled images for self-improvement (CSR needs only images and instructions), disjoint from every
    evaluated image. Without it: every training image with the world's caption prompt, as CSR's COCO
    train2014 prompts.
    """
    if not (root / "world.json").is_file():
        raise UserError(f"{root}: not a csr-bench world (expected world.json)")
    improve = root / "improve" / "prompts.jsonl"
    if improve.is_file():
        return load_prompts(improve, image_root=root, limit=limit)
    captions = root / "train" / "captions.jsonl"
    if not captions.is_file():
        raise UserError(f"{root}: not a csr-bench world (expected improve/prompts.jsonl or train/captions.jsonl)")
    out: list[PromptRecord] = []
    seen: set[tuple[str, str]] = set()
    for lineno, obj in read_jsonl(captions, "world training captions"):
        image, prompt = obj.get("image"), obj.get("prompt")
        if not isinstance(image, str) or not isinstance(prompt, str):
            raise UserError(f"{captions}:{lineno}: expected string fields \"image\" and \"prompt\"")
        if (image, prompt) in seen:
            continue
        seen.add((image, prompt))
        out.append(PromptRecord(Path(image).stem, _prompt_image(root, image, f"{captions}:{lineno}"), prompt))
        if limit and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{captions}: no training images")
    return out


def prompts_fingerprint(prompts: Sequence[PromptRecord]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.id, Path(p.image).name, p.prompt]).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ config files


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check a TOML value against a field type; ints are accepted for floats, lists become tuples."""
    origin = typing.get_origin(tp)
    bad = UserError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where)
            except UserError:
                continue
        raise bad
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise bad
        (arg, *_) = typing.get_args(tp) or (Any,)
        return tuple(_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


def config_from_dict(cls: type, data: dict[str, Any], *, source: str, prefix: str = "") -> Any:
    """Build the frozen dataclass `cls` from a (TOML) mapping; unknown keys and bad types are UserErrors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise UserError(f"{source}: unknown key '{dotted}'; expected one of: {known}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{dotted}' must be a table ([{dotted}]), got {value!r}")
            kwargs[key] = config_from_dict(tp, value, source=source, prefix=f"{dotted}.")
        else:
            kwargs[key] = _coerce(value, tp, f"{source}: '{dotted}'")
    try:
        return cls(**kwargs)
    except UserError as e:
        raise UserError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: {e}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON data (tuples as lists), for manifests."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(config)


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UserError(f"{p}: reading TOML on Python 3.10 needs the 'tomli' package") from None
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p}: malformed TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start})") from None


def load_config_file(cls: type, path: str | os.PathLike) -> Any:
    return config_from_dict(cls, read_toml(path), source=str(path))


# ----------------------------------------------------------------------------------------------- progress


class Progress(Protocol):
    """What an improver reports while it runs (the CLI shows it with rich; tests pass NullProgress)."""

    def phase(self, iteration: int, name: str, total: int | None = None) -> None:
        """A phase of an iteration starts ("search", "training", "merge"); `total` units if known."""

    def advance(self, n: int = 1) -> None:
        """`n` more units of the current phase are done."""

    def note(self, text: str) -> None:
        """A one-line remark (e.g. "iteration 1 reused")."""


class NullProgress:
    def phase(self, iteration: int, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class RichProgress:
    """One progress bar per phase of each iteration, e.g. "iteration 2 · search  ━━━━━  120/400  0:00:14"."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        )
        self._task = None

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._finish_task()
        self._progress.stop()

    def _finish_task(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            if task.total is None:
                self._progress.update(self._task, total=max(task.completed, 1), completed=max(task.completed, 1))
            self._task = None

    def phase(self, iteration: int, name: str, total: int | None = None) -> None:
        self._finish_task()
        self._task = self._progress.add_task(f"iteration {iteration} · {name}", total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def note(self, text: str) -> None:
        self._progress.console.print(text, highlight=False, markup=False)


# ---------------------------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class IterationOutput:
    """What one iteration of an improver produced (paths relative to the iteration's folder)."""

    checkpoint: str  # a transformers checkpoint folder that `hf:<path>` loads
    preference_data: str  # the data the iteration trained on
    training_log: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointRecord:
    """One line of lineage: which checkpoint an iteration made, from which parent, on which data."""

    iteration: int
    path: str  # absolute path of the checkpoint folder
    parent: str  # model spec of the parent (the base model for iteration 1)
    preference_data: str  # absolute path
    training_log: str  # absolute path
    stats: dict[str, Any]
    created: str
    reused: bool = False  # True when a resumed run found this iteration already finished

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("reused")
        return d


@runtime_checkable
class Improver(Protocol):
    """A method that improves a model iteration by iteration (registered with @improver("name"))."""

    name: str
    description: str

    def load_config(self, source: str | os.PathLike | None) -> Any:
        """The improver's typed config from a TOML file, a shipped config name, or None (the default)."""
        ...

    def run_iteration(
        self,
        parent: str,
        *,
        iteration: int,
        work_dir: Path,
        config: Any,
        prompts: Sequence[PromptRecord],
        seed: int,
        progress: Progress,
    ) -> IterationOutput:
        """Improve `parent` (a model spec) once, writing everything under `work_dir`.

        May find its own partial work in `work_dir` from a killed run and reuse it. Must leave the checkpoint
        folder complete or absent (write it elsewhere and rename it into place). An improver that loads
        checkpoints may also accept `trust_remote_code: bool = False` (the user's --trust-remote-code); the loop
        passes it only when it is on, and refuses the flag for an improver without it.
        """
        ...


def get_improver(name: str) -> Improver:
    """An instance of the improver registered under `name` (built-ins and entry points load on first use)."""
    from csr_bench.core.registry import improvers

    cls = improvers.get(name)
    return cls() if isinstance(cls, type) else cls


def improver_names() -> list[str]:
    from csr_bench.core.registry import improvers

    return improvers.names()


# ------------------------------------------------------------------------------------------- the loop


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("csr-bench", "torch", "transformers", "trl", "peft", "open_clip_torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# What lineage.json must hold, with the JSON types of its fields.
_LINEAGE_FIELDS: dict[str, tuple[type, str]] = {
    "improver": (str, "a string"),
    "base_model": (str, "a string"),
    "config": (dict, "an object"),
    "seed": (int, "an integer"),
    "prompts": (dict, "an object"),
    "iterations": (list, "a list"),
}
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(CheckpointRecord) if f.name != "reused")


def read_lineage(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The checked lineage.json of an improver run folder; None when the folder holds none.

    A file that is not JSON, was written by a newer csr-bench (a schema_version above this one's), or lacks a
    field of the run's identity or of an iteration record is a UserError naming the file and the key.
    """
    path = Path(out_dir) / LINEAGE_FILE
    if not path.exists():
        return None
    data = read_json(path, "lineage file")
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{path}: not a csr-bench lineage file (no integer schema_version)")
    if version > LINEAGE_SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {version} is newer than this csr-bench understands "
                        f"({LINEAGE_SCHEMA_VERSION}); upgrade csr-bench")
    for key, (tp, name) in _LINEAGE_FIELDS.items():
        value = data.get(key)
        if not isinstance(value, tp) or isinstance(value, bool):
            raise UserError(f"{path}: key '{key}' must be {name}, got {value!r}")
    if not isinstance(data["prompts"].get("fingerprint"), str):
        raise UserError(f"{path}: key 'prompts.fingerprint' must be a string")
    for n, record in enumerate(data["iterations"]):
        keys = sorted(record) if isinstance(record, dict) else None
        if keys != sorted(_RECORD_FIELDS):
            raise UserError(f"{path}: 'iterations[{n}]' must be an object with keys {', '.join(_RECORD_FIELDS)}")
        if not isinstance(record["iteration"], int) or isinstance(record["iteration"], bool):
            raise UserError(f"{path}: 'iterations[{n}].iteration' must be an integer")
        if not isinstance(record["path"], str):
            raise UserError(f"{path}: 'iterations[{n}].path' must be a string")
    return data


def lineage_identity(lineage: dict[str, Any]) -> dict[str, Any]:
    """What makes an improver run the same run: improver, base model, config, seed and prompt set.

    `lineage` is a lineage.json mapping (or a new run's, where "prompts" needs only its "fingerprint"). The
    config's iteration count is left out, since asking for more iterations continues the same run; values are
    as JSON stores them (tuples as lists), so an identity read back from disk compares equal to a new one. A
    folder whose lineage has another identity than the run asked for is refused, by `improve` and by sweeps.
    """
    config = dict(lineage["config"])
    config.pop("iterations", None)
    identity = {"improver": lineage["improver"], "base_model": lineage["base_model"], "config": config,
                "seed": lineage["seed"], "prompts": lineage["prompts"]["fingerprint"]}
    return json.loads(json.dumps(identity, sort_keys=True))


def _is_stale_temporary(p: Path) -> bool:
    """A write of lineage.json killed before its rename (atomic_write_json's hidden temporary)."""
    return is_atomic_write_temporary(p, of=LINEAGE_FILE)


def check_lineage_folder(out: Path, fresh: dict[str, Any]) -> tuple[dict[str, Any] | None, list[CheckpointRecord]]:
    """Read-only checks of an improver's output folder against a new run's lineage (`fresh`: at least the keys
    `lineage_identity` reads): the lineage there (None when the run is new) and its finished iterations, 1..n in
    order. Nothing is created, written or deleted; planners (sweeps) call it to know what is left to do."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    lineage = read_lineage(out) if out.is_dir() else None
    if lineage is None:
        if out.is_dir() and any(not _is_stale_temporary(p) for p in out.iterdir()):
            raise UserError(f"{out}: folder is not empty and holds no {LINEAGE_FILE}; pass a new or empty folder")
        return None, []
    old, new = lineage_identity(lineage), lineage_identity(fresh)
    if old != new:
        diff = [k for k in new if old.get(k) != new.get(k)]
        raise UserError(f"{out}: holds a run with a different {', '.join(diff)}; pass a new folder to start another run")
    records = [CheckpointRecord(**r, reused=True) for r in lineage["iterations"]]
    # An iteration counts as finished only if its checkpoint is still on disk.
    records = [r for r in records if Path(r.path, "config.json").is_file()]
    records.sort(key=lambda r: r.iteration)
    done = [r.iteration for r in records]
    if done != list(range(1, len(records) + 1)):
        raise UserError(f"{out / LINEAGE_FILE}: iterations {done} are recorded; expected a run of 1..n")
    return lineage, records


def _accepts_keyword(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def improve(
    improver: Improver | str,
    model: str,
    *,
    out_dir: str | os.PathLike,
    prompts: Sequence[PromptRecord],
    config: Any,
    iterations: int,
    seed: int = 0,
    progress: Progress | None = None,
    trust_remote_code: bool = False,
) -> Iterator[CheckpointRecord]:
    """Run (or resume) `iterations` iterations of an improver; yields one record per iteration, in order.

    Every check (the arguments, the output folder, a lineage.json already there) runs when `improve` is called,
    before it returns and before anything is written: a refused run raises UserError and leaves no file or
    folder behind. Iterating the result does the work. Records of iterations finished by an earlier run are
    yielded with `reused=True` and not recomputed. `trust_remote_code` lets the checkpoints run their own Python
    code while loading (passed to the improver's `run_iteration`; off unless asked for).
    """
    imp = get_improver(improver) if isinstance(improver, str) else improver
    if iterations < 1:
        raise UserError(f"iterations={iterations}: expected at least 1")
    if not prompts:
        raise UserError("no prompts to improve on")
    if trust_remote_code and not _accepts_keyword(imp.run_iteration, "trust_remote_code"):
        raise UserError(f"improver '{imp.name}' has no trust_remote_code option (--trust-remote-code)")
    out = Path(out_dir)
    config_dict = config_to_dict(config)
    fresh = {
        "schema_version": LINEAGE_SCHEMA_VERSION,
        "improver": imp.name,
        "base_model": model,
        "config": config_dict,
        "seed": seed,
        "prompts": {"n": len(prompts), "fingerprint": prompts_fingerprint(prompts)},
        "versions": _versions(),
        "created": _utc_now(),
        "iterations": [],
    }
    lineage, records = check_lineage_folder(out, fresh)
    return _run_iterations(
        imp, model, out, lineage=lineage or fresh, new_run=lineage is None, records=records, prompts=prompts,
        config=config, iterations=iterations, seed=seed, progress=progress or NullProgress(),
        options={"trust_remote_code": True} if trust_remote_code else {},
    )


def _run_iterations(imp: Improver, model: str, out: Path, *, lineage: dict[str, Any], new_run: bool,
                    records: list[CheckpointRecord], prompts: Sequence[PromptRecord], config: Any, iterations: int,
                    seed: int, progress: Progress, options: dict[str, Any]) -> Iterator[CheckpointRecord]:
    """The work of `improve`, once its checks have passed."""
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    for stale in filter(_is_stale_temporary, out.iterdir()):
        stale.unlink(missing_ok=True)
    if new_run:
        atomic_write_json(out / LINEAGE_FILE, lineage)
    lineage["config"] = config_to_dict(config)  # the iteration count may have grown
    for r in records[:iterations]:
        progress.note(f"iteration {r.iteration}: finished earlier, reusing {r.path}")
        yield r
    parent = records[-1].path if records else model
    for iteration in range(len(records) + 1, iterations + 1):
        work_dir = out / f"iter{iteration}"
        work_dir.mkdir(exist_ok=True)
        started = time.perf_counter()
        try:
            result = imp.run_iteration(parent, iteration=iteration, work_dir=work_dir, config=config, prompts=prompts,
                                       seed=seed, progress=progress, **options)
        except UserError:
            # Refused before writing anything (e.g. a base model that cannot load): a new run leaves nothing behind.
            if new_run and iteration == 1 and not any(work_dir.iterdir()):
                work_dir.rmdir()
                (out / LINEAGE_FILE).unlink()
                if created_out:
                    out.rmdir()
            raise
        stats = {**result.stats, "seconds": round(time.perf_counter() - started, 1),
                 # Recorded in the open: this checkpoint was made with the parent's own code allowed to run.
                 "trust_remote_code": bool(options.get("trust_remote_code"))}
        record = CheckpointRecord(
            iteration=iteration,
            path=str((work_dir / result.checkpoint).resolve()),
            parent=parent,
            preference_data=str((work_dir / result.preference_data).resolve()),
            training_log=str((work_dir / result.training_log).resolve()),
            stats=stats,
            created=_utc_now(),
        )
        lineage["iterations"] = [r.to_json() for r in records] + [record.to_json()]
        lineage["finished"] = _utc_now()
        atomic_write_json(out / LINEAGE_FILE, lineage)
        records.append(record)
        parent = record.path
        yield record


# ------------------------------------------------------------------------------------------ CLI pieces


def run_improve(
    model: str,
    improver: str = "csr",
    *,
    out: str | os.PathLike,
    config: str | os.PathLike | None = None,
    prompts: str | os.PathLike | None = None,
    iterations: int | None = None,
    seed: int = 0,
    trust_remote_code: bool = False,
    console=None,
) -> list[CheckpointRecord]:
    """`csr-bench improve`: load the config and prompts, run with a rich progress display, print the lineage.

    `config` is a TOML file or the name of a shipped config (`csr-bench improvers` lists them); `prompts`
    overrides the config's `prompts` (a JSON Lines file or a world folder); `iterations` overrides the config's.
    Every input and the output folder (with its lineage.json, if any) are checked before the display starts or
    any line is printed, so a refused run shows one error and leaves nothing behind.
    """
    from rich.console import Console

    imp = get_improver(improver)
    cfg = imp.load_config(config)
    n_iter = iterations if iterations is not None else getattr(cfg, "iterations", 1)
    prompt_source = prompts or getattr(cfg, "prompts", "")
    if not prompt_source:
        raise UserError("no prompts: pass --prompts (a JSON Lines file of {\"image\", \"prompt\"} or a world folder) "
                        "or set 'prompts' in the config")
    records_prompts = load_prompts(prompt_source, image_root=getattr(cfg, "image_root", "") or None,
                                   limit=getattr(cfg, "max_prompts", 0))
    progress = RichProgress(console or Console(stderr=True))
    # Checks the folder and its lineage now; the display starts only once they have passed.
    iterations_run = improve(imp, model, out_dir=out, prompts=records_prompts, config=cfg, iterations=n_iter,
                             seed=seed, progress=progress, trust_remote_code=trust_remote_code)
    records: list[CheckpointRecord] = []
    with progress:
        progress.note(f"{imp.name}: {len(records_prompts)} prompts, {n_iter} iterations, seed {seed} -> {out}")
        for record in iterations_run:
            records.append(record)
            if record.reused:  # improve() has noted it
                continue
            keys = ("pairs", "train_loss", "mean_reward_accuracy", "seconds")
            shown = {k: record.stats[k] for k in keys if isinstance(record.stats.get(k), (int, float))}
            summary = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
            progress.note(f"iteration {record.iteration}: {record.path}" + (f"  [{summary}]" if summary else ""))
    return records


def improver_rows() -> list[dict[str, str]]:
    """`csr-bench improvers`: name, description and shipped configs of each improver."""
    rows = []
    for name in improver_names():
        try:
            imp = get_improver(name)
        except UserError as e:
            rows.append({"name": name, "description": f"(cannot load: {e})", "configs": ""})
            continue
        shipped = getattr(imp, "shipped_configs", lambda: {})()
        rows.append({"name": name, "description": getattr(imp, "description", ""), "configs": ", ".join(sorted(shipped))})
    return rows
