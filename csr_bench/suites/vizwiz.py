"""VizWiz-VQA (Gurari et al., CVPR 2018), val split: questions from blind photographers, ten human answers each.

Data, either format:
- official `val.json` (a list of `{"image", "question", "answers": [{"answer", "answer_confidence"}] x 10,
  "answer_type", "answerable"}`), images `image_root/<image>` (default: `val/` beside the JSON file). Item ids
  are the image names (VizWiz asks one question per image). The world generator writes this format.
- lmms-lab parquet (`lmms-lab/VizWiz-VQA`, split `val`): columns `question_id, image, question, answers`
  (answers: a list of strings), + `category`. Item ids are `question_id`.
Answer files: LLaVA answer lines (`question_id` + `text`), or EvalAI upload files (`image` + `answer`).
Prompt (LLaVA-1.5's `llava_test.jsonl` and lmms-eval's default post-prompt): `{question}\\nWhen the provided
information is insufficient, respond with 'Unanswerable'.\\nAnswer the question using a single word or phrase.`
(lmms-eval also `capitalize()`s the question, which lower-cases the rest of it; the `lmms` variant does too.)

Scorers (`variant`), all VQA accuracy = mean over the left-out human answer of min(#other matching answers / 3,
1), percent; see csr_bench/suites/vqa_normalize.py for the normalisations:
- `llava` (default): EvalAI normalisation of prediction and human answers, as LLaVA's
  `convert_vizwiz_for_submission.py` + `m4c_evaluator.py` (the EvalAI server scores LLaVA's test answers so).
- `lmms`: lmms-eval 0.7.3 `vizwiz_vqa_process_results` — the same processor and rule (same numbers; kept as a
  name so runs record which pipeline they mirror; its prompt capitalizes the question).
- `vqa_eval`: the official VQA `vqaEval.py` rule (normalise only when humans disagree; record-equality
  leave-one-out). With the parquet schema the records are the answer strings.
Metrics: `accuracy` and `acc_<answer type>` (yes/no, number, other, unanswerable; official files only).
The unit is the question (its image).
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
from csr_bench.suites.vqa_normalize import normalize_evalai, vqa_accuracy_evalai, vqa_accuracy_vqaeval

VARIANTS = ("llava", "lmms", "vqa_eval")
ANSWER_TYPES = {"yes/no": "yes_no", "number": "number", "other": "other", "unanswerable": "unanswerable"}
STAT_NAMES = ("score", "count") + tuple(f"{s}_{t}" for t in ANSWER_TYPES.values() for s in ("score", "count"))
PROMPT_SUFFIX = ("\nWhen the provided information is insufficient, respond with 'Unanswerable'."
                 "\nAnswer the question using a single word or phrase.")
PARQUET_COLUMNS = ("question_id", "image", "question", "answers")


def _metrics() -> list[Metric]:
    ms = [Metric("accuracy", ratio(0, 1, 100.0), description="VQA accuracy, percent")]
    ms += group_ratios(STAT_NAMES, list(ANSWER_TYPES.values()), "score", "count", name="acc_{}",
                       description="VQA accuracy on {} questions, percent")
    return ms


@suite("vizwiz")
class VizWizSuite(QuestionSuite):
    name: ClassVar[str] = "vizwiz"
    description: ClassVar[str] = "VizWiz-VQA val: questions by blind photographers, VQA accuracy"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...]] = ("accuracy",)
    answer_id_keys: ClassVar[tuple[str, ...]] = ("question_id", "image")
    answer_text_keys: ClassVar[tuple[str, ...]] = ("text", "answer", "prediction")

    def __init__(self, data: str | Path, *, image_root: str | Path | None = None, variant: str = "llava",
                 split: str = "val", image_cache: str | Path | None = None):
        self.variant = check_variant(variant, VARIANTS, "VizWiz")
        self.source = str(data)
        p = Path(data)
        if p.is_file() and p.suffix == ".json":
            self._load_official(p, image_root, split)
        elif is_table_source(data) or not p.exists():
            self._load_table(data, split, image_cache)
        else:
            self._load_official(require_path(p / f"{split}.json", "VizWiz annotation file"), image_root, split)

    def _load_official(self, path: Path, image_root: str | Path | None, split: str) -> None:
        self.source = str(path)
        data = read_json(path, "VizWiz annotation file")
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a list of questions (VizWiz annotation format)")
        root = Path(image_root) if image_root is not None else path.parent / split
        self._data_files = [path]
        questions, seen = [], set()
        for i, q in enumerate(data):
            where = f"{path}: entry {i}"
            for key in ("image", "question", "answers"):
                if not isinstance(q, dict) or key not in q:
                    raise UserError(f"{where}: missing key '{key}' (VizWiz entries have image, question, answers)")
            answers = q["answers"]
            if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("answer"), str)
                                                        for a in answers):
                raise UserError(f"{where}: key 'answers' must be a list of {{\"answer\": ...}} records")
            qid = str(q["image"])
            if qid in seen:
                raise UserError(f"{where}: duplicate image {qid}")
            seen.add(qid)
            questions.append(self._question(qid, path_inside(root, qid, where), q["question"], answers, q.get("answer_type")))
        self._set(questions)

    def _load_table(self, data: str | Path, split: str, image_cache: str | Path | None) -> None:
        table = read_table(data, what="VizWiz-VQA table", required=PARQUET_COLUMNS, split=split)
        self._data_files, self._fingerprint_extra = table.files, table.fingerprint_extra
        cache = Path(image_cache) if image_cache else default_image_cache(self.data_fingerprint())
        questions, seen = [], set()
        for i, row in enumerate(table.rows):
            where = f"{table.source}: row {i}"
            qid = str(row["question_id"])
            if qid in seen:
                raise UserError(f"{where}: duplicate question_id {qid}")
            seen.add(qid)
            image = image_cell_to_file(row["image"], cache, f"vizwiz_{qid}", where)
            answers = [{"answer": a} for a in (row["answers"] or [])]
            questions.append(self._question(qid, image, row["question"], answers, None))
        self._set(questions)

    def _question(self, qid: str, image: str, question: str, answers: list[dict], answer_type: Any) -> Question:
        text = question.capitalize() if self.variant == "lmms" else question
        return Question(qid, qid, image, text + PROMPT_SUFFIX, answers, {"answer_type": answer_type})

    def _set(self, questions: list[Question]) -> None:
        if not questions:
            raise UserError(f"{self.source}: no questions")
        self._questions = questions

    def normalize_answer_id(self, raw: Any) -> str:
        return str(raw)

    def metrics(self) -> list[Metric]:
        return _metrics()

    def score(self, item: Item, output: str | None) -> Scored:
        text = (output or "").strip()
        if self.variant == "vqa_eval":
            acc = vqa_accuracy_vqaeval(text, item.target)
        else:
            acc = vqa_accuracy_evalai(text, [a["answer"] for a in item.target])
        stats = np.zeros(len(STAT_NAMES))
        stats[0], stats[1] = acc, 1
        t = ANSWER_TYPES.get(item.meta.get("answer_type") or "")
        if t is not None:
            c = 2 + 2 * list(ANSWER_TYPES.values()).index(t)
            stats[c], stats[c + 1] = acc, 1
        return Scored(scores={"vqa_accuracy": acc}, stats=stats.tolist(),
                      details={"normalized": normalize_evalai(text) if self.variant != "vqa_eval" else text})


__all__ = ["VizWizSuite"]
