"""Shared data plumbing of the question-answer suites: tables (official JSON, lmms-lab parquet, `datasets`
folders, the local Hugging Face cache), images stored inside tables, answer files, and a base class.

Tables in the lmms-lab parquet schema are read with pyarrow without decoding images; image cells (`{"bytes",
"path"}` structs, as `datasets` stores an `Image` feature) are written once to an image cache folder so that an
`ImagePart` can name a file. Nothing here downloads: a Hugging Face dataset id is only looked up in the local cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

from csr_bench.core.files import read_json, read_jsonl
from csr_bench.core.types import ImagePart, Item, Message
from csr_bench.errors import UserError
from csr_bench.suites.base import Suite

# ---------------------------------------------------------------------------------------------------------
# Tables


@dataclass
class Table:
    """Rows of a table and where they came from (for messages and fingerprints)."""

    rows: list[dict[str, Any]]
    source: str  # what error messages name
    files: list[Path] = field(default_factory=list)  # files whose bytes make the fingerprint
    fingerprint_extra: str = ""


def is_table_source(path: str | os.PathLike) -> bool:
    """True for a parquet file, a folder of parquet files, or a `datasets.save_to_disk` folder."""
    p = Path(path)
    if p.is_file():
        return p.suffix == ".parquet"
    if p.is_dir():
        return _is_saved_dataset(p) or any(p.rglob("*.parquet"))
    return False


def _is_saved_dataset(p: Path) -> bool:
    return (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists()


def looks_like_hub_id(text: str) -> bool:
    """"org/name" that is not an existing path nor a file name (a missing "dir/file.json" is not a dataset id)."""
    parts = str(text).split("/")
    return (len(parts) == 2 and all(parts) and not Path(text).exists() and not str(text).startswith((".", "/"))
            and Path(text).suffix.lower() not in (".json", ".jsonl", ".parquet", ".csv", ".tsv", ".arrow"))


def read_table(
    source: str | os.PathLike,
    *,
    what: str,
    required: Sequence[str],
    split: str | None = None,
    config: str | None = None,
) -> Table:
    """Read an lmms-lab-style table and check its columns; a missing column is a UserError naming it.

    `source` is a `.parquet` file; a folder of parquet files (those under `config/` when that subfolder exists,
    and those named `{split}-*.parquet` when any is); a `datasets.save_to_disk` folder (the `split` of a
    DatasetDict); or a Hub id found in the local Hugging Face cache (never downloaded).
    """
    p = Path(source)
    if p.is_file() and p.suffix == ".parquet":
        table = Table(_read_parquet_files([p]), str(p), [p])
    elif p.is_dir() and _is_saved_dataset(p):
        table = _read_saved_dataset(p, split)
    elif p.is_dir():
        files = _parquet_files(p, split, config)
        if not files:
            raise UserError(f"{p}: no .parquet files found (expected the {what} in lmms-lab parquet format)")
        table = Table(_read_parquet_files(files), str(p), files)
    elif looks_like_hub_id(str(source)):
        table = _read_hub_cache(str(source), split, config, what)
    else:
        raise UserError(f"{source}: not found (expected the suite's official data file or folder, lmms-lab parquet "
                        f"files, or a Hugging Face dataset id in the local cache)")
    columns = set(table.rows[0]) if table.rows else set()
    if not table.rows:
        raise UserError(f"{table.source}: the {what} has no rows")
    for name in required:
        if name not in columns:
            raise UserError(
                f"{table.source}: missing column '{name}' (the {what} needs columns {', '.join(required)})"
            )
    return table


def _parquet_files(folder: Path, split: str | None, config: str | None) -> list[Path]:
    root = folder / config if config and (folder / config).is_dir() else folder
    files = sorted(root.rglob("*.parquet"))
    if split:
        in_split = [f for f in files if f.name.startswith(f"{split}-") or f.name.startswith(f"{split}.")]
        files = in_split or files
    return files


def _read_parquet_files(files: Sequence[Path]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            rows.extend(pq.read_table(f).to_pylist())
        except Exception as e:  # pyarrow raises several types for a damaged or non-parquet file
            raise UserError(f"{f}: not a readable parquet file ({e})") from None
    return rows


def _read_saved_dataset(folder: Path, split: str | None) -> Table:
    import datasets

    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as e:
        raise UserError(f"{folder}: not a dataset saved with datasets.save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None or split not in ds:
            raise UserError(f"{folder}: dataset has splits {', '.join(ds)}; expected split '{split}'")
        ds = ds[split]
    files = sorted(folder.rglob("*.arrow"))
    return Table(ds.with_format("arrow")[:].to_pylist(), str(folder), files)


def _read_hub_cache(repo_id: str, split: str | None, config: str | None, what: str) -> Table:
    import datasets
    import datasets.config as dconfig

    # Force offline for this call only: a dataset id is looked up in the local cache, never downloaded.
    saved = (dconfig.HF_HUB_OFFLINE, dconfig.HF_DATASETS_OFFLINE)
    dconfig.HF_HUB_OFFLINE = dconfig.HF_DATASETS_OFFLINE = True
    try:
        ds = datasets.load_dataset(repo_id, config, split=split)
    except Exception as e:
        raise UserError(
            f"{repo_id}: the {what} is not in the local Hugging Face cache (config {config!r}, split {split!r}); "
            f"download it first or pass a local parquet file or folder ({type(e).__name__})"
        ) from None
    finally:
        dconfig.HF_HUB_OFFLINE, dconfig.HF_DATASETS_OFFLINE = saved
    table = ds.with_format("arrow")[:]
    return Table(table.to_pylist(), repo_id, [], fingerprint_extra=getattr(ds, "_fingerprint", ""))


def fingerprint_files(files: Iterable[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Images stored in tables


def default_image_cache(fingerprint: str) -> Path:
    base = Path(os.environ.get("CSR_BENCH_CACHE", Path.home() / ".cache" / "csr_bench"))
    return base / "images" / fingerprint[:16]


def image_cell_to_file(cell: Any, folder: Path, stem: str, where: str) -> str:
    """Write an image cell ({"bytes", "path"} struct, raw bytes, or a path string) to `folder`; return its path."""
    if isinstance(cell, str) and cell:
        return cell
    data = cell.get("bytes") if isinstance(cell, dict) else cell if isinstance(cell, (bytes, bytearray)) else None
    if not data:
        path = cell.get("path") if isinstance(cell, dict) else None
        if path:
            return str(path)
        raise UserError(f"{where}: image cell has neither bytes nor a path")
    ext = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg" if data[:2] == b"\xff\xd8" else ".img"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    out = folder / f"{safe}{ext}"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(bytes(data))
        os.replace(tmp, out)
    return str(out)


# ---------------------------------------------------------------------------------------------------------
# Answer files


def read_answer_records(path: str | os.PathLike, what: str, id_keys: Sequence[str] = ()
                        ) -> list[tuple[str, dict[str, Any] | tuple[str, Any]]]:
    """Records of an answer file with where each came from: JSON Lines objects, a JSON list of objects, or a
    JSON object mapping id -> answer (yielded as ("key", (id, answer)) pairs). A single JSON object that has one
    of `id_keys` is a one-line JSON Lines file, not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: {what} not found")
    text = p.read_text(encoding="utf-8", errors="strict") if p.stat().st_size < (1 << 30) else ""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        out: list[tuple[str, Any]] = []
        for i, obj in enumerate(whole):
            if not isinstance(obj, dict):
                raise UserError(f"{p}: entry {i} must be a JSON object, got {type(obj).__name__}")
            out.append((f"{p}: entry {i}", obj))
        return out
    if isinstance(whole, dict) and not any(k in whole for k in id_keys):
        return [(f"{p}: key '{k}'", ("key", (k, v))) for k, v in whole.items()]
    return [(f"{p}:{lineno}", obj) for lineno, obj in read_jsonl(p, what)]


def match_answers(
    answers_path: str | os.PathLike,
    questions_path: str,
    question_ids: Sequence[str],
    *,
    id_keys: Sequence[str],
    text_keys: Sequence[str],
    normalize_id: Callable[[Any], str] = str,
    what: str = "answer file",
    ignore_ids: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Answers by question id, in question order; ids must match the questions one to one (else a UserError
    naming both files and both counts). Answers to `ignore_ids` (questions of the data file that are not items,
    e.g. SEED-Bench's video questions) are dropped."""
    found: dict[str, tuple[str, str]] = {}
    records = read_answer_records(answers_path, what, id_keys)
    if not records:
        raise UserError(f"{answers_path}: no answers; expected one answer per question of {questions_path}")
    for where, rec in records:
        if isinstance(rec, tuple):  # {"id": answer} mapping
            raw_id, text = rec[1]
        else:
            id_key = next((k for k in id_keys if k in rec), None)
            if id_key is None:
                raise UserError(f"{where}: missing key '{id_keys[0]}' (expected one of {', '.join(id_keys)})")
            text_key = next((k for k in text_keys if k in rec), None)
            if text_key is None:
                raise UserError(f"{where}: missing key '{text_keys[0]}' (expected one of {', '.join(text_keys)})")
            raw_id, text = rec[id_key], rec[text_key]
        if not isinstance(text, str):
            raise UserError(f"{where}: the answer must be a string, got {text!r}")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)) or raw_id == "":
            raise UserError(f"{where}: question id must be an integer or a non-empty string, got {raw_id!r}")
        qid = normalize_id(raw_id)
        if qid in ignore_ids:
            continue
        if qid in found:
            raise UserError(f"{where}: duplicate question id {qid} (first at {found[qid][0]})")
        found[qid] = (where, text)
    wanted = set(question_ids)
    check_answers_match(answers_path, questions_path, n_answers=len(found), n_questions=len(question_ids),
                        missing=[q for q in question_ids if q not in found],
                        unexpected=[q for q in found if q not in wanted])
    return {q: found[q][1] for q in question_ids}


def check_answers_match(answers_path: Any, questions_path: Any, *, n_answers: int, n_questions: int,
                        missing: Sequence[Any], unexpected: Sequence[Any], id_label: str = "question id") -> None:
    """One UserError naming both files, both counts and a few of the ids that differ, unless none do."""
    if not (missing or unexpected):
        return
    parts = []
    if missing:
        parts.append(f"no answer for {id_label} {_few(missing)}")
    if unexpected:
        parts.append(f"{id_label} {_few(unexpected)} not in the questions")
    raise UserError(f"{answers_path} has {n_answers} answers but {questions_path} has {n_questions} questions; "
                    + "; ".join(parts))


def _few(ids: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# ---------------------------------------------------------------------------------------------------------
# Base class of the question-answer suites


@dataclass(frozen=True)
class Question:
    """One loaded question: its prompt text, image file, reference and what the scorer needs."""

    id: str
    unit: str
    image: str
    prompt: str
    target: Any
    meta: dict[str, Any] = field(default_factory=dict)


class QuestionSuite(Suite):
    """Suites whose items are (image, prompt) questions loaded up front; subclasses fill `_questions`."""

    answer_id_keys: ClassVar[tuple[str, ...]] = ("question_id",)
    answer_text_keys: ClassVar[tuple[str, ...]] = ("text", "answer", "prediction")

    _questions: list[Question]
    _data_files: list[Path]
    _fingerprint_extra: str = ""
    _ignored_ids: frozenset[str] = frozenset()  # questions of the data file that are not items
    source: str = ""

    def items(self) -> list[Item]:
        return [
            Item(id=q.id, unit=q.unit, messages=(Message.user(ImagePart(q.image), q.prompt),), target=q.target,
                 meta=dict(q.meta))
            for q in self._questions
        ]

    def data_fingerprint(self) -> str:
        return fingerprint_files(self._data_files, self._fingerprint_extra)

    def normalize_answer_id(self, raw: Any) -> str:
        return str(raw)

    def read_predictions(self, path: str | os.PathLike) -> dict[str, str]:
        return match_answers(
            path, self.source, [q.id for q in self._questions], id_keys=self.answer_id_keys,
            text_keys=self.answer_text_keys, normalize_id=self.normalize_answer_id, what=f"{self.name} answer file",
            ignore_ids=self._ignored_ids,
        )

    def config_dict(self) -> dict[str, Any]:
        return {"variant": self.variant}


class JudgedQuestionSuite(QuestionSuite):
    """Question suites graded by an LLM judge, built lazily from a spec (see csr_bench.judges.make_judge)."""

    # The judge model each scorer variant used, when the spec names none.
    default_judge_models: ClassVar[dict[str, str]] = {}

    def _set_judge(self, judge: Any, judge_cache: str | os.PathLike | None) -> None:
        self._judge_spec, self._judge_cache = judge, judge_cache
        self._judge = judge if judge is not None and not isinstance(judge, str) else None
        self.judge = self._get_judge().describe()  # recorded in config_dict, so runs with other judges differ

    def _get_judge(self) -> Any:
        if self._judge is None:
            from csr_bench.judges import make_judge

            self._judge = make_judge(self._judge_spec, default_model=self.default_judge_models[self.variant],
                                     cache_dir=self._judge_cache)
        return self._judge

    def config_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "judge": self.judge}


def read_keyed_questions(path: Path, what: str, fmt: str, required: Sequence[str]) -> dict[str, dict[str, Any]]:
    """An official file mapping question id -> record (GQA questions, mm-vet.json); every record must hold
    `required` (else a UserError naming the question and the key)."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object keyed by question id ({fmt})")
    for qid, q in data.items():
        for key in required:
            if not isinstance(q, dict) or key not in q:
                raise UserError(f"{path}: question '{qid}' has no key '{key}'")
    return data


def require_path(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: {what} not found")
    return p


def check_variant(variant: str, known: Sequence[str], suite_name: str) -> str:
    if variant not in known:
        raise UserError(f"unknown {suite_name} variant '{variant}'; known: {', '.join(known)}")
    return variant


__all__ = [
    "Question",
    "QuestionSuite",
    "Table",
    "check_variant",
    "default_image_cache",
    "fingerprint_files",
    "image_cell_to_file",
    "is_table_source",
    "looks_like_hub_id",
    "match_answers",
    "read_answer_records",
    "read_table",
    "require_path",
]
