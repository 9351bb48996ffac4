"""The run store: one folder per (model, suite, seed) evaluation.

    RUN/manifest.json   what was run (schema_version first), written atomically
    RUN/samples.jsonl   one line per item, appended and flushed as produced (source of truth)
    RUN/metrics.json    aggregated metrics, written atomically at the end

A rerun into the same folder resumes: items already in samples.jsonl are skipped, a torn last line (a kill
mid-write) is dropped, and a manifest that does not match the new run is refused rather than mixed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from csr_bench.core.files import atomic_write_json
from csr_bench.core.types import SCHEMA_VERSION, RunManifest, Sample
from csr_bench.errors import UserError

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"


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


def _read_samples_file(path: Path, *, repair: bool) -> list[Sample]:
    """Read samples.jsonl; with repair, drop a torn final line (no trailing newline) left by a kill."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        if not repair:
            raise UserError(f"{path}: last line is incomplete (the run was interrupted); rerun to resume it")
        with path.open("r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    samples = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path}:{lineno}: not a valid sample line ({e})") from None
    return samples


def _check_schema(manifest: dict[str, Any], path: Path) -> None:
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{path}: key 'schema_version' missing or not an integer")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path}: schema_version {version} is newer than this csr-bench understands ({SCHEMA_VERSION}); upgrade csr-bench"
        )


class RunWriter:
    """Appends samples to a run folder; resumes a folder whose manifest matches."""

    def __init__(self, run_dir: str | os.PathLike, manifest: RunManifest):
        self.dir = Path(run_dir)
        self.manifest = manifest
        self.done: dict[str, Sample] = {}
        manifest_path = self.dir / MANIFEST
        if manifest_path.exists():
            existing_raw = json.loads(manifest_path.read_text(encoding="utf-8"))
            _check_schema(existing_raw, manifest_path)
            existing = RunManifest.from_dict(existing_raw)
            if existing.identity() != manifest.identity():
                diff = [k for k, v in manifest.identity().items() if existing.identity().get(k) != v]
                raise UserError(
                    f"{manifest_path}: this folder holds a different run (differs in {', '.join(diff)}); "
                    "choose another --out folder"
                )
            manifest.created = existing.created
            for s in _read_samples_file(self.dir / SAMPLES, repair=True):
                self.done[s.item_id] = s
        elif self.dir.exists() and any(self.dir.iterdir()):
            raise UserError(f"{self.dir}: folder exists and is not a csr-bench run (no {MANIFEST})")
        self.dir.mkdir(parents=True, exist_ok=True)
        if not manifest.created:
            manifest.created = utc_now()
        manifest.finished = None
        atomic_write_json(manifest_path, manifest.to_dict())
        self._fh = (self.dir / SAMPLES).open("a", encoding="utf-8")

    def append(self, sample: Sample) -> None:
        if sample.item_id in self.done:
            return
        self._fh.write(sample.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done[sample.item_id] = sample

    def finish(self, metrics: dict[str, Any]) -> None:
        self._fh.close()
        atomic_write_json(self.dir / METRICS, metrics)
        self.manifest.finished = utc_now()
        atomic_write_json(self.dir / MANIFEST, self.manifest.to_dict())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


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
