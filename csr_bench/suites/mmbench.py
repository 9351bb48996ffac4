"""MMBench with circular evaluation (Liu et al., 2023), bug-compatible with VLMEvalKit
(github:open-compass/VLMEvalKit: `vlmeval/dataset/utils/multiple_choice.py`, `vlmeval/utils/matching_util.py`,
`vlmeval/tools.py`'s CIRCULAR).

A circular TSV holds every question once per rotation of its options: row index `k·1e6 + i` is rotation k of
question i (`g_index`, from a `g_index` column when present, else `index % 1e6`). A question (the group; the
resampling unit, `unit` = its original index) is a hit only if every rotation present is answered right.
Groups are the rows whose index equals their g_index; a rotation whose rotation-0 row is absent is ignored, as
VLMEvalKit ignores it (`orphan_rows` lists them).

Extraction first tries the rules (`extract_choice`), with the matcher of a VLMEvalKit version:

- `current` (commit e8e78f05): an option letter that stands alone (after deleting `.()[],:;!*#{}`) counts only
  among the last 4 words, then "answer is X" (any case, so "The answer is a book" picks A), then the option
  text, but only for answers at most twice as long as all option texts together;
- `legacy` (commit c026693a, before August 2025): a lone option letter anywhere ("A plate of food on the
  table" picks A), no "answer is X" rule, option text at any length.

Both: an answer containing "Failed to obtain answer via API" is undecided; one of four refusal phrases, or a lone
"Z" with no option letter, is "Z" (wrong); two or more lone letters fall through to the later rules. A
rotation the rules decide wrong makes the group a miss (`rule_miss`); all decided right is a `rule_hit`.
Otherwise the undecided rotations go to the judge (an LLM behind `judge(prompt) -> str | None`) with
VLMEvalKit's matching prompt (`judge_prompt`), whose reply is parsed by the same rules; up to 3 tries, as
VLMEvalKit. Where VLMEvalKit then draws a random letter, or has no judge ("exact matching"), the rotation is
`needs_judge`: it scores 0 and the group is counted in the `needs_judge` metric.

Predictions are read as VLMEvalKit reads them: pandas' `read_csv(sep="\\t")` with its defaults, so an empty cell
or one of pandas' NA strings ("None", "NA", "null", "nan", ...) in `prediction` becomes the text "nan", and an
option cell holding one of them is no option at all; a column of numbers holds floats ("3" is read as 3.0).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import string
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from csr_bench.core.files import path_inside
from csr_bench.core.registry import suite
from csr_bench.core.types import ImagePart, Item, Message
from csr_bench.errors import UserError
from csr_bench.suites.base import Metric, Scored, Suite, ratio
from csr_bench.suites.suite_data import default_image_cache, image_cell_to_file

MATCHERS = ("current", "legacy")
JUDGE_TRIES = 3

# VLMEvalKit's names for MMBench's l2-categories in its report (others are reported as they are).
L2_ABBREVIATIONS = {
    "coarse_perception": "CP",
    "finegrained_perception (instance-level)": "FP-S",
    "finegrained_perception (cross-instance)": "FP-C",
    "logic_reasoning": "LR",
    "relation_reasoning": "RR",
    "attribute_reasoning": "AR",
}

Judge = Callable[[str], "str | None"]

# ---------------------------------------------------------------------------------------------------------
# Rule-based extraction (VLMEvalKit's can_infer, with the environment variable VERBOSE unset)

_API_FAILURE = "Failed to obtain answer via API"
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_PUNCTUATION_AS_SPACE = ".()[],:;!*#{}"
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def _option_letter(answer: str, choices: dict[str, Any], matcher: str) -> str | None:
    if _API_FAILURE in answer:
        return None
    if any(phrase in answer for phrase in _REFUSALS):
        return "Z"
    words = answer
    for ch in _PUNCTUATION_AS_SPACE:
        words = words.replace(ch, " ")
    tokens = words.split()
    letters_present = [k for k in choices if k in tokens]
    if len(letters_present) == 1:
        letter = letters_present[0]
        # `current` only believes a lone letter among the last four words ("A dog runs..." is not option A).
        if matcher == "legacy" or tokens.index(letter) > len(tokens) - 5:
            return letter
    elif not letters_present and "Z" in tokens:
        return "Z"
    if matcher == "current":
        match = _ANSWER_IS.search(answer)
        if match and match.group(1).upper() in choices:
            return match.group(1).upper()
    return None


def _option_text(answer: str, choices: dict[str, Any], matcher: str) -> str | None:
    answer = answer.lower()
    if matcher == "current" and len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    # VLMEvalKit lower-cases the caller's choices in place; a later call (the judge's reply) sees them so.
    for k in choices:
        choices[k] = str(choices[k]).lower()
    found = [k for k in choices if choices[k] in answer]
    return found[0] if len(found) == 1 else None


def extract_choice(answer: Any, choices: dict[str, Any], matcher: str = "current") -> str | None:
    """The option letter (or "Z") the rules read in `answer`, or None where they cannot decide.

    `choices` maps option letters to option texts; like VLMEvalKit, this may lower-case its texts in place.
    """
    if matcher not in MATCHERS:
        raise UserError(f"unknown MMBench matcher '{matcher}'; known: {', '.join(MATCHERS)}")
    text = str(answer)
    return _option_letter(text, choices, matcher) or _option_text(text, choices, matcher)


# ---------------------------------------------------------------------------------------------------------
# The judge's prompt (VLMEvalKit's build_prompt / build_prompt_cn and build_option_str)

_JUDGE_TEMPLATE_EN = (
    "You are an AI assistant who will help me to match "
    "an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, "
    "and you need to find which option is most similar to the answer. "
    "If the meaning of all options are significantly different from the answer, output Z. "
    "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\n"
    "Example 2: \n"
    "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: Spider\nYour output: Z\n"
    "Example 3: \n"
    "Question: {}?\nOptions: {}\nAnswer: {}\nYour output: "
)
_JUDGE_TEMPLATE_CN = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
    "例 1:"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
    "例 3: \n"
    "问题: {}?\n选项: {}\n答案: {}\n输出: "
)
_CJK = re.compile("[\u4e00-\u9fff]")


def judge_prompt(question: str, choices: dict[str, Any], prediction: str) -> str:
    """The prompt VLMEvalKit sends its judge to match `prediction` to an option (Chinese if the question is)."""
    options = "There are several options: \n" + "".join(f"{k}. {v}\n" for k, v in choices.items())
    template = _JUDGE_TEMPLATE_CN if _CJK.search(question) else _JUDGE_TEMPLATE_EN
    return template.format(question, options, prediction)


# ---------------------------------------------------------------------------------------------------------
# Reading TSVs


def _is_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, (str, bytes)) and bool(pd.isna(value)))


def _option_columns(columns: Iterable[str]) -> list[str]:
    return [c for c in string.ascii_uppercase if c in columns]


def read_mmbench_tsv(path: str | os.PathLike, *, require: Sequence[str] = ("index", "question", "answer", "A", "B")):
    """A VLMEvalKit TSV as VLMEvalKit loads it (pandas defaults), column names other than option letters
    lower-cased, `index` made int. A missing required column or a bad index is a UserError."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: MMBench TSV not found" if not p.exists() else f"{p}: expected a TSV file")
    try:
        data = pd.read_csv(p, sep="\t")
    except pd.errors.EmptyDataError:
        raise UserError(f"{p}: empty TSV file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{p}: not a readable TSV ({str(e).splitlines()[0]})") from None
    data.columns = [c if c in string.ascii_uppercase else str(c).lower() for c in data.columns]
    for column in require:
        if column not in data.columns:
            raise UserError(
                f"{p}: missing column '{column}' "
                "(an MMBench TSV has index, question, A-D, answer, category, l2-category; predictions add prediction)"
            )
    data["index"] = [_as_int(x, p, row, "index") for row, x in enumerate(data["index"])]
    if "g_index" in data.columns:
        data["g_index"] = [_as_int(x, p, row, "g_index") for row, x in enumerate(data["g_index"])]
    duplicated = data["index"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise UserError(f"{p}:{row + 2}: duplicate index {data['index'].iloc[row]}")
    return data


def _as_int(value: Any, path: Path, row: int, column: str) -> int:
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{path}:{row + 2}: column '{column}' must be an integer, got {value!r}") from None


def _choices(row: dict[str, Any], option_columns: Sequence[str]) -> dict[str, Any]:
    return {c: row[c] for c in option_columns if not _is_missing(row[c])}


def _category(value: Any) -> str | None:
    return None if _is_missing(value) else str(value)


# ---------------------------------------------------------------------------------------------------------
# Building circular rows (VLMEvalKit's tools.CIRCULAR, on a DataFrame)


def _words_of(text: str) -> list[str]:
    return "".join(ch if ch in string.ascii_letters or ch == " " else " " for ch in text).split()


def _row_where(row: dict[str, Any]) -> str:
    return f"row with index {row.get('index')!r}"


def build_circular_rows(base, *, source: str = "MMBench TSV"):
    """The circular rows VLMEvalKit's CIRCULAR builds from a base TSV's DataFrame (index, A.., answer, ...).

    A question with n options (n >= 2; the options A.. up to the last one filled) gets n rotations: rotation 0
    is the row itself; rotation i moves every option one place further (with 4 options: rotation 1 puts the
    texts of A, B, C, D at D, A, B, C), so `answer` follows its text; its index is index + i·OFFSET, its
    `image` the original index (a reference to rotation 0's image). OFFSET is 1e6, times 10 until it exceeds
    every index. Each row gets `g_index`, the original index. Rows are grouped by option count in order of first
    appearance, each group's rotation 0 rows first, then its rotation 1 rows, and so on.

    "Abnormal" rows are kept once, unrotated: an option text containing two different option letters as
    words ("A and B"), an option text that is a substring of "ABC...Z" ("A", "NO", "XYZ"), no options, or an
    answer that is not one letter among the row's options. Where VLMEvalKit crashes (an option after an empty
    one, a single option, a non-text option, an answer that is empty or not text) this raises a UserError.
    """
    import pandas as pd

    if "index" not in base.columns or "answer" not in base.columns:
        raise UserError(f"{source}: missing column '{'index' if 'index' not in base.columns else 'answer'}'")
    indices = [int(x) for x in base["index"]]
    offset = 1e6
    while indices and max(indices) >= offset:
        offset *= 10
    option_columns = []
    for letter in string.ascii_uppercase:
        if letter in base.columns:
            if len(option_columns) != string.ascii_uppercase.index(letter):
                gap = string.ascii_uppercase[len(option_columns)]
                raise UserError(f"{source}: option column '{letter}' without column '{gap}'")
            option_columns.append(letter)

    groups: dict[Any, list[int]] = {}
    records = base.to_dict("records")
    for position, row in enumerate(records):
        n_options = 0
        for j, letter in enumerate(option_columns):
            if not _is_missing(row[letter]):
                if n_options != j:
                    empty = option_columns[n_options]
                    raise UserError(f"{source}: {_row_where(row)}: option {letter} follows an empty option {empty}")
                n_options = j + 1
        if n_options == 1:
            raise UserError(f"{source}: {_row_where(row)}: a single option; circular evaluation needs 2 or more")
        key: Any = n_options if n_options and not _is_abnormal(row, option_columns, source) else "abnormal"
        answer = row["answer"]
        if key != "abnormal":
            if not isinstance(answer, str) or answer == "":
                raise UserError(f"{source}: {_row_where(row)}: answer must be an option letter, got {answer!r}")
            if len(answer) > 1 or answer not in string.ascii_uppercase[:n_options]:
                key = "abnormal"
        groups.setdefault(key, []).append(position)

    parts = []
    for key, positions in groups.items():
        block = base.iloc[positions].copy()
        block["g_index"] = block["index"]
        if key == "abnormal":
            parts.append(block)
            continue
        labels = list(string.ascii_uppercase[:key])
        rotations = [labels]
        turning = deque(labels)
        for _ in range(key - 1):
            turning.rotate(1)
            rotations.append(list(turning))
        parts.append(block)
        for i, rotation in enumerate(rotations[1:], start=1):
            rotated = block.copy()
            rotated["index"] = [int(x + offset * i) for x in block["index"]]
            rotated["g_index"] = [int(x % offset) for x in rotated["index"]]
            rotated["image"] = rotated["g_index"]
            moved = dict(zip(labels, rotation))
            rotated["answer"] = [moved[a] for a in block["answer"]]
            for old, new in moved.items():
                rotated[new] = block[old].to_numpy()
            parts.append(rotated)
    out = pd.concat(parts, ignore_index=True) if parts else base.copy()
    out["index"] = [int(x) for x in out["index"]]
    out["g_index"] = [int(x) for x in out["g_index"]]
    return out


def _is_abnormal(row: dict[str, Any], option_columns: Sequence[str], source: str) -> bool:
    choices = _choices(row, option_columns)
    has_label = False
    for letter, text in choices.items():
        if not isinstance(text, str):
            raise UserError(f"{source}: {_row_where(row)}: option {letter} must be text, got {text!r}")
        if len({w for w in _words_of(text) if w in choices}) > 1:
            return True
        # VLMEvalKit's `text in string.ascii_uppercase` is a substring test: "NO" and "XYZ" count as labels.
        if text in string.ascii_uppercase:
            has_label = True
    return has_label


# ---------------------------------------------------------------------------------------------------------
# Statistics: per rotation (item), folded per question (unit)


@dataclass
class _Layout:
    l2_categories: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def names(self) -> tuple[str, ...]:
        out = ["groups", "hits", "needs_judge"]
        for kind, values in (("l2-category", self.l2_categories), ("category", self.categories)):
            for v in values:
                out += [f"{kind}/{v}/groups", f"{kind}/{v}/hits"]
        return tuple(out)


GROUPS, HITS, NEEDS_JUDGE = 0, 1, 2


def group_status(statuses: Sequence[str]) -> str:
    """A question's status from its rotations' statuses (all rotations must be right for a hit)."""
    if "rule_miss" in statuses:
        return "rule_miss"
    if "judge_miss" in statuses:
        return "judge_miss"
    if "needs_judge" in statuses:
        return "needs_judge"
    return "judge_hit" if "judge_hit" in statuses else "rule_hit"


def questions_needing_judge(rotations: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    """The questions (units) left undecided, from (unit, details) of their scored rotations (samples or Scored)."""
    statuses: dict[str, list[str]] = {}
    for unit, details in rotations:
        statuses.setdefault(unit, []).append(str(details.get("status")))
    return [unit for unit, s in statuses.items() if group_status(s) == "needs_judge"]


# ---------------------------------------------------------------------------------------------------------
# The suite


@dataclass(frozen=True)
class _Row:
    index: int
    g_index: int
    question: str
    hint: str | None
    choices: dict[str, Any]
    answer: Any
    category: str | None
    l2_category: str | None
    image: Any
    image_path: str | None
    prediction: str | None
    line: int


@suite("mmbench")
class MmbenchSuite(Suite):
    """MMBench circular evaluation; the resampling unit is the question (all its rotations)."""

    name: ClassVar[str] = "mmbench"
    description: ClassVar[str] = (
        "MMBench multiple choice with circular evaluation (every rotation of the options must be right)"
    )
    stat_names: ClassVar[tuple[str, ...]] = _Layout().names()
    headline: ClassVar[tuple[str, ...] | None] = ("overall",)

    def __init__(
        self,
        data: str | os.PathLike | None = None,
        *,
        matcher: str = "current",
        judge: Judge | None = None,
        judge_name: str | None = None,
        image_cache: str | os.PathLike | None = None,
    ):
        """`data`: an MMBench TSV, base (circular rows are built) or already circular; None to only score a
        predictions TSV (`read_predictions`). `matcher`: "current" or "legacy" VLMEvalKit rules. `judge`:
        `judge(prompt) -> reply | None` for the questions the rules cannot decide; `judge_name` is recorded in
        the config (default: the judge's `name` attribute). `image_cache`: where base64 images are written."""
        if matcher not in MATCHERS:
            raise UserError(f"unknown MMBench matcher '{matcher}'; known: {', '.join(MATCHERS)}")
        self.matcher = matcher
        self.judge = judge
        self.judge_name = None if judge is None else (judge_name or str(getattr(judge, "name", "judge")))
        self.data = None if data is None else Path(data)
        self.image_cache = None if image_cache is None else Path(image_cache)
        self._layout = _Layout()
        self.stat_names = self._layout.names()
        self._rows: list[_Row] | None = None
        self._image_by_index: dict[int, Any] = {}
        self.orphan_rows: list[int] = []
        self._fingerprint = ""
        if self.data is not None:
            frame = read_mmbench_tsv(self.data)
            if not _is_circular(frame):
                frame = build_circular_rows(frame, source=str(self.data))
            self._load(frame, self.data, predictions=False)

    @classmethod
    def for_scoring(cls, config: dict[str, Any]) -> "MmbenchSuite":
        obj = cls(matcher=config.get("matcher", "current"))
        obj.judge_name = config.get("judge")
        obj._set_layout(_Layout(list(config.get("l2_categories", [])), list(config.get("categories", []))))
        return obj

    def _set_layout(self, layout: _Layout) -> None:
        self._layout = layout
        self.stat_names = layout.names()

    def config_dict(self) -> dict[str, Any]:
        return {
            "matcher": self.matcher,
            "judge": self.judge_name,
            "l2_categories": list(self._layout.l2_categories),
            "categories": list(self._layout.categories),
        }

    def data_fingerprint(self) -> str:
        return self._fingerprint

    # -- loading

    def _load(self, frame, path: Path, *, predictions: bool) -> None:
        columns = set(frame.columns)
        options = _option_columns(columns)
        if "g_index" not in columns:
            frame = frame.assign(g_index=[int(x % 1e6) for x in frame["index"]])
        lines = {idx: n + 2 for n, idx in enumerate(frame["index"])}  # file line (header is line 1)
        frame = frame.sort_values(by="index", kind="stable")
        records = frame.to_dict("records")
        main = {r["index"]: r for r in records if r["index"] == r["g_index"]}
        self._image_by_index = {r["index"]: r.get("image") for r in records}
        rows, orphans = [], []
        for r in records:
            head = main.get(r["g_index"])
            if head is None:
                orphans.append(r["index"])
                continue
            rows.append(
                _Row(
                    index=r["index"],
                    g_index=r["g_index"],
                    question=str(r["question"]),
                    hint=None if _is_missing(r.get("hint")) else str(r["hint"]),
                    choices=_choices(r, options),
                    answer=r["answer"],
                    # VLMEvalKit reports the categories of the rotation-0 row.
                    category=_category(head.get("category")),
                    l2_category=_category(head.get("l2-category")),
                    image=r.get("image"),
                    image_path=None if _is_missing(r.get("image_path")) else str(r["image_path"]),
                    prediction=str(r["prediction"]) if predictions else None,
                    line=lines[r["index"]],
                )
            )
        # Rows are grouped by question in index order (rotation 0 first), as VLMEvalKit's sorted frame.
        order = {g: n for n, g in enumerate(sorted(main))}
        rows.sort(key=lambda row: (order[row.g_index], row.index))
        self._rows = rows
        self.orphan_rows = orphans
        self._tsv = path
        l2 = sorted({row.l2_category for row in rows if row.l2_category is not None})
        cats = sorted({row.category for row in rows if row.category is not None})
        self._set_layout(_Layout(l2, cats))
        payload = repr(
            [(row.index, row.g_index, row.question, sorted(row.choices.items()), str(row.answer)) for row in rows]
        )
        self._fingerprint = hashlib.sha256(payload.encode()).hexdigest()

    def read_predictions(self, path: str | os.PathLike) -> list[tuple[Item, str]]:
        """(item, prediction) for each rotation of each question of a VLMEvalKit predictions TSV (circular
        rows with a `prediction` column), questions in index order. The file becomes the suite's data: its
        categories define the metrics."""
        p = Path(path)
        frame = read_mmbench_tsv(p, require=("index", "question", "answer", "A", "B", "prediction"))
        self._load(frame, p, predictions=True)
        assert self._rows is not None
        return [(self._item(row, images=False), row.prediction or "") for row in self._rows]

    def items(self) -> list[Item]:
        if self._rows is None:
            raise UserError("MMBench: no data given (a VLMEvalKit MMBench TSV)")
        return [self._item(row, images=True) for row in self._rows]

    def _image(self, row: _Row, *, write: bool) -> str:
        """The image's path; with write=False (scoring predictions) a reference that needs no image data."""
        if row.image_path is not None:
            return path_inside(self._tsv.parent, row.image_path, f"{self._tsv}:{row.line}")
        if not write:
            return f"{self._tsv}#g_index={row.g_index}"
        value = row.image
        # A short number is a reference to another row's image (VLMEvalKit's de-duplication; rotations).
        for _ in range(3):
            ref = _image_reference(value)
            if ref is None:
                break
            if ref not in self._image_by_index:
                raise UserError(f"{self._tsv}:{row.line}: image refers to index {ref}, which is not in the file")
            value = self._image_by_index[ref]
        if _is_missing(value) or _image_reference(value) is not None:
            raise UserError(f"{self._tsv}:{row.line}: no image (column 'image' with base64 data, or 'image_path')")
        try:
            data = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise UserError(f"{self._tsv}:{row.line}: column 'image' is not base64 image data") from None
        cache = self.image_cache or default_image_cache(self._fingerprint)
        return image_cell_to_file(data, cache, str(row.g_index), f"{self._tsv}:{row.line}")

    def _item(self, row: _Row, *, images: bool) -> Item:
        # VLMEvalKit's ImageMCQDataset.build_prompt.
        text = f"Hint: {row.hint}\n" if row.hint is not None else ""
        text += f"Question: {row.question}\n"
        if row.choices:
            text += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in row.choices.items())
            text += "Please select the correct answer from the options above. \n"
        image = self._image(row, write=images)
        return Item(
            id=str(row.index),
            unit=str(row.g_index),
            messages=(Message.user(ImagePart(image), text),),
            target=None if _is_missing(row.answer) else str(row.answer),
            meta={
                "question": row.question,
                "choices": dict(row.choices),
                "category": row.category,
                "l2-category": row.l2_category,
                "rotation": (row.index - row.g_index) // 1_000_000,
            },
        )

    # -- scoring

    def metrics(self) -> list[Metric]:
        names = self.stat_names
        out = [Metric("overall", ratio(HITS, GROUPS), description="questions with every rotation right / questions")]
        taken = {"overall", "needs_judge"}
        for kind, values in (("l2-category", self._layout.l2_categories), ("category", self._layout.categories)):
            for v in values:
                label = L2_ABBREVIATIONS.get(v, v) if kind == "l2-category" else v
                if label in taken:
                    label = f"{kind}:{v}"
                taken.add(label)
                g, h = names.index(f"{kind}/{v}/groups"), names.index(f"{kind}/{v}/hits")
                out.append(Metric(label, ratio(h, g), description=f"circular accuracy on {kind} {v}"))
        out.append(
            Metric(
                "needs_judge",
                lambda s: s[..., NEEDS_JUDGE],
                higher_is_better=False,
                description="questions the rules could not decide and no judge did (scored as misses)",
            )
        )
        return out

    def _judge_rotation(self, item: Item, output: str, choices: dict[str, Any]) -> tuple[str | None, list[str | None]]:
        assert self.judge is not None
        prompt = judge_prompt(str(item.meta.get("question", "")), dict(item.meta.get("choices", {})), output)
        replies: list[str | None] = []
        for _ in range(JUDGE_TRIES):
            reply = self.judge(prompt)
            replies.append(reply)
            if reply is None or _API_FAILURE in reply:
                continue
            letter = extract_choice(reply, choices, self.matcher)
            if letter:
                return letter, replies
        return None, replies

    def score(self, item: Item, output: str | None, *, use_judge: bool = True) -> Scored:
        """One rotation. `use_judge=False` leaves an undecided rotation as needs_judge without asking."""
        choices = dict(item.meta.get("choices", {}))
        text = "" if output is None else str(output)
        letter = extract_choice(text, choices, self.matcher)
        details: dict[str, Any] = {"extracted": letter, "answer": item.target}
        if letter is not None:
            status = "rule_hit" if letter == item.target else "rule_miss"
        elif self.judge is not None and use_judge:
            letter, replies = self._judge_rotation(item, text, choices)
            details["judge_replies"] = replies
            details["judged"] = letter
            status = "needs_judge" if letter is None else "judge_hit" if letter == item.target else "judge_miss"
        else:
            status = "needs_judge"
        details["status"] = status
        right = status in ("rule_hit", "judge_hit")
        stats = [0.0] * len(self.stat_names)
        stats[GROUPS] = 1.0
        stats[HITS] = float(right)
        stats[NEEDS_JUDGE] = float(status == "needs_judge")
        for kind, value in (("l2-category", item.meta.get("l2-category")), ("category", item.meta.get("category"))):
            name = f"{kind}/{value}/groups"
            if value is not None and name in self.stat_names:
                stats[self.stat_names.index(name)] = 1.0
                stats[self.stat_names.index(f"{kind}/{value}/hits")] = float(right)
        return Scored(scores={"correct": int(right)}, stats=stats, details=details)

    def score_predictions(self, pairs: Sequence[tuple[Item, str | None]]) -> list[Scored]:
        """Score rotations question by question, asking the judge only where VLMEvalKit does: not for a
        question a rotation already misses by the rules, and no further once a judged rotation is wrong.
        Every rotation's details get `group_status`."""
        by_unit: dict[str, list[int]] = {}
        for n, (item, _) in enumerate(pairs):
            by_unit.setdefault(item.unit, []).append(n)
        results: list[Scored | None] = [None] * len(pairs)
        for members in by_unit.values():
            first = {n: self.score(pairs[n][0], pairs[n][1], use_judge=False) for n in members}
            statuses = {n: s.details["status"] for n, s in first.items()}
            if self.judge is not None and "rule_miss" not in statuses.values():
                for n in members:
                    if statuses[n] == "needs_judge":
                        first[n] = self.score(pairs[n][0], pairs[n][1])
                        statuses[n] = first[n].details["status"]
                        if statuses[n] == "judge_miss":
                            break
            overall = group_status(list(statuses.values()))
            for n in members:
                first[n].details["group_status"] = overall
                results[n] = first[n]
        return [r for r in results if r is not None]

    def unit_stats(self, item_stats: np.ndarray) -> np.ndarray:
        rows = np.asarray(item_stats, dtype=float).reshape(-1, len(self.stat_names))
        out = np.zeros(len(self.stat_names))
        # A question counts once; it is a hit only if every rotation is right.
        out[GROUPS] = rows[:, GROUPS].max(initial=0)
        out[HITS] = rows[:, HITS].min(initial=1) if len(rows) else 0.0
        wrong = (1 - rows[:, HITS] - rows[:, NEEDS_JUDGE]) > 0
        out[NEEDS_JUDGE] = float(rows[:, NEEDS_JUDGE].any() and not wrong.any())
        for j in range(NEEDS_JUDGE + 1, len(self.stat_names), 2):
            out[j] = rows[:, j].max(initial=0)
            out[j + 1] = out[HITS] if out[j] else 0.0
        return out


def _image_reference(value: Any) -> int | None:
    """The index an image cell refers to, or None when it holds image data (or nothing)."""
    if isinstance(value, (bool, np.bool_)) or _is_missing(value):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    text = str(value)
    return int(text) if len(text) <= 64 and text.isdigit() else None


def _is_circular(frame) -> bool:
    if "g_index" in frame.columns:
        return bool((frame["g_index"] != frame["index"]).any())
    return bool((frame["index"] >= 1_000_000).any())


__all__ = [
    "L2_ABBREVIATIONS",
    "MATCHERS",
    "MmbenchSuite",
    "build_circular_rows",
    "extract_choice",
    "group_status",
    "judge_prompt",
    "questions_needing_judge",
    "read_mmbench_tsv",
]
