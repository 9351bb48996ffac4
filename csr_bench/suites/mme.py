"""MME (Fu et al., 2023): yes/no questions in 14 tasks, two questions per image, scored per task as
100·acc + 100·acc+ (acc+: both questions of an image right), summed into `perception` (10 tasks, max 2000)
and `cognition` (4 tasks, max 800).

Bug-compatible with the official `eval_tool/calculation.py` (github:BradyFU/Awesome-Multimodal-Large-Language-
Models, branch Evaluation, `tools/eval_tool.zip`):

- A results folder holds one `<task>.txt` per task; each line is `image \\t question \\t GT \\t response`. Lines
  are read like Python's text mode reads them (`\\r\\n` and a lone `\\r` end a line too) and split on every tab,
  so a response that contains a tab, or a lone carriage return, breaks the line: the official script crashes
  there and we raise a UserError naming the file and line.
- Consecutive lines are paired as one image, whatever their image names say; an odd number of lines is an
  error (the official `assert len(img_items) == 2`). GT must be yes/no in any case (`assert`).
- Answer parsing (`parse_mme_answer`): lower-case; exactly "yes"/"no" as is; else "yes" if "yes" is within
  the first 4 characters, else "no" if "no" is, else "other" (always wrong). So " yes" is yes but "  yes" is
  other, and "know", "snow", "none" and "nope" are no. The line's newline, which the official script keeps in
  the response, never changes the label, so readers drop it.
- Files other than the 14 task files are ignored. A missing task file crashes the official script; here it is
  a UserError unless `tasks="present"` (score the task files found, with `perception`/`cognition` summed over
  those only) or an explicit task list is given.
- An empty task file is a UserError (the official script divides by zero). One deliberate difference: a task
  where every answer parses as "other" crashes the official script (scikit-learn's precision on an empty
  array); here it scores 0, as 100·acc + 100·acc+ says.

The resampling unit is the image. Per-unit statistics are, for each task, (n_questions, n_correct, n_images,
n_images_both_correct); every metric is a function of their sums. Data can also be read without responses
(the template format `image \\t question \\t GT`, to run a model: `items()`) and from the lmms-lab/MME table
schema (question_id, image, question, answer, category).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from csr_bench.core.files import path_inside
from csr_bench.core.registry import suite
from csr_bench.core.types import ImagePart, Item, Message
from csr_bench.errors import UserError
from csr_bench.suites.base import Metric, Scored, Suite
from csr_bench.suites.suite_data import (
    default_image_cache,
    image_cell_to_file,
    is_table_source,
    looks_like_hub_id,
    read_table,
)

PERCEPTION_TASKS = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)
COGNITION_TASKS = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
TASKS = PERCEPTION_TASKS + COGNITION_TASKS

STAT_KINDS = ("n_questions", "n_correct", "n_images", "n_images_both_correct")
STAT_NAMES = tuple(f"{task}/{kind}" for task in TASKS for kind in STAT_KINDS)
N_QUESTIONS, N_CORRECT, N_IMAGES, N_BOTH = range(len(STAT_KINDS))

PROMPTS = ("official", "lmms-eval")
# lmms-eval's MME task (and LLaVA-1.5's llava_mme.jsonl) drop this from the question and ask for a short answer.
_YES_NO_INSTRUCTION = " Please answer yes or no."
_SHORT_ANSWER = "\nAnswer the question using a single word or phrase."


def parse_mme_answer(response: str) -> str:
    """The official `parse_pred_ans` on the lower-cased response: "yes", "no" or "other"."""
    answer = response.lower()
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def _column(task: str, kind: int) -> int:
    return TASKS.index(task) * len(STAT_KINDS) + kind


def _task_score(task: str):
    q, c, i, b = (_column(task, k) for k in (N_QUESTIONS, N_CORRECT, N_IMAGES, N_BOTH))

    def fn(s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(s[..., q] != 0, s[..., c] / np.where(s[..., q] != 0, s[..., q], 1), np.nan)
            acc_plus = np.where(s[..., i] != 0, s[..., b] / np.where(s[..., i] != 0, s[..., i], 1), np.nan)
        # Same operations in the same order as calculation.py (0 + acc*100 + acc_plus*100), bit for bit.
        return 0 + acc * 100 + acc_plus * 100

    return fn


def _group_score(tasks: Sequence[str]):
    fns = [_task_score(t) for t in tasks]

    def fn(s: np.ndarray) -> np.ndarray:
        total = 0
        for f in fns:  # the official order, starting from 0 like the official `scores`
            total = total + f(s)
        return np.asarray(total, dtype=float)

    return fn


# ---------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class MmeQuestion:
    """One MME question; `unit` is the image (task/image), `id` adds the question's place in the pair."""

    id: str
    unit: str
    task: str
    image: str
    question: str
    gt: str  # "yes" or "no"
    where: str  # file:line (or file:row) it came from
    response: str | None = None
    image_cell: Any = None  # the image of a table row ({bytes, path}), written to the image cache for the model


def _pair_units(task: str, pairs: list[tuple[str, str]]) -> list[str]:
    """Unit names for the pairs of one task from their two image names; unique within the task."""
    units: list[str] = []
    seen: dict[str, int] = {}
    for first, second in pairs:
        name = f"{task}/{first}" if first == second else f"{task}/{first}+{second}"
        seen[name] = seen.get(name, 0) + 1
        units.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return units


def read_mme_task_file(path: str | os.PathLike, task: str, *, responses: bool) -> list[MmeQuestion]:
    """One task file; `responses=True` wants 4 fields per line (results), False 3 (data; a 4th is ignored)."""
    p = Path(path)
    try:
        # Text mode with universal newlines, as the official `open(task_txt, 'r').readlines()`.
        with p.open("r", encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start})") from None
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines, start=1):
        fields = line[:-1].split("\t") if line.endswith("\n") else line.split("\t")
        expected = "image, question, GT and response" if responses else "image, question and GT"
        if responses and len(fields) != 4 or not responses and len(fields) not in (3, 4):
            hint = " (a response must not contain tabs or line breaks)" if responses and len(fields) > 4 else ""
            raise UserError(
                f"{p}:{lineno}: expected {4 if responses else 3} tab-separated fields ({expected}), "
                f"found {len(fields)}{hint}"
            )
        if fields[2].lower() not in ("yes", "no"):
            raise UserError(f"{p}:{lineno}: GT (third field) must be Yes or No, got {fields[2]!r}")
        rows.append((lineno, fields))
    if not rows:
        raise UserError(f"{p}: empty MME task file (the official script cannot score a task without questions)")
    if len(rows) % 2:
        raise UserError(
            f"{p}:{rows[-1][0]}: odd number of lines ({len(rows)}); MME pairs consecutive lines as the two "
            "questions of one image"
        )
    pairs = [(rows[i][1][0], rows[i + 1][1][0]) for i in range(0, len(rows), 2)]
    units = _pair_units(task, pairs)
    out = []
    for n, (lineno, fields) in enumerate(rows):
        unit = units[n // 2]
        out.append(
            MmeQuestion(
                id=f"{unit}/{n % 2}",
                unit=unit,
                task=task,
                image=fields[0],
                question=fields[1],
                gt=fields[2].lower(),
                where=f"{p}:{lineno}",
                response=fields[3] if responses or len(fields) == 4 else None,
            )
        )
    return out


def _resolve_tasks(tasks: str | Sequence[str], present: Iterable[str], source: str) -> tuple[str, ...]:
    present = set(present)
    if isinstance(tasks, str):
        if tasks == "all":
            missing = [t for t in TASKS if t not in present]
            if missing:
                raise UserError(
                    f"{source}: missing MME task {', '.join(missing)} (the official calculation.py needs all 14; "
                    "use tasks='present' to score the tasks found)"
                )
            return TASKS
        if tasks == "present":
            found = tuple(t for t in TASKS if t in present)
            if not found:
                raise UserError(f"{source}: no MME task found (expected files or categories named {', '.join(TASKS)})")
            return found
        raise UserError(f"tasks must be 'all', 'present' or a list of MME tasks, got {tasks!r}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise UserError(f"unknown MME task {', '.join(unknown)}; known: {', '.join(TASKS)}")
    if not tasks:
        raise UserError("tasks: empty list of MME tasks")
    missing = [t for t in tasks if t not in present]
    if missing:
        raise UserError(f"{source}: missing MME task {', '.join(missing)}")
    return tuple(t for t in TASKS if t in set(tasks))


def read_mme_folder(
    folder: str | os.PathLike, *, tasks: str | Sequence[str] = "all", responses: bool
) -> tuple[tuple[str, ...], list[MmeQuestion]]:
    """(tasks read, questions) of a folder of `<task>.txt` files; other files are ignored, as officially."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: MME folder not found" if not root.exists() else f"{root}: expected a folder")
    present = [t for t in TASKS if (root / f"{t}.txt").is_file()]
    chosen = _resolve_tasks(tasks, present, str(root))
    questions: list[MmeQuestion] = []
    for task in chosen:
        questions.extend(read_mme_task_file(root / f"{task}.txt", task, responses=responses))
    return chosen, questions


def read_mme_table(
    source: str | os.PathLike, *, tasks: str | Sequence[str] = "all", split: str | None = "test"
) -> tuple[tuple[str, ...], list[MmeQuestion]]:
    """MME in the lmms-lab/MME schema: a parquet file, a folder of parquet shards, a `datasets.save_to_disk`
    folder, or the id "lmms-lab/MME" in the local Hugging Face cache (never downloaded).

    Columns question_id (e.g. "code_reasoning/0020.png", shared by the two questions of an image), image (the
    `datasets` Image struct {bytes, path}), question, answer (Yes/No), category (an MME task). The two
    questions of an image are grouped by question_id within the category, in row order.
    """
    required = ("question_id", "image", "question", "answer", "category")
    table = read_table(source, what="MME table (lmms-lab/MME)", required=required, split=split)
    rows = [dict(row, where=f"{table.source}: row {i}") for i, row in enumerate(table.rows)]
    for row in rows:
        if row["category"] not in TASKS:
            raise UserError(f"{row['where']}: unknown MME category {row['category']!r}; known: {', '.join(TASKS)}")
    chosen = _resolve_tasks(tasks, {row["category"] for row in rows}, table.source)

    questions: list[MmeQuestion] = []
    for task in chosen:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["category"] == task:
                groups.setdefault(str(row["question_id"]), []).append(row)
        for qid, group in groups.items():
            if len(group) != 2:
                raise UserError(
                    f"{group[0]['where']}: question_id {qid!r} has {len(group)} questions; MME has 2 per image"
                )
            image_name = qid[len(task) + 1:] if qid.startswith(task + "/") else qid
            unit = f"{task}/{image_name}"
            for k, row in enumerate(group):
                answer = str(row["answer"])
                if answer.lower() not in ("yes", "no"):
                    raise UserError(f"{row['where']}: answer must be Yes or No, got {answer!r}")
                questions.append(
                    MmeQuestion(
                        id=f"{unit}/{k}",
                        unit=unit,
                        task=task,
                        image=image_name,
                        question=str(row["question"]),
                        gt=answer.lower(),
                        where=row["where"],
                        image_cell=row["image"],
                    )
                )
    return chosen, questions


def _fingerprint(questions: Sequence[MmeQuestion]) -> str:
    """Hash of the questions and answers only (not responses or images' file names), so a data folder, the
    results folders of any model and the parquet copy of the same questions share one fingerprint."""
    payload = json.dumps([[q.id, q.question, q.gt] for q in questions], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# The suite


@suite("mme")
class MmeSuite(Suite):
    """MME perception and cognition; the resampling unit is the image (two questions)."""

    name: ClassVar[str] = "mme"
    description: ClassVar[str] = (
        "MME: yes/no questions in 10 perception and 4 cognition tasks, scored 100·acc + 100·acc+"
    )
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...] | None] = ("perception", "cognition")

    def __init__(
        self,
        data: str | os.PathLike | None = None,
        *,
        tasks: str | Sequence[str] = "all",
        prompt: str = "official",
        image_root: str | os.PathLike | None = None,
        image_cache: str | os.PathLike | None = None,
    ):
        """`data`: a folder of `<task>.txt` files (template or results) or lmms-lab parquet; None to only
        score results (`read_predictions`). `tasks`: "all" (the official script's 14, each required),
        "present" (those found) or a list. `prompt`: "official" (the question as written, ending in "Please
        answer yes or no.") or "lmms-eval" (that sentence dropped and "\\nAnswer the question using a single
        word or phrase." appended, as lmms-eval and LLaVA-1.5 ask). `image_root`: where a folder's images are
        (default: the folder, then `../../MME_Benchmark_release_version` from it, as beside `eval_tool/Your_Results`;
        `<root>/<task>/<image>`, `<root>/<task>/images/<image>` and `<root>/<image>` are tried, as in the MME
        release). `image_cache`: where images of a table are written for the model."""
        if prompt not in PROMPTS:
            raise UserError(f"unknown MME prompt '{prompt}'; known: {', '.join(PROMPTS)}")
        self.prompt = prompt
        self._task_request: str | Sequence[str] = tasks
        # Resolved against the files when data are read; "present" is unknown until then.
        self.tasks: tuple[str, ...] = () if tasks == "present" else _resolve_tasks(tasks, TASKS, "MME")
        self.data = None if data is None else Path(data)
        self.image_root = None if image_root is None else Path(image_root)
        self.image_cache = None if image_cache is None else Path(image_cache)
        self._questions: list[MmeQuestion] | None = None
        self._image_base: Path | None = None
        if self.data is not None:
            self.tasks, self._questions = self._read(self.data, responses=False)
            self._image_base = self.data if self.data.is_dir() else self.data.parent

    @classmethod
    def for_scoring(cls, config: dict[str, Any]) -> "MmeSuite":
        return cls(tasks=list(config.get("tasks", TASKS)), prompt=config.get("prompt", "official"))

    def _read(
        self, path: Path, *, responses: bool, tasks: str | Sequence[str] | None = None
    ) -> tuple[tuple[str, ...], list[MmeQuestion]]:
        tasks = self._task_request if tasks is None else tasks
        is_folder = path.is_dir() and any(path.glob("*.txt"))
        if is_folder or not (is_table_source(path) or looks_like_hub_id(str(path))):
            return read_mme_folder(path, tasks=tasks, responses=responses)
        if responses:
            raise UserError(f"{path}: a table holds MME questions, not responses; give a results folder")
        return read_mme_table(path, tasks=tasks)

    def config_dict(self) -> dict[str, Any]:
        return {"tasks": list(self.tasks), "prompt": self.prompt}

    def data_fingerprint(self) -> str:
        if self._questions is None:
            return ""
        return _fingerprint(self._questions)

    def metrics(self) -> list[Metric]:
        tasks = self.tasks or TASKS
        out = []
        for group, members in (("perception", PERCEPTION_TASKS), ("cognition", COGNITION_TASKS)):
            chosen = [t for t in members if t in tasks]
            if chosen:
                note = "" if len(chosen) == len(members) else f" (only {len(chosen)} of its {len(members)} tasks)"
                out.append(Metric(group, _group_score(chosen), description=f"sum of the {group} task scores{note}"))
        for t in tasks:
            description = "100·acc + 100·acc+ (acc+: both questions of an image right)"
            out.append(Metric(t, _task_score(t), description=description))
        return out

    # -- items and predictions

    def _image_path(self, q: MmeQuestion) -> str:
        if q.image_cell is not None:
            cache = self.image_cache or default_image_cache(self.data_fingerprint())
            return image_cell_to_file(q.image_cell, cache / q.task, Path(q.image).stem, q.where)
        if self.image_root is not None:
            roots = [self.image_root]
        else:
            base = self._image_base or Path(".")
            # The eval_tool template sits at <MME>/eval_tool/Your_Results beside <MME>/MME_Benchmark_release_version.
            roots = [base, base.parent.parent / "MME_Benchmark_release_version"]
        names = (f"{q.task}/{q.image}", f"{q.task}/images/{q.image}", q.image)
        candidates = [path_inside(r, name, q.where) for r in roots for name in names]
        return next((c for c in candidates if os.path.isfile(c)), candidates[0])

    def _item(self, q: MmeQuestion) -> Item:
        text = q.question
        if self.prompt == "lmms-eval":
            text = text.replace(_YES_NO_INSTRUCTION, "").strip() + _SHORT_ANSWER
        return Item(
            id=q.id,
            unit=q.unit,
            messages=(Message.user(ImagePart(self._image_path(q)), text),),
            target=q.gt,
            meta={"task": q.task, "image": q.image, "source": q.where},
        )

    def items(self) -> list[Item]:
        if self._questions is None:
            raise UserError("MME: no data given (a folder of <task>.txt files or lmms-lab parquet)")
        return [self._item(q) for q in self._questions]

    def read_predictions(self, results_dir: str | os.PathLike) -> list[tuple[Item, str]]:
        """(item, response) for every line of an official results folder, in file order.

        Without data given to the constructor, the results folder is the data. With data, the results must hold
        exactly the same questions (ids, questions and GT), else a UserError names the first difference.
        """
        # With data given, the results are read for the data's tasks (other task files are ignored).
        request = self._task_request if self._questions is None else self.tasks
        tasks, questions = self._read(Path(results_dir), responses=True, tasks=request)
        if self._questions is None:
            self.tasks, self._questions = tasks, questions
            self._image_base = Path(results_dir)
        else:
            self._check_same_questions(questions, Path(results_dir))
        known = {q.id: q for q in self._questions}
        pairs = []
        for q in questions:
            base = known[q.id]
            item = self._item(base if base.image_cell is not None else q)
            assert q.response is not None
            pairs.append((item, q.response))
        return pairs

    def _check_same_questions(self, questions: list[MmeQuestion], source: Path) -> None:
        assert self._questions is not None
        mine = {q.id: q for q in self._questions}
        theirs = {q.id: q for q in questions}
        for q in questions:
            base = mine.get(q.id)
            if base is None:
                raise UserError(f"{q.where}: {q.id} is not in the MME data {self.data}")
            if (base.question, base.gt) != (q.question, q.gt):
                raise UserError(f"{q.where}: question or GT differs from the MME data ({base.where})")
        missing = [q for q in self._questions if q.id not in theirs]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise UserError(f"{source}: no response for {missing[0].id} ({missing[0].where}){more}")

    # -- scoring

    def score(self, item: Item, output: str | None) -> Scored:
        task = item.meta.get("task") or item.unit.split("/", 1)[0]
        if task not in TASKS:
            raise UserError(f"MME item {item.id}: unknown task {task!r}")
        # A missing output is an empty response, which parses as "other" (wrong).
        parsed = parse_mme_answer(output if output is not None else "")
        correct = int(parsed == item.target)
        stats = [0.0] * len(STAT_NAMES)
        stats[_column(task, N_QUESTIONS)] = 1.0
        stats[_column(task, N_CORRECT)] = float(correct)
        # Image columns are folded per unit by `unit_stats` (1 image; both right iff every question is right).
        stats[_column(task, N_IMAGES)] = 1.0
        stats[_column(task, N_BOTH)] = float(correct)
        return Scored(
            scores={"correct": correct},
            stats=stats,
            details={"parsed": parsed, "gt": item.target, "task": task},
        )

    def unit_stats(self, item_stats: np.ndarray) -> np.ndarray:
        rows = np.asarray(item_stats, dtype=float).reshape(-1, len(STAT_NAMES))
        out = rows.sum(axis=0)
        image_columns = [_column(t, k) for t in TASKS for k in (N_IMAGES, N_BOTH)]
        # One image per unit, and both-right only if all its questions are right: a minimum, not a sum.
        out[image_columns] = rows[:, image_columns].min(axis=0)
        return out


__all__ = [
    "COGNITION_TASKS",
    "MmeQuestion",
    "MmeSuite",
    "PERCEPTION_TASKS",
    "STAT_NAMES",
    "TASKS",
    "parse_mme_answer",
    "read_mme_folder",
    "read_mme_table",
    "read_mme_task_file",
]
