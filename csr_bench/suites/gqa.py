"""GQA (Hudson & Manning, CVPR 2019), testdev balanced: short answers to compositional questions.

Data, either format:
- official `testdev_balanced_questions.json` (an object keyed by question id: `{"imageId", "question",
  "answer", "isBalanced", "types": {"structural", "semantic", ...}, ...}`), images `image_root/<imageId>.jpg`
  (default: `images/` beside the JSON file, as LLaVA's `gqa/data/images`). The world generator writes this format.
- lmms-lab parquet (`lmms-lab/GQA`): the `testdev_balanced_instructions` table (columns `id, imageId,
  question, answer`, + `isBalanced`, `types`) and the `testdev_balanced_images` table (`id, image`). Give the
  dataset folder holding both subfolders, or the instructions parquet with `image_root` = the images parquet (or
  folder); `image_root` may also be a folder of `<imageId>.jpg` files.
Only balanced questions are items (the official eval.py's accuracy is over `isBalanced` questions).
Prompt (LLaVA-1.5's `llava_gqa_testdev_balanced.jsonl` and lmms-eval's default, identical):
`{question}\\nAnswer the question using a single word or phrase.`

Scorers (`variant`):
- `llava` (default): LLaVA `scripts/convert_gqa_for_eval.py` (`text.rstrip('.').lower()`, after the answer writer's
  strip) then GQA `eval.py` (the version LLaVA's docs point to): `prediction == answer`, exact.
  "Yes." -> "yes" is right; "yes!" or "the cat" (answer "cat") are wrong.
- `lmms`: lmms-eval 0.7.3 `exact_match` with ignore_case and ignore_punctuation: the output is stripped
  (`Task.process_results`), both strings lower-cased and every `string.punctuation` character deleted, then
  compared exactly (numpy string equality, which ignores trailing NUL characters only).
Metrics (percent): `accuracy`, `binary` and `open` (eval.py: open = structural type "query"), `acc_<type>` per
structural type (verify, query, choose, logical, compare) and per semantic type (rel, attr, obj, cat, global).
The resampling unit is the image (`imageId`).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from csr_bench.core.files import path_inside
from csr_bench.core.registry import suite
from csr_bench.core.types import Item
from csr_bench.errors import UserError
from csr_bench.suites.base import Metric, Scored, group_ratios, ratio
from csr_bench.suites.suite_data import (
    Question,
    QuestionSuite,
    check_variant,
    default_image_cache,
    image_cell_to_file,
    is_table_source,
    read_keyed_questions,
    read_table,
    require_path,
)

VARIANTS = ("llava", "lmms")
STRUCTURAL = ("verify", "query", "choose", "logical", "compare")
SEMANTIC = ("rel", "attr", "obj", "cat", "global")
STAT_NAMES = ("correct", "count") + tuple(
    f"{s}_{t}" for t in STRUCTURAL + SEMANTIC for s in ("correct", "count"))
PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."
INSTRUCTION_COLUMNS = ("id", "imageId", "question", "answer")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def correct_llava(output: str, answer: str) -> bool:
    return output.strip().rstrip(".").lower() == answer


def correct_lmms(output: str, answer: str) -> bool:
    pred = output.strip().lower().translate(_PUNCT_TABLE)
    gold = answer.lower().translate(_PUNCT_TABLE)
    return pred.rstrip("\x00") == gold.rstrip("\x00")


SCORERS = {"llava": correct_llava, "lmms": correct_lmms}


def _column(name: str) -> int:
    return STAT_NAMES.index(name)


def _metrics() -> list[Metric]:
    ms = [Metric("accuracy", ratio(0, 1, 100.0), description="exact matches / balanced questions, percent")]
    binary = [t for t in STRUCTURAL if t != "query"]
    ms.append(Metric("binary", ratio([_column(f"correct_{t}") for t in binary],
                                     [_column(f"count_{t}") for t in binary], 100.0),
                     description="accuracy on binary (non-query) questions, percent"))
    ms.append(Metric("open", ratio(_column("correct_query"), _column("count_query"), 100.0),
                     description="accuracy on open (query) questions, percent"))
    ms += group_ratios(STAT_NAMES, STRUCTURAL + SEMANTIC, "correct", "count", name="acc_{}",
                       description="accuracy on {} questions, percent")
    return ms


@suite("gqa")
class GQASuite(QuestionSuite):
    name: ClassVar[str] = "gqa"
    description: ClassVar[str] = "GQA testdev balanced: short answers to compositional questions"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...]] = ("accuracy",)
    answer_id_keys: ClassVar[tuple[str, ...]] = ("question_id", "questionId")
    answer_text_keys: ClassVar[tuple[str, ...]] = ("text", "prediction", "answer")

    def __init__(self, data: str | Path, *, image_root: str | Path | None = None, variant: str = "llava",
                 split: str = "testdev", image_cache: str | Path | None = None):
        self.variant = check_variant(variant, VARIANTS, "GQA")
        self.source = str(data)
        p = Path(data)
        if p.is_file() and p.suffix == ".json":
            self._load_official(p, image_root)
        elif is_table_source(data) or not p.exists():
            self._load_table(p, image_root, split, image_cache)
        else:
            require_path(p / "testdev_balanced_questions.json", "GQA questions file")
            self._load_official(p / "testdev_balanced_questions.json", image_root)

    def _load_official(self, path: Path, image_root: str | Path | None) -> None:
        self.source = str(path)
        data = read_keyed_questions(path, "GQA questions file", "GQA questions format", ("imageId", "question", "answer"))
        root = Path(image_root) if image_root is not None else path.parent / "images"
        self._data_files = [path]
        rows = []
        for qid, q in data.items():
            where = f"{path}: question '{qid}'"
            rows.append((str(qid), q, path_inside(root, f"{q['imageId']}.jpg", where), where))
        self._build(rows)

    def _load_table(self, p: Path, image_root: str | Path | None, split: str, image_cache: str | Path | None) -> None:
        instructions: Path | str = p
        if p.is_dir() and (p / "testdev_balanced_instructions").is_dir():
            instructions = p / "testdev_balanced_instructions"
            if image_root is None and (p / "testdev_balanced_images").is_dir():
                image_root = p / "testdev_balanced_images"
        table = read_table(instructions, what="GQA instructions table", required=INSTRUCTION_COLUMNS, split=split,
                           config="testdev_balanced_instructions")
        self._data_files, self._fingerprint_extra = list(table.files), table.fingerprint_extra
        image_of: dict[str, str] = {}
        if image_root is not None and is_table_source(image_root):
            images = read_table(image_root, what="GQA images table", required=("id", "image"), split=split,
                                config="testdev_balanced_images")
            self._data_files += images.files
            cache = Path(image_cache) if image_cache else default_image_cache(self.data_fingerprint())
            for i, row in enumerate(images.rows):
                image_of[str(row["id"])] = image_cell_to_file(row["image"], cache, f"gqa_{row['id']}",
                                                              f"{images.source}: row {i}")
        elif image_root is None:
            raise UserError(f"{p}: GQA instructions need images: pass image_root (the testdev_balanced_images "
                            f"parquet or a folder of <imageId>.jpg)")
        rows = []
        for i, q in enumerate(table.rows):
            image_id = str(q["imageId"])
            if image_of:
                if image_id not in image_of:
                    raise UserError(f"{table.source}: row {i} has imageId {image_id}, not in {image_root}")
                image = image_of[image_id]
            else:
                image = path_inside(image_root, f"{image_id}.jpg", f"{table.source}: row {i}")  # type: ignore[arg-type]
            rows.append((str(q["id"]), q, image, f"{table.source}: row {i}"))
        self._build(rows)

    def _build(self, rows: list[tuple[str, dict[str, Any], str, str]]) -> None:
        questions, seen, ignored = [], set(), set()
        for qid, q, image, where in rows:
            if not q.get("isBalanced", True):
                ignored.add(qid)
                continue
            if qid in seen:
                raise UserError(f"{where}: duplicate question id {qid}")
            seen.add(qid)
            if not isinstance(q["answer"], str):
                raise UserError(f"{where}: key 'answer' must be a string, got {q['answer']!r}")
            types = q.get("types") or {}
            questions.append(Question(qid, str(q["imageId"]), image, q["question"] + PROMPT_SUFFIX, q["answer"],
                                      {"structural": types.get("structural"), "semantic": types.get("semantic")}))
        if not questions:
            raise UserError(f"{self.source}: no balanced questions")
        self._questions, self._ignored_ids = questions, frozenset(ignored - seen)

    def metrics(self) -> list[Metric]:
        return _metrics()

    def score(self, item: Item, output: str | None) -> Scored:
        ok = SCORERS[self.variant](output or "", item.target)
        stats = np.zeros(len(STAT_NAMES))
        stats[0], stats[1] = ok, 1
        for key, known in (("structural", STRUCTURAL), ("semantic", SEMANTIC)):
            t = item.meta.get(key)
            if t in known:
                stats[_column(f"correct_{t}")], stats[_column(f"count_{t}")] = ok, 1
        return Scored(scores={"correct": int(ok)}, stats=stats.tolist(), details={"answer": item.target})


__all__ = ["GQASuite", "correct_llava", "correct_lmms"]
