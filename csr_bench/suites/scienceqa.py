"""ScienceQA-IMG (Lu et al., NeurIPS 2022): the test questions that have an image; 2-5 options.

Data, either format:
- the official folder (`data/scienceqa` of lupantech/ScienceQA): `problems.json`, `pid_splits.json`, images at
  `images/<split>/<pid>/image.png` (or `image_root/<pid>/image.png`). When LLaVA's question file
  `llava_<split>_CQM-A.json` is in the folder, its prompts are used (LLaVA-1.5's evaluation prompts:
  `conversations[0].value` without `<image>`, stripped, + LLaVA's single-prediction instruction); otherwise the
  prompt is built as lmms-eval builds it (below). Item ids are the problem ids.
- lmms-lab parquet (`lmms-lab/ScienceQA`, config `ScienceQA-IMG`, split `test`; or `lmms-lab/ScienceQA-IMG`):
  columns `image, question, choices, answer, hint` (+ `subject` ...). The table has no id column: item ids are row
  numbers ("0", "1", ...), and answer files must use them.
Prompt when built: `{"Context: " + hint + "\\n" if hint}{question}\\nA. {c0}\\nB. {c1}...` + `\\nAnswer with the
option's letter from the given choices directly.` (lmms-eval `sqa_doc_to_text`, default format).

Scorers (`variant`):
- `llava` (default): LLaVA `llava/eval/eval_science_qa.py` (options A-E): the text itself if it is one of the
  option letters; else its first character if that is an option letter followed by ". "; else the single match of
  `The answer is ([A-Z]).` (a character must follow the letter; two matches fail); else FAILED. The letter must be
  among the first len(choices) options. LLaVA's answer writer strips the output, so it is stripped first. Its
  IMG-Accuracy is this accuracy over the image questions (the items here).
- `lmms`: lmms-eval 0.7.3 `sqa_process_results`: stripped output equal to the answer letter ignoring case, or
  "X." at the start (an upper-case letter then ".") with X the answer letter ignoring case; else wrong.
Metrics (percent): `accuracy`, `acc_<subject>` for natural/social/language science, `failed` (llava: answers
from which no option letter was extracted). The unit is the question (ScienceQA has one question per image).
"""

from __future__ import annotations

import re
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
OPTIONS = ("A", "B", "C", "D", "E")  # eval_science_qa.py's default --options
SUBJECTS = {"natural science": "natural", "social science": "social", "language science": "language"}
STAT_NAMES = ("correct", "count", "failed") + tuple(
    f"{s}_{sub}" for sub in SUBJECTS.values() for s in ("correct", "count"))
INSTRUCTION = "Answer with the option's letter from the given choices directly."
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")
PARQUET_COLUMNS = ("image", "question", "choices", "answer", "hint")


def build_prompt(question: str, choices: list[str], hint: str | None) -> str:
    """lmms-eval's `sqa_doc_to_text` (format "default", its default pre/post prompts)."""
    context = f"Context: {hint}\n" if hint else ""
    options = "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))
    return f"{context}{question}\n{options}\n{INSTRUCTION}"


def extract_letter_llava(text: str) -> str:
    """eval_science_qa.py's letter extraction; "FAILED" when none."""
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    found = _ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else "FAILED"


def predicted_index_llava(output: str, n_choices: int) -> tuple[int, str]:
    letter = extract_letter_llava(output.strip())
    index = OPTIONS.index(letter) if letter in OPTIONS[:n_choices] else -1
    return index, letter


def correct_lmms(output: str, answer_index: int) -> bool:
    target = chr(ord("A") + answer_index).lower()
    pred = output.strip()
    if pred.lower() == target:
        return True
    if len(pred) >= 2 and pred[0].isupper() and pred[1] == ".":
        return pred[0].lower() == target
    return False


def _metrics() -> list[Metric]:
    ms = [Metric("accuracy", ratio(0, 1, 100.0), description="correct / image questions, percent")]
    ms += group_ratios(STAT_NAMES, list(SUBJECTS.values()), "correct", "count", name="acc_{}",
                       description="accuracy on {} science, percent")
    ms.append(Metric("failed", ratio(2, 1, 100.0), higher_is_better=False,
                     description="answers with no extractable option letter, percent (llava variant)"))
    return ms


@suite("scienceqa")
class ScienceQASuite(QuestionSuite):
    name: ClassVar[str] = "scienceqa"
    description: ClassVar[str] = "ScienceQA-IMG: multiple-choice science questions with an image"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...]] = ("accuracy",)
    answer_text_keys: ClassVar[tuple[str, ...]] = ("text", "prediction", "answer")

    def __init__(self, data: str | Path, *, image_root: str | Path | None = None, variant: str = "llava",
                 split: str = "test", config: str = "ScienceQA-IMG", image_cache: str | Path | None = None):
        self.variant = check_variant(variant, VARIANTS, "ScienceQA")
        self.split = split
        self.source = str(data)
        p = Path(data)
        if p.is_dir() and (p / "problems.json").exists():
            self._load_official(p, image_root)
        elif p.is_file() and p.name == "problems.json":
            self._load_official(p.parent, image_root)
        elif is_table_source(data) or not p.exists():
            self._load_table(data, split, config, image_cache)
        else:
            require_path(p / "problems.json", "ScienceQA problems.json")

    def _load_official(self, folder: Path, image_root: str | Path | None) -> None:
        problems_path, splits_path = folder / "problems.json", require_path(folder / "pid_splits.json", "pid_splits.json")
        self.source = str(problems_path)
        problems = read_json(problems_path, "ScienceQA problems.json")
        splits = read_json(splits_path, "ScienceQA pid_splits.json")
        if not isinstance(splits, dict) or self.split not in splits:
            raise UserError(f"{splits_path}: no split '{self.split}'")
        llava_file = folder / f"llava_{self.split}_CQM-A.json"
        llava_prompts: dict[str, str] = {}
        self._data_files = [problems_path, splits_path]
        if llava_file.exists():
            self._data_files.append(llava_file)
            for i, entry in enumerate(read_json(llava_file, "LLaVA ScienceQA question file")):
                try:
                    value = entry["conversations"][0]["value"]
                except (KeyError, IndexError, TypeError):
                    raise UserError(f"{llava_file}: entry {i} has no conversations[0].value") from None
                llava_prompts[str(entry["id"])] = value.replace("<image>", "").strip() + "\n" + INSTRUCTION
        root = Path(image_root) if image_root is not None else folder / "images" / self.split
        questions, ignored = [], set()
        for pid in splits[self.split]:
            pid = str(pid)
            prob = problems.get(pid)
            if not isinstance(prob, dict):
                raise UserError(f"{problems_path}: no problem '{pid}' (listed in {splits_path})")
            for key in ("question", "choices", "answer", "image"):
                if key not in prob:
                    raise UserError(f"{problems_path}: problem '{pid}' has no key '{key}'")
            if not prob["image"]:
                ignored.add(pid)  # ScienceQA-IMG: only the problems with an image
                continue
            prompt = llava_prompts.get(pid) or build_prompt(prob["question"], prob["choices"], prob.get("hint"))
            where = f"{problems_path}: {pid}"
            questions.append(self._question(pid, path_inside(root, f"{pid}/{prob['image']}", where), prompt, prob, where))
        self._set(questions)
        self._ignored_ids = frozenset(ignored)

    def _load_table(self, data: str | Path, split: str, config: str, image_cache: str | Path | None) -> None:
        table = read_table(data, what="ScienceQA-IMG table", required=PARQUET_COLUMNS, split=split, config=config)
        self._data_files, self._fingerprint_extra = table.files, table.fingerprint_extra
        cache = Path(image_cache) if image_cache else default_image_cache(self.data_fingerprint())
        questions, ignored = [], set()
        for i, row in enumerate(table.rows):
            if row["image"] is None:
                ignored.add(str(i))
                continue
            where = f"{table.source}: row {i}"
            image = image_cell_to_file(row["image"], cache, f"sqa_{i}", where)
            prompt = build_prompt(row["question"], list(row["choices"]), row.get("hint"))
            questions.append(self._question(str(i), image, prompt, row, where))
        self._set(questions)
        self._ignored_ids = frozenset(ignored)

    def _question(self, qid: str, image: str, prompt: str, prob: dict[str, Any], where: str) -> Question:
        choices = list(prob["choices"])
        answer = prob["answer"]
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise UserError(f"{where}: answer must be an index into its {len(choices)} choices, got {answer!r}")
        return Question(qid, qid, image, prompt, answer,
                        {"n_choices": len(choices), "subject": prob.get("subject") or ""})

    def _set(self, questions: list[Question]) -> None:
        if not questions:
            raise UserError(f"{self.source}: no questions with an image in split '{self.split}'")
        self._questions = questions

    def config_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "split": self.split}

    def metrics(self) -> list[Metric]:
        return _metrics()

    def score(self, item: Item, output: str | None) -> Scored:
        text = output or ""
        if self.variant == "llava":
            # eval_science_qa.py records a missing prediction as "FAILED".
            index, letter = predicted_index_llava(text if output is not None else "FAILED", item.meta["n_choices"])
            ok, failed = index == item.target, letter == "FAILED"
            details: dict[str, Any] = {"parsed": letter}
        else:
            ok, failed, details = correct_lmms(text, item.target), False, {}
        stats = np.zeros(len(STAT_NAMES))
        stats[0], stats[1], stats[2] = ok, 1, failed
        sub = SUBJECTS.get(item.meta.get("subject", ""))
        if sub is not None:
            c = 3 + 2 * list(SUBJECTS.values()).index(sub)
            stats[c], stats[c + 1] = ok, 1
        details["answer"] = OPTIONS[item.target] if item.target < len(OPTIONS) else chr(ord("A") + item.target)
        return Scored(scores={"correct": int(ok)}, stats=stats.tolist(), details=details)


__all__ = ["ScienceQASuite", "build_prompt", "correct_lmms", "extract_letter_llava", "predicted_index_llava"]
