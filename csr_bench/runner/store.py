"""The run store: one folder per (model, suite, seed) evaluation.

    RUN/manifest.json   what was run (schema_version first), written atomically
    RUN/samples.jsonl   one line per item, appended and flushed as produced (source of truth)
    RUN/metrics.json    aggregated metrics, written atomically at the end
    RUN/samples.shard-RRRRR-of-WWWWW.jsonl
                        while a sharded evaluation runs: rank R's samples, appended like samples.jsonl;
                        merged into samples.jsonl (in item order) and removed when the run finishes

A rerun into the same folder resumes: items already in samples.jsonl or in a shard file are skipped, a torn
last line (a kill mid-write) is dropped, and a manifest that does not match the new run is refused rather than
mixed. A finished run's samples.jsonl is in item order however it was produced (one process, shards, resumes).
A kill during an atomic write leaves its temporary file (".manifest.json.XXXXXXXX.tmp", see
csr_bench.core.files.atomic_write_text): such leftovers of the run's own files are not content (a folder holding
only one is still a new run) and are removed when the run is opened and when it finishes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from csr_bench.core.files import atomic_write_json, atomic_write_text, is_atomic_write_temporary, read_append_log
from csr_bench.core.types import SCHEMA_VERSION, RunManifest, Sample
from csr_bench.errors import UserError

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"
SHARD_GLOB = "samples.shard-*-of-*.jsonl"



def shard_file_name(rank: int, world_size: int) -> str:
    """The samples file of one rank of a sharded evaluation."""
    return f"samples.shard-{rank:05d}-of-{world_size:05d}.jsonl"


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def package_versions(names: Iterable[str] = ("csr-bench", "numpy", "torch", "transformers")) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _read_sample_lines(path: Path, *, repair: bool) -> list[tuple[Sample, str]]:
    """(sample, its line as written) per line of a samples file; with repair, drop a torn final line (no
    trailing newline) left by a kill. Lines are kept verbatim so merging shards copies bytes, not re-encodes."""
    out = []
    for lineno, line in read_append_log(path, repair=repair):
        try:
            sample = Sample.from_dict(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path}:{lineno}: not a valid sample line ({e})") from None
        # json.loads reads NaN and Infinity, which csr-bench never writes: a file edited or made elsewhere.
        if not all(isinstance(x, (int, float)) and np.isfinite(x) for x in sample.stats):
            raise UserError(f"{path}:{lineno}: statistics must be finite numbers, got {sample.stats}")
        out.append((sample, line))
    return out


def _read_samples_file(path: Path, *, repair: bool) -> list[Sample]:
    return [s for s, _ in _read_sample_lines(path, repair=repair)]


def _item_order_key(order: dict[str, int]) -> Callable[[str], tuple[int, int]]:
    """Sort key of item ids: the run's items in item order, any others after them (a stable sort keeps their order)."""
    return lambda item_id: (0, order[item_id]) if item_id in order else (1, 0)


def _canonical(lines: list[tuple[Sample, str]], order: dict[str, int] | None) -> list[tuple[Sample, str]]:
    """First line per item id; items of the run in item order, any others after them in file order."""
    seen: dict[str, tuple[Sample, str]] = {}
    for s, line in lines:
        seen.setdefault(s.item_id, (s, line))
    kept = list(seen.values())
    if order is None:
        return kept
    key = _item_order_key(order)
    return sorted(kept, key=lambda pair: key(pair[0].item_id))


def consolidate_samples(run_dir: str | os.PathLike, order: dict[str, int] | None = None) -> dict[str, Sample]:
    """Fold shard files into samples.jsonl (in item order, one line per item) and remove them.

    Torn last lines are dropped first. samples.jsonl is rewritten (atomically, before any shard file is
    removed, so a kill in between loses nothing) only when there are shard files or, given `order`
    (item id -> position), when its lines are not already in that order. Returns the samples by item id.
    """
    d = Path(run_dir)
    lines = _read_sample_lines(d / SAMPLES, repair=True)
    shards = sorted(d.glob(SHARD_GLOB))
    for shard in shards:
        lines += _read_sample_lines(shard, repair=True)
    merged = _canonical(lines, order)
    if shards or [s.item_id for s, _ in merged] != [s.item_id for s, _ in lines]:
        atomic_write_text(d / SAMPLES, "".join(line for _, line in merged))
        for shard in shards:
            shard.unlink()
    return {s.item_id: s for s, _ in merged}


def _check_schema(manifest: dict[str, Any], path: Path) -> None:
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{path}: key 'schema_version' missing or not an integer")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path}: schema_version {version} is newer than this csr-bench understands ({SCHEMA_VERSION}); upgrade csr-bench"
        )


def is_atomic_write_leftover(path: Path) -> bool:
    """A temporary file that a kill during an atomic write of manifest.json, samples.jsonl or metrics.json left."""
    # Nothing else in a folder counts as a leftover of ours (a symlink named like one is content).
    return not path.is_symlink() and any(is_atomic_write_temporary(path, of=name) for name in (MANIFEST, SAMPLES, METRICS))


def _foreign_entries(d: Path) -> list[Path]:
    """What a folder without a manifest holds besides our atomic-write leftovers (nothing: it may become a run)."""
    return [p for p in d.iterdir() if not is_atomic_write_leftover(p)]


def remove_atomic_write_leftovers(run_dir: str | os.PathLike) -> None:
    """Delete the atomic-write leftovers of a run folder (only the run's owner calls this, while no write runs)."""
    d = Path(run_dir)
    if not d.is_dir():
        return
    for p in d.iterdir():
        if is_atomic_write_leftover(p):
            p.unlink(missing_ok=True)


def check_run_folder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Refuse early (before a model is loaded) a run folder no run may be written into: one that is not a run,
    or whose manifest is malformed or from a newer csr-bench. A matching or different run is decided later.
    Returns the folder's manifest as read (None when it has none yet).
    Reads only: every rank of a sharded run calls it (atomic-write leftovers are ignored here, removed later)."""
    d = Path(run_dir)
    manifest_path = d / MANIFEST
    if manifest_path.exists():
        try:
            raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{manifest_path}: not a valid manifest ({e})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{manifest_path}: not a valid manifest (expected a JSON object)")
        _check_schema(raw, manifest_path)
        return raw
    if d.exists() and (not d.is_dir() or _foreign_entries(d)):
        raise UserError(f"{d}: folder exists and is not a csr-bench run (no {MANIFEST})")
    return None


def prepare_run(run_dir: str | os.PathLike, manifest: RunManifest, order: dict[str, int] | None = None) -> dict[str, Sample]:
    """Create a run folder, or reopen one whose manifest matches (refusing a different run), fold in any shard
    files a killed sharded run left, and (re)write the manifest as unfinished. Returns the samples already done.

    Atomic-write leftovers of a killed earlier run are removed (only in a folder this run may use)."""
    d = Path(run_dir)
    manifest_path = d / MANIFEST
    done: dict[str, Sample] = {}
    existing_raw = check_run_folder(d)
    if existing_raw is not None:
        existing = RunManifest.from_dict(existing_raw)
        if existing.identity() != manifest.identity():
            diff = [k for k, v in manifest.identity().items() if existing.identity().get(k) != v]
            raise UserError(
                f"{manifest_path}: this folder holds a different run (differs in {', '.join(diff)}); "
                "choose another --out folder"
            )
        manifest.created = existing.created
        done = consolidate_samples(d, order)
    remove_atomic_write_leftovers(d)
    d.mkdir(parents=True, exist_ok=True)
    if not manifest.created:
        manifest.created = utc_now()
    manifest.finished = None
    atomic_write_json(manifest_path, manifest.to_dict())
    return done


def finalize_run(run_dir: str | os.PathLike, manifest: RunManifest, metrics: dict[str, Any]) -> None:
    """Write metrics.json, then the manifest with its finish time (both atomically); remove atomic-write leftovers."""
    d = Path(run_dir)
    atomic_write_json(d / METRICS, metrics)
    manifest.finished = utc_now()
    atomic_write_json(d / MANIFEST, manifest.to_dict())
    remove_atomic_write_leftovers(d)


class SampleLog:
    """Appends samples to one file, one line each, flushed and fsynced as produced (a kill loses at most
    the line being written, which the next open drops)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fh = self.path.open("a", encoding="utf-8")

    def append(self, sample: Sample) -> None:
        self._fh.write(sample.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class RunWriter:
    """Appends samples to a run folder; resumes a folder whose manifest matches.

    `order` (item id -> position) keeps a finished samples.jsonl in item order even when a resume appended
    items out of order (after folding in a killed sharded run's shard files).
    """

    def __init__(self, run_dir: str | os.PathLike, manifest: RunManifest, order: dict[str, int] | None = None):
        self.dir = Path(run_dir)
        self.manifest = manifest
        self.order = order
        # In samples.jsonl's line order: prepare_run returns them as the file holds them, append adds at the end.
        self.done: dict[str, Sample] = prepare_run(self.dir, manifest, order)
        self._log = SampleLog(self.dir / SAMPLES)

    def append(self, sample: Sample) -> None:
        if sample.item_id in self.done:
            return
        self._log.append(sample)
        self.done[sample.item_id] = sample

    def finish(self, metrics: dict[str, Any]) -> None:
        self._log.close()
        if self.order is not None:
            file_ids = list(self.done)
            if sorted(file_ids, key=_item_order_key(self.order)) != file_ids:
                consolidate_samples(self.dir, self.order)
        finalize_run(self.dir, self.manifest, metrics)

    def close(self) -> None:
        self._log.close()


def write_run_atomically(run_dir: str | os.PathLike, manifest: RunManifest, samples: list[Sample], metrics: dict[str, Any]) -> Path:
    """Write a whole run (offline scoring) into a temporary sibling folder, then move it into place."""
    target = Path(run_dir)
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target}: folder exists and is not empty; choose another --out folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        manifest.created = manifest.created or utc_now()
        manifest.finished = utc_now()
        atomic_write_json(tmp / MANIFEST, manifest.to_dict())
        with (tmp / SAMPLES).open("w", encoding="utf-8") as f:
            for s in samples:
                f.write(s.to_json() + "\n")
        atomic_write_json(tmp / METRICS, metrics)
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@dataclass
class Run:
    """A finished (or partial) run read back from disk."""

    path: Path
    manifest: RunManifest
    samples: list[Sample]
    metrics: dict[str, Any] | None

    @property
    def label(self) -> str:
        return str(self.manifest.model.get("name") or self.path.name)

    def suite_object(self):
        from csr_bench.runner.scoring import suite_for_manifest

        return suite_for_manifest(self.manifest)

    def unit_matrix(self) -> tuple[list[str], np.ndarray]:
        """(unit ids in first-seen order, per-unit statistics of shape (n_units, k))."""
        from csr_bench.runner.scoring import unit_matrix

        units, matrix = unit_matrix(self.suite_object(), self.samples)
        if not np.all(np.isfinite(matrix)):
            raise UserError(f"{self.path / SAMPLES}: statistics contain NaN or infinity")
        return units, matrix


def is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def load_run(path: str | os.PathLike) -> Run:
    p = Path(path)
    manifest_path = p / MANIFEST
    if not p.exists():
        raise UserError(f"{p}: run folder not found")
    if not manifest_path.is_file():
        raise UserError(f"{p}: not a run folder (no {MANIFEST})")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{manifest_path}:{e.lineno}: malformed JSON ({e.msg})") from None
    _check_schema(raw, manifest_path)
    for key in ("suite", "stat_names", "model"):
        if key not in raw:
            raise UserError(f"{manifest_path}: key '{key}' missing")
    manifest = RunManifest.from_dict(raw)
    samples = _read_samples_file(p / SAMPLES, repair=False)
    metrics_path = p / METRICS
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else None
    return Run(p, manifest, samples, metrics)


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """Runs named directly, or found one or more levels below the given folders (sorted by path)."""
    runs: list[Run] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise UserError(f"{p}: not found")
        if is_run_dir(p):
            runs.append(load_run(p))
            continue
        found = sorted(m.parent for m in p.rglob(MANIFEST))
        if not found:
            raise UserError(f"{p}: no run folders (with {MANIFEST}) found below it")
        runs.extend(load_run(f) for f in found)
    return runs
