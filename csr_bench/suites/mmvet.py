"""MM-Vet (Yu et al., ICML 2024): 218 open questions over six integrated capabilities, graded 0-1 by an LLM.

Data, either format:
- the official folder (`mm-vet.zip`): `mm-vet.json` (`{"v1_0": {"imagename", "capability": [...], "question",
  "answer"}}`), images in `images/` (or `image_root`);
- lmms-lab parquet (`lmms-lab/MMVet`, split `test`): columns `question_id, image, question, answer,
  capability` (a list, or a comma-separated string as lmms-lab stores it).
Answer files: the official result file (`{"v1_0": "answer", ...}`), or LLaVA answer lines whose integer
`question_id` N stands for "v1_N" (LLaVA's `convert_mmvet_for_eval.py`).
Prompt: the question as is (LLaVA's `llava-mm-vet.jsonl`). lmms-eval prepends a "think step by step" pre-prompt;
pass `prompt_prefix` to reproduce that.

Grading, per `variant` (a reply must read as a number in [0, 1] after `content.split(" ")[0].strip()`):
- `official` (default; the official `mm-vet_evaluator.py`, which scored LLaVA-1.5 and the CSR paper's models): the
  few-shot prompt below + "\\n" + " | ".join([question, answer with " <AND> "/" <OR> " spaced, prediction, ""]) as the
  only message, max_tokens 3, temperature 0; an unusable reply is asked again with "\\nPredict the correctness of
  the answer (digit): " appended, at temperatures 0, 0.5, 1.0, 1.5 (the official schedule; its sixth request,
  whose reply it never reads, is skipped). Default judge model gpt-4-0613.
- `lmms`: lmms-eval 0.7.3 `mmvet_process_results`: its copy of the prompt (the table header reads
  "gpt_query_prompt" instead of "Question"), the row `{question} | {answer} | {prediction} |`, max_tokens 128, asked
  again with the same prompt at temperatures 0.5, 1.0, 1.5 when unusable. Default judge model gpt-4o-2024-11-20.
Where both evaluators then write 0.0 (no usable reply after the last try, or no reply at all), the item is
missing here: it is left out of every score and counted in `judge_missing`. lmms-eval also re-asks without
limit when a reply is a number outside [0, 1]; here that counts as unusable and moves to the next temperature.

Scores (percent, as `mm-vet_evaluator.py` writes them): `score` = 100 x mean grade; `cap_<capability>` for rec,
ocr, know, gen, spat, math = 100 x mean grade over the questions needing that capability. The unit is the question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from csr_bench.core.files import path_inside
from csr_bench.core.registry import suite
from csr_bench.core.types import Item
from csr_bench.errors import UserError
from csr_bench.judges import Judge, JudgeReply, JudgeRequest
from csr_bench.suites.base import Metric, Scored, group_ratios, ratio
from csr_bench.suites.suite_data import (
    Question,
    JudgedQuestionSuite,
    check_variant,
    default_image_cache,
    image_cell_to_file,
    is_table_source,
    read_keyed_questions,
    read_table,
    require_path,
)

VARIANTS = ("official", "lmms")
CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
STAT_NAMES = ("score", "judged", "missing") + tuple(f"{s}_{c}" for c in CAPABILITIES for s in ("score", "judged"))
DEFAULT_JUDGE_MODEL = {"official": "gpt-4-0613", "lmms": "gpt-4o-2024-11-20"}
RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "
PARQUET_COLUMNS = ("question_id", "image", "question", "answer", "capability")

_FEW_SHOT_ROWS = """--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""
_INSTRUCTIONS = (
    "Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> "
    "in the ground truth means it is totally right only when all elements in the ground truth are present in the "
    "prediction, and <OR> means it is totally right when any one element in the ground truth is present in the "
    "prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 "
    "(totally right). Just complete the last space of the correctness score."
)
# mm-vet_evaluator.py's `prompt` (a blank line after the instructions) and lmms-eval's MM_VET_PROMPT (no blank
# line, and "gpt_query_prompt" where the official header says "Question").
PROMPT_OFFICIAL = _INSTRUCTIONS + "\n\nQuestion | Ground truth | Prediction | Correctness\n" + _FEW_SHOT_ROWS
PROMPT_LMMS = _INSTRUCTIONS + "\ngpt_query_prompt | Ground truth | Prediction | Correctness\n" + _FEW_SHOT_ROWS


def spaced_answer(answer: str) -> str:
    return answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")


def grading_prompt(variant: str, question: str, answer: str, prediction: str) -> str:
    if variant == "official":
        return PROMPT_OFFICIAL + "\n" + " | ".join([question, spaced_answer(answer), prediction, ""])
    return f"{PROMPT_LMMS}\n{question} | {spaced_answer(answer)} | {prediction} |"


def parse_grade(content: str) -> float | None:
    """Both evaluators: the first space-separated token as a float in [0, 1]; None if not."""
    try:
        score = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return score if 0.0 <= score <= 1.0 else None


def grading_requests(variant: str, question: str, answer: str, prediction: str) -> list[JudgeRequest]:
    """The requests an evaluator sends for one item, in order, until one reply is usable."""
    prompt = grading_prompt(variant, question, answer, prediction)
    if variant == "official":
        first = JudgeRequest.user(prompt, temperature=0.0, max_tokens=3)
        retries = [JudgeRequest.user(prompt + RETRY_SUFFIX, temperature=t, max_tokens=3) for t in (0.0, 0.5, 1.0, 1.5)]
        return [first] + retries
    return [JudgeRequest.user(prompt, temperature=t, max_tokens=128) for t in (0.0, 0.5, 1.0, 1.5)]


def _metrics() -> list[Metric]:
    ms = [Metric("score", ratio(0, 1, 100.0), description="100 x mean grade over judged questions")]
    ms += group_ratios(STAT_NAMES, CAPABILITIES, "score", "judged", name="cap_{}",
                       description="100 x mean grade on {} questions")
    ms.append(Metric("judge_missing", lambda s: s[..., 2], higher_is_better=False,
                     description="questions without a usable grade (left out of the scores)"))
    return ms


@suite("mmvet")
class MMVetSuite(JudgedQuestionSuite):
    name: ClassVar[str] = "mmvet"
    description: ClassVar[str] = "MM-Vet: open questions over six capabilities, graded 0-1 by an LLM"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...]] = ("score", "judge_missing")
    default_judge_models: ClassVar[dict[str, str]] = DEFAULT_JUDGE_MODEL

    def __init__(self, data: str | Path, *, image_root: str | Path | None = None, variant: str = "official",
                 judge: Judge | str | None = None, judge_cache: str | Path | None = None, split: str = "test",
                 prompt_prefix: str = "", image_cache: str | Path | None = None):
        self.variant = check_variant(variant, VARIANTS, "MM-Vet")
        self.prompt_prefix = prompt_prefix
        self.source = str(data)
        p = Path(data)
        if p.is_dir() and (p / "mm-vet.json").exists():
            self._load_official(p / "mm-vet.json", image_root)
        elif p.is_file() and p.suffix == ".json":
            self._load_official(p, image_root)
        elif is_table_source(data) or not p.exists():
            self._load_table(data, split, image_cache)
        else:
            require_path(p / "mm-vet.json", "MM-Vet mm-vet.json")
        self._set_judge(judge, judge_cache)

    def _load_official(self, path: Path, image_root: str | Path | None) -> None:
        self.source = str(path)
        data = read_keyed_questions(path, "MM-Vet mm-vet.json", "mm-vet.json",
                                    ("imagename", "capability", "question", "answer"))
        root = Path(image_root) if image_root is not None else path.parent / "images"
        self._data_files = [path]
        rows = []
        for qid, q in data.items():
            where = f"{path}: question '{qid}'"
            rows.append((where, str(qid), path_inside(root, str(q["imagename"]), where), q))
        self._build(rows)

    def _load_table(self, data: str | Path, split: str, image_cache: str | Path | None) -> None:
        table = read_table(data, what="MM-Vet table", required=PARQUET_COLUMNS, split=split)
        self._data_files, self._fingerprint_extra = table.files, table.fingerprint_extra
        cache = Path(image_cache) if image_cache else default_image_cache(self.data_fingerprint())
        rows = []
        for i, r in enumerate(table.rows):
            where = f"{table.source}: row {i}"
            image = image_cell_to_file(r["image"], cache, f"mmvet_{r['question_id']}", where)
            rows.append((where, str(r["question_id"]), image, r))
        self._build(rows)

    def _build(self, rows: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        questions, seen = [], set()
        for where, qid, image, q in rows:
            if qid in seen:
                raise UserError(f"{where}: duplicate question id {qid}")
            seen.add(qid)
            caps = q["capability"]
            caps = [c.strip() for c in caps.split(",")] if isinstance(caps, str) else [str(c) for c in caps]
            unknown = [c for c in caps if c not in CAPABILITIES]
            if unknown or not caps:
                raise UserError(f"{where}: capability must be among {', '.join(CAPABILITIES)}, got {caps!r}")
            questions.append(Question(qid, qid, image, self.prompt_prefix + q["question"], q["answer"],
                                      {"capabilities": caps, "question": q["question"]}))
        if not questions:
            raise UserError(f"{self.source}: no questions")
        self._questions = questions

    def normalize_answer_id(self, raw: Any) -> str:
        # LLaVA's answer files number MM-Vet questions 0..217; the official ids are "v1_<n>".
        if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
            return f"v1_{raw}"
        return str(raw)

    def config_dict(self) -> dict[str, Any]:
        config = super().config_dict()
        if self.prompt_prefix:
            config["prompt_prefix"] = self.prompt_prefix
        return config

    def metrics(self) -> list[Metric]:
        return _metrics()

    def grade(self, item: Item, output: str | None) -> tuple[float | None, list[JudgeReply]]:
        judge = self._get_judge()
        replies = []
        for request in grading_requests(self.variant, item.meta["question"], item.target, output or ""):
            reply = judge.complete(request)
            replies.append(reply)
            if reply.text is None:
                break  # the call failed after the client's own retries: the item is missing
            grade = parse_grade(reply.text)
            if grade is not None:
                return grade, replies
        return None, replies

    def score(self, item: Item, output: str | None) -> Scored:
        grade, replies = self.grade(item, output)
        stats = np.zeros(len(STAT_NAMES))
        details: dict[str, Any] = {"capabilities": item.meta["capabilities"],
                                   "replies": [r.text for r in replies], "cached": all(r.cached for r in replies)}
        if grade is None:
            stats[2] = 1
            details["judge_error"] = next((r.error for r in replies if r.error), "no usable grade")
            return Scored(scores={"judge_missing": 1}, stats=stats.tolist(), details=details)
        stats[0], stats[1] = grade, 1
        for cap in item.meta["capabilities"]:
            c = 3 + 2 * CAPABILITIES.index(cap)
            stats[c], stats[c + 1] = grade, 1
        return Scored(scores={"grade": grade, "judge_missing": 0}, stats=stats.tolist(), details=details)


__all__ = ["MMVetSuite", "grading_prompt", "grading_requests", "parse_grade"]
