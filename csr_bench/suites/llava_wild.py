"""LLaVA-Bench (In-the-Wild), Liu et al. 2023: 60 open questions on 24 images, judged against GPT-4 answers.

Data, either format:
- the official folder (liuhaotian/llava-bench-in-the-wild): `questions.jsonl` (`question_id, image, text,
  category` in conv/detail/complex), `context.jsonl` (`image, caption`), `answers_gpt4.jsonl` (`question_id,
  text`: the reference answers), images in `images/` (or `image_root`);
- lmms-lab parquet (`lmms-lab/llava-bench-in-the-wild`, split `train`): columns `question_id, question, image,
  caption, gpt_answer, category`.
Prompt: the question text as is (LLaVA's `model_vqa` and lmms-eval add nothing).

Judging (LLaVA `llava/eval/eval_gpt_review_bench.py` with `llava/eval/table/rule.json`; lmms-eval 0.7.3 uses the
same rule file): the judge sees `[Context]\\n{caption}\\n\\n[Question]\\n{question}\\n\\n[Assistant 1]\\n{reference}
\\n\\n[End of Assistant 1]\\n\\n[Assistant 2]\\n{model answer}\\n\\n[End of Assistant 2]\\n\\n[System]\\n{rule}\\n\\n`
and answers "S1 S2" (reference, model) on its first line. Variants differ in the request and the parser:
- `llava` (default): system message "You are a helpful and precise assistant for checking the quality of the
  answer." + the content as user message, max_tokens 1024; parse: first line, "," -> " ", split on single spaces,
  exactly two parts, floats (so "8  9" or "Assistant 1: 8" fail). LLaVA used gpt-4-0314 at temperature 0.2;
  here every judge call is at temperature 0 (cached and repeatable).
- `lmms`: the content as the only (user) message, max_tokens 1024; parse: first line of the stripped reply, ","
  and ";" -> " ", the first two numbers found (regex `-?\\d+(?:\\.\\d+)?`). Default judge model gpt-4o-2024-11-20.
A reply that fails to parse, or no reply, makes the item missing: it is left out of every score and counted
in `judge_missing` (LLaVA and lmms-eval would average a [-1, -1] pair into the scores instead).

Score (LLaVA's `summarize_gpt_review.py`): 100 x mean(model scores) / mean(reference scores), overall and per
category; with equal counts that is 100 x sum(model) / sum(reference) over the judged items, which is how it is
computed here (summarize_gpt_review rounds the two means to 3 decimals first; we do not round). Also
`reference_mean` and `model_mean` (mean score x 10, the two numbers LLaVA prints after the ratio).
The resampling unit is the image.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from csr_bench.core.files import path_inside, read_jsonl
from csr_bench.core.registry import suite
from csr_bench.core.types import Item
from csr_bench.errors import UserError
from csr_bench.judges import Judge, JudgeRequest
from csr_bench.suites.base import Metric, Scored, ratio
from csr_bench.suites.suite_data import (
    Question,
    JudgedQuestionSuite,
    check_variant,
    default_image_cache,
    image_cell_to_file,
    is_table_source,
    read_table,
    require_path,
)

VARIANTS = ("llava", "lmms")
CATEGORIES = ("conv", "detail", "complex")
FIELDS = ("ref", "model", "judged", "missing")
STAT_NAMES = tuple(f"{f}_{c}" for c in CATEGORIES for f in FIELDS)
SYSTEM_PROMPT = "You are a helpful and precise assistant for checking the quality of the answer."
DEFAULT_JUDGE_MODEL = {"llava": "gpt-4-0314", "lmms": "gpt-4o-2024-11-20"}
# rule.json's llava_bench_conv/detail/complex entries (the three are identical), role "Assistant".
RULE_ROLE = "Assistant"
RULE_PROMPT = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above. The user asks the question on observing an image. For your reference, the visual "
    "content in the image is represented with a few sentences describing the image. \nPlease rate the helpfulness, "
    "relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale "
    "of 1 to 10, where a higher score indicates better overall performance.\nPlease first output a single line "
    "containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are "
    "separated by a space.\nIn the subsequent line, please provide a comprehensive explanation of your evaluation, "
    "avoiding any potential bias and ensuring that the order in which the responses were presented does not affect "
    "your judgment."
)
PARQUET_COLUMNS = ("question_id", "question", "image", "caption", "gpt_answer", "category")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def review_content(context: str, question: str, reference: str, answer: str) -> str:
    r = RULE_ROLE
    return (f"[Context]\n{context}\n\n[Question]\n{question}\n\n[{r} 1]\n{reference}\n\n[End of {r} 1]\n\n"
            f"[{r} 2]\n{answer}\n\n[End of {r} 2]\n\n[System]\n{RULE_PROMPT}\n\n")


def parse_scores_llava(review: str) -> tuple[float, float] | None:
    """eval_gpt_review_bench.py's parse_score; None where it returns [-1, -1]."""
    parts = review.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def parse_scores_lmms(review: str) -> tuple[float, float] | None:
    """lmms-eval's _parse_comparative_scores; None where it returns [-1, -1]."""
    lines = review.strip().split("\n")
    numbers = _NUMBER.findall(lines[0].replace(",", " ").replace(";", " ")) if lines else []
    return (float(numbers[0]), float(numbers[1])) if len(numbers) >= 2 else None


PARSERS = {"llava": parse_scores_llava, "lmms": parse_scores_lmms}


def _col(field: str, category: str) -> int:
    return STAT_NAMES.index(f"{field}_{category}")


def _sum(cols: list[int]):
    def fn(s: np.ndarray) -> np.ndarray:
        return s[..., cols].sum(axis=-1)

    return fn


def _metrics() -> list[Metric]:
    every = list(CATEGORIES)
    ms = [Metric("score", ratio([_col("model", c) for c in every], [_col("ref", c) for c in every], 100.0),
                 description="100 x sum of model scores / sum of reference scores over judged items")]
    for c in CATEGORIES:
        ms.append(Metric(f"score_{c}", ratio(_col("model", c), _col("ref", c), 100.0),
                         description=f"relative score on {c} questions"))
    ms.append(Metric("reference_mean", ratio([_col("ref", c) for c in every], [_col("judged", c) for c in every], 10.0),
                     description="mean reference (GPT-4 answer) score x 10"))
    ms.append(Metric("model_mean", ratio([_col("model", c) for c in every], [_col("judged", c) for c in every], 10.0),
                     description="mean model score x 10"))
    ms.append(Metric("judge_missing", _sum([_col("missing", c) for c in every]), higher_is_better=False,
                     description="items without a usable judge reply (left out of the scores)"))
    return ms


@suite("llava_wild")
class LlavaWildSuite(JudgedQuestionSuite):
    name: ClassVar[str] = "llava_wild"
    description: ClassVar[str] = "LLaVA-Bench in-the-wild: open questions judged against GPT-4 reference answers"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...]] = ("score", "judge_missing")
    default_judge_models: ClassVar[dict[str, str]] = DEFAULT_JUDGE_MODEL

    def __init__(self, data: str | Path, *, image_root: str | Path | None = None, variant: str = "llava",
                 judge: Judge | str | None = None, judge_cache: str | Path | None = None, split: str = "train",
                 image_cache: str | Path | None = None):
        self.variant = check_variant(variant, VARIANTS, "LLaVA-Bench")
        self.source = str(data)
        p = Path(data)
        if p.is_dir() and (p / "questions.jsonl").exists():
            self._load_official(p, image_root)
        elif is_table_source(data) or not p.exists():
            self._load_table(data, split, image_cache)
        else:
            require_path(p / "questions.jsonl", "LLaVA-Bench questions.jsonl")
        self._set_judge(judge, judge_cache)

    # -- data ------------------------------------------------------------------------------------------------
    def _load_official(self, folder: Path, image_root: str | Path | None) -> None:
        files = {n: require_path(folder / f"{n}.jsonl", f"LLaVA-Bench {n}.jsonl")
                 for n in ("questions", "context", "answers_gpt4")}
        self.source = str(files["questions"])
        self._data_files = list(files.values())
        captions: dict[str, str] = {}
        for lineno, c in read_jsonl(files["context"], "LLaVA-Bench context.jsonl"):
            if "image" not in c or "caption" not in c:
                raise UserError(f"{files['context']}:{lineno}: expected keys image and caption")
            cap = c["caption"]
            captions[str(c["image"])] = "\n".join(cap) if isinstance(cap, list) else str(cap)
        references: list[tuple[int, dict]] = list(read_jsonl(files["answers_gpt4"], "LLaVA-Bench answers_gpt4.jsonl"))
        root = Path(image_root) if image_root is not None else folder / "images"
        rows = []
        # eval_gpt_review_bench.py pairs questions and reference answers line by line (zip).
        questions = list(read_jsonl(files["questions"], "LLaVA-Bench questions.jsonl"))
        if len(questions) != len(references):
            raise UserError(f"{files['answers_gpt4']} has {len(references)} answers but {files['questions']} has "
                            f"{len(questions)} questions; they are paired line by line")
        for (lineno, q), (_, ref) in zip(questions, references):
            where = f"{files['questions']}:{lineno}"
            for key in ("question_id", "image", "text", "category"):
                if key not in q:
                    raise UserError(f"{where}: missing key '{key}'")
            if str(q["image"]) not in captions:
                raise UserError(f"{where}: image {q['image']} has no caption in {files['context']}")
            rows.append((where, str(q["question_id"]), path_inside(root, str(q["image"]), where), str(q["image"]), q["text"],
                         captions[str(q["image"])], ref.get("text", ""), q["category"]))
        self._build(rows)

    def _load_table(self, data: str | Path, split: str, image_cache: str | Path | None) -> None:
        table = read_table(data, what="LLaVA-Bench table", required=PARQUET_COLUMNS, split=split)
        self._data_files, self._fingerprint_extra = table.files, table.fingerprint_extra
        cache = Path(image_cache) if image_cache else default_image_cache(self.data_fingerprint())
        rows = []
        for i, r in enumerate(table.rows):
            where = f"{table.source}: row {i}"
            image = image_cell_to_file(r["image"], cache, f"llava_wild_{r['question_id']}", where)
            cap = r["caption"]
            caption = "\n".join(cap) if isinstance(cap, list) else str(cap)
            unit = str(r.get("image_id") or caption)
            rows.append((where, str(r["question_id"]), image, unit, r["question"], caption, r["gpt_answer"],
                         r["category"]))
        self._build(rows)

    def _build(self, rows: list[tuple]) -> None:
        questions, seen = [], set()
        for where, qid, image, unit, text, caption, reference, category in rows:
            if category not in CATEGORIES:
                raise UserError(f"{where}: category must be one of {', '.join(CATEGORIES)}, got {category!r}")
            if qid in seen:
                raise UserError(f"{where}: duplicate question_id {qid}")
            seen.add(qid)
            questions.append(Question(qid, unit, image, text, {"reference": reference, "context": caption},
                                      {"category": category, "question": text}))
        if not questions:
            raise UserError(f"{self.source}: no questions")
        self._questions = questions

    # -- judging ---------------------------------------------------------------------------------------------
    def judge_request(self, item: Item, output: str | None) -> JudgeRequest:
        content = review_content(item.target["context"], item.meta["question"], item.target["reference"],
                                 output or "")
        system = SYSTEM_PROMPT if self.variant == "llava" else None
        return JudgeRequest.user(content, system=system, temperature=0.0, max_tokens=1024)

    def metrics(self) -> list[Metric]:
        return _metrics()

    def score(self, item: Item, output: str | None) -> Scored:
        category = item.meta["category"]
        reply = self._get_judge().complete(self.judge_request(item, output))
        scores = PARSERS[self.variant](reply.text) if reply.text is not None else None
        if scores is not None and not all(math.isfinite(x) for x in scores):
            scores = None
        stats = np.zeros(len(STAT_NAMES))
        details: dict[str, Any] = {"category": category, "review": reply.text, "cached": reply.cached}
        if scores is None:
            stats[_col("missing", category)] = 1
            details["judge_error"] = reply.error or "unparsable review"
            return Scored(scores={"judge_missing": 1}, stats=stats.tolist(), details=details)
        ref, model = scores
        stats[_col("ref", category)], stats[_col("model", category)], stats[_col("judged", category)] = ref, model, 1
        return Scored(scores={"reference_score": ref, "model_score": model, "judge_missing": 0},
                      stats=stats.tolist(), details=details)


__all__ = ["LlavaWildSuite", "parse_scores_llava", "parse_scores_lmms", "review_content"]
