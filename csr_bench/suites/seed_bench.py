"""SEED-Bench (image), Li et al. 2023: four-option multiple choice over nine image dimensions.

Data, either format:
- official `SEED-Bench.json` (`{"question_type": {name: id}, "questions": [{"question_id", "question",
  "choice_a".."choice_d", "answer", "data_id", "data_type", "question_type_id"}]}`), images
  `image_root/<data_id>` (default: the folder `SEED-Bench-image` beside the JSON file);
- lmms-lab parquet (`lmms-lab/SEED-Bench`, split `test`: columns `question_id, question, choice_a..choice_d,
  answer, data_id, data_type, question_type_id, image` with `image` a list of images, the first one used).
Only `data_type == "image"` questions are items (the image part of SEED-Bench, as the CSR paper reports).

Prompt (LLaVA-1.5's `llava-seed-bench.jsonl` and lmms-eval's `seed_doc_to_text`, identical):
`{question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer with the option's letter from the given choices directly.`

Scorers (`variant`):
- `llava` (default): LLaVA's `scripts/convert_seed_for_submission.py`: the answer file's `text` must equal the
  answer letter exactly (`row['text'] == question['answer']`). LLaVA's answer writer strips the generated text, so
  the output is stripped first; "A." or "a" are wrong.
- `lmms`: lmms-eval 0.7.3 `seed_process_result` / `seed_aggregation_result`: stripped output, its first character
  if longer than one, compared case-insensitively: "A. cat", "a", "Apple" all count as "A".
Metrics (percent, as both print): `accuracy` over image questions and `acc_<dimension>` per question type
(LLaVA prints per `question_type_id`). The resampling unit is the image (`data_id`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from csr_bench.core.files import path_inside, read_json
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
    read_table,
    require_path,
)

VARIANTS = ("llava", "lmms")
# SEED-Bench's image dimensions, by question_type_id (the ids of the official file's "question_type").
DIMENSIONS = {
    1: "scene_understanding",
    2: "instance_identity",
    3: "instance_attributes",
    4: "instance_location",
    5: "instances_counting",
    6: "spatial_relation",
    7: "instance_interaction",
    8: "visual_reasoning",
    9: "text_understanding",
}
STAT_NAMES = ("correct", "count") + tuple(f"{s}_{d}" for d in DIMENSIONS.values() for s in ("correct", "count"))
PROMPT_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
PARQUET_COLUMNS = ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
                   "data_type", "question_type_id", "image")


def seed_prompt(q: dict[str, Any]) -> str:
    return (f"{q['question']}\nA. {q['choice_a']}\nB. {q['choice_b']}\nC. {q['choice_c']}\nD. {q['choice_d']}"
            + PROMPT_SUFFIX)


def correct_llava(output: str, answer: str) -> bool:
    """convert_seed_for_submission.py: exact equality with the answer letter (output stripped by the writer)."""
    return output.strip() == answer


def correct_lmms(output: str, answer: str) -> bool:
    """lmms-eval seed_process_result + seed_aggregation_result: first character, case-insensitive."""
    pred = output.strip()
    if len(pred) > 1:
        pred = pred[0]
    return pred.lower().strip() == answer.lower().strip()


SCORERS = {"llava": correct_llava, "lmms": correct_lmms}


def _metrics() -> list[Metric]:
    metrics = [Metric("accuracy", ratio(0, 1, 100.0), description="correct / image questions, percent")]
    metrics += group_ratios(STAT_NAMES, list(DIMENSIONS.values()), "correct", "count", name="acc_{}",
                            description="accuracy on {}, percent")
    return metrics


@suite("seed_bench")
class SeedBenchSuite(QuestionSuite):
    name: ClassVar[str] = "seed_bench"
    description: ClassVar[str] = "SEED-Bench image questions: four-option multiple choice over nine dimensions"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...]] = ("accuracy",)
    answer_text_keys: ClassVar[tuple[str, ...]] = ("text", "prediction", "answer")

    def __init__(self, data: str | Path, *, image_root: str | Path | None = None, variant: str = "llava",
                 split: str = "test", image_cache: str | Path | None = None):
        self.variant = check_variant(variant, VARIANTS, "SEED-Bench")
        self.source = str(data)
        if is_table_source(data) or not Path(data).exists():
            self._load_table(data, split, image_cache)
        else:
            self._load_official(require_path(data, "SEED-Bench.json"), image_root)

    def _load_official(self, path: Path, image_root: str | Path | None) -> None:
        data = read_json(path, "SEED-Bench.json")
        if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
            raise UserError(f"{path}: expected an object with a 'questions' list (SEED-Bench.json)")
        root = Path(image_root) if image_root is not None else path.parent / "SEED-Bench-image"
        self._data_files = [path]
        rows = []
        for i, q in enumerate(data["questions"]):
            for key in ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
                        "data_id", "data_type", "question_type_id"):
                if not isinstance(q, dict) or key not in q:
                    raise UserError(f"{path}: questions[{i}] has no key '{key}'")
            where = f"{path}: questions[{i}]"
            rows.append((where, q, path_inside(root, str(q["data_id"]), where)))
        self._build(rows)

    def _load_table(self, data: str | Path, split: str, image_cache: str | Path | None) -> None:
        table = read_table(data, what="SEED-Bench table", required=PARQUET_COLUMNS, split=split)
        self._data_files = table.files
        self._fingerprint_extra = table.fingerprint_extra
        cache = Path(image_cache) if image_cache else default_image_cache(self.data_fingerprint())
        rows = []
        for i, q in enumerate(table.rows):
            if q["data_type"] != "image":
                rows.append((f"{table.source}: row {i}", q, ""))
                continue
            cells = q["image"] if isinstance(q["image"], list) else [q["image"]]
            if not cells:
                raise UserError(f"{table.source}: row {i} (question_id {q['question_id']}) has no image")
            image = image_cell_to_file(cells[0], cache, f"seed_{q['question_id']}", f"{table.source}: row {i}")
            q = {**q, "data_id": q.get("data_id") or image}
            rows.append((f"{table.source}: row {i}", q, image))
        self._build(rows)

    def _build(self, rows: list[tuple[str, dict[str, Any], str]]) -> None:
        questions, seen, ignored = [], set(), set()
        for where, q, image in rows:
            if q["data_type"] != "image":
                ignored.add(str(q["question_id"]))
                continue
            qid = str(q["question_id"])
            if qid in seen:
                raise UserError(f"{where}: duplicate question_id {qid}")
            seen.add(qid)
            try:
                type_id = int(q["question_type_id"])
            except (TypeError, ValueError):
                raise UserError(f"{where}: question_type_id must be an integer, got {q['question_type_id']!r}") from None
            if type_id not in DIMENSIONS:
                raise UserError(f"{where}: question_type_id {type_id} is not an image dimension (1-9)")
            if q["answer"] not in ("A", "B", "C", "D"):
                raise UserError(f"{where}: answer must be one of A, B, C, D, got {q['answer']!r}")
            data_id = q["data_id"]
            unit = str(data_id[0] if isinstance(data_id, list) and data_id else data_id)
            questions.append(Question(qid, unit, image, seed_prompt(q), q["answer"], {"question_type_id": type_id}))
        if not questions:
            raise UserError(f"{self.source}: no image questions (data_type 'image') found")
        self._questions, self._ignored_ids = questions, frozenset(ignored - seen)

    def metrics(self) -> list[Metric]:
        return _metrics()

    def score(self, item: Item, output: str | None) -> Scored:
        ok = SCORERS[self.variant](output or "", item.target)
        type_id = int(item.meta["question_type_id"])
        stats = np.zeros(len(STAT_NAMES))
        stats[0], stats[1] = ok, 1
        c = 2 + 2 * (type_id - 1)
        stats[c], stats[c + 1] = ok, 1
        return Scored(scores={"correct": int(ok)}, stats=stats.tolist(),
                      details={"answer": item.target, "question_type": DIMENSIONS[type_id]})


__all__ = ["DIMENSIONS", "SeedBenchSuite", "correct_llava", "correct_lmms", "seed_prompt"]
