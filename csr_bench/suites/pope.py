"""POPE (Polling-based Object Probing Evaluation, Li et al., EMNLP 2023): yes/no object-existence questions.

Question files are the official format of github:RUCAIBox/POPE: one JSON object per line,
`{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?",
"label": "yes"}`. Answer files are one JSON object per line with `question_id` and `answer` (POPE) or `text`
(LLaVA's `model_vqa_loader` output); answers are matched to questions by id, and a missing, extra or duplicated
id is an error (the official scripts zip the two files by position and silently truncate).

Answer parsers (`PARSERS`), each turning a free-form answer into "yes", "no" or None (unparsed):

- `rucaibox` (default), the rule of POPE's `evaluate.py` and LLaVA's `eval_pope.py`: keep the text before the
  first ".", delete ",", split on single spaces; "no" iff a token is exactly `No`, `not` or `no`, otherwise
  "yes". So "NO", "nope", "Not at all" and "" count as yes, and "Yes, there is no doubt." counts as no.
- `opera`, the rule of OPERA's `pope_eval.py`: delete every "." and "," in the whole answer, split on single
  spaces; "no" iff a token is `No`, `not`, `no` or `NO`, or ends with "n't"; otherwise "yes".
- `strict`, the rule of lmms-eval's POPE task: the stripped, lower-cased answer must be exactly "yes" or "no";
  anything else is unparsed.

Statistics per item are the columns `stat_names` = (tp, fp, fn, tn, unparsed), "yes" being the positive class.
An unparsed answer (strict parser only) is scored as lmms-eval scores it: wrong for accuracy (it stays in the
denominator), and in none of TP/FP/FN/TN, so it counts for neither precision nor recall. Metrics are
fractions, as the official script prints them; a division by zero (e.g. precision when nothing is answered
"yes", where the official script raises ZeroDivisionError and lmms-eval reports 0) gives NaN.

Deliberate difference from lmms-eval: its `pope_yes_ratio` is the fraction of *labels* that are "yes" (0.5 on
every POPE split); ours is, as in POPE's `evaluate.py`, the fraction of *answers* parsed as "yes", over all
answers including unparsed ones.

`build_pope_questions` builds POPE question files from any COCO-format instances file, following POPE's
`main.py`/`utils.py` procedure (see its docstring).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from csr_bench.core.files import atomic_write_text, path_inside, read_json, read_jsonl, require_file
from csr_bench.core.registry import suite
from csr_bench.core.types import ImagePart, Item, Message
from csr_bench.errors import UserError
from csr_bench.suites.base import Metric, Scored, Suite, ratio
from csr_bench.suites.suite_data import check_answers_match

# ---------------------------------------------------------------------------------------------------------
# Answer parsers


def parse_answer_rucaibox(answer: str) -> str:
    """POPE `evaluate.py` (and LLaVA `eval_pope.py`): first sentence, commas deleted, exact negation tokens."""
    first_sentence = answer.split(".")[0]
    tokens = first_sentence.replace(",", "").split(" ")
    return "no" if any(t in ("No", "not", "no") for t in tokens) else "yes"


def parse_answer_opera(answer: str) -> str:
    """OPERA `pope_eval.py`: whole answer, dots and commas deleted, negation tokens or a word ending in n't."""
    tokens = answer.replace(".", "").replace(",", "").split(" ")
    if any(t in ("No", "not", "no", "NO") or t.endswith("n't") for t in tokens):
        return "no"
    return "yes"


def parse_answer_strict(answer: str) -> str | None:
    """lmms-eval POPE task: the lower-cased, stripped answer must be exactly "yes" or "no"."""
    normalized = answer.lower().strip()
    return normalized if normalized in ("yes", "no") else None


PARSERS: dict[str, Callable[[str], str | None]] = {
    "rucaibox": parse_answer_rucaibox,
    "opera": parse_answer_opera,
    "strict": parse_answer_strict,
}

# ---------------------------------------------------------------------------------------------------------
# Metrics over the summed statistics (tp, fp, fn, tn, unparsed)

STAT_NAMES = ("tp", "fp", "fn", "tn", "unparsed")
TP, FP, FN, TN, UNPARSED = range(len(STAT_NAMES))
ALL_COLUMNS = [TP, FP, FN, TN, UNPARSED]


def _f1(s: np.ndarray) -> np.ndarray:
    # Same operations in the same order as the official script, so values agree to the last bit.
    precision = ratio(TP, [TP, FP])(s)
    recall = ratio(TP, [TP, FN])(s)
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, 2 * precision * recall / np.where(total != 0, total, 1), np.nan)


POPE_METRICS = (
    Metric("accuracy", ratio([TP, TN], ALL_COLUMNS), description="correct answers / all questions"),
    Metric("precision", ratio(TP, [TP, FP]), description='TP / answers parsed as "yes"'),
    Metric("recall", ratio(TP, [TP, FN]), description='TP / "yes" questions with a parsed answer'),
    Metric("f1", _f1, description="2 * precision * recall / (precision + recall)"),
    Metric(
        "yes_ratio",
        ratio([TP, FP], ALL_COLUMNS),
        higher_is_better=None,
        description='answers parsed as "yes" / all questions (0.5 is unbiased on POPE)',
    ),
    Metric(
        "unparsed",
        ratio(UNPARSED, ALL_COLUMNS),
        higher_is_better=False,
        description='fraction of answers that are neither "yes" nor "no" (strict parser; always 0 otherwise)',
    ),
)

# ---------------------------------------------------------------------------------------------------------
# Files


def _question_id(value: Any, where: str) -> str:
    # Official files use integers; strings are accepted too. Both become the item id's decimal text.
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise UserError(f"{where}: key 'question_id' must be an integer or a non-empty string, got {value!r}")
    return str(value)


def read_pope_questions(path: str | Path) -> list[dict[str, Any]]:
    """Validated questions of a POPE question file: dicts with id, image, text, label ("yes"/"no") and the line."""
    questions: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for lineno, obj in read_jsonl(path, "POPE question file"):
        where = f"{path}:{lineno}"
        for key in ("question_id", "image", "text", "label"):
            if key not in obj:
                raise UserError(f"{where}: missing key '{key}' (POPE questions have question_id, image, text, label)")
        qid = _question_id(obj["question_id"], where)
        if qid in first_line:
            raise UserError(f"{where}: duplicate question_id {qid} (first on line {first_line[qid]})")
        first_line[qid] = lineno
        image, text, label = obj["image"], obj["text"], obj["label"]
        if not isinstance(image, str) or not image:
            raise UserError(f"{where}: key 'image' must be a non-empty file name, got {image!r}")
        if not isinstance(text, str):
            raise UserError(f"{where}: key 'text' must be a string, got {text!r}")
        if not isinstance(label, str) or label.strip().lower() not in ("yes", "no"):
            raise UserError(f"{where}: key 'label' must be \"yes\" or \"no\", got {label!r}")
        questions.append({"id": qid, "image": image, "text": text, "label": label.strip().lower(), "line": lineno})
    if not questions:
        raise UserError(f"{path}: POPE question file has no questions")
    return questions


# ---------------------------------------------------------------------------------------------------------
# The suite


@suite("pope")
class PopeSuite(Suite):
    """POPE yes/no object probing; the resampling unit is the image (its questions form one cluster)."""

    name: ClassVar[str] = "pope"
    description: ClassVar[str] = "POPE object-hallucination probing: yes/no questions about objects in an image"
    stat_names: ClassVar[tuple[str, ...]] = STAT_NAMES
    headline: ClassVar[tuple[str, ...] | None] = ("accuracy", "f1", "yes_ratio")

    def __init__(
        self,
        questions: str | Path,
        *,
        image_root: str | Path | None = None,
        parser: str = "rucaibox",
        prompt_suffix: str = "",
    ):
        """`prompt_suffix` is appended to each question's text (LLaVA-1.5 and lmms-eval append
        "\\nAnswer the question using a single word or phrase."); empty by default, as in POPE's files."""
        if parser not in PARSERS:
            raise UserError(f"unknown POPE parser '{parser}'; known: {', '.join(PARSERS)}")
        self.questions_path = require_file(questions, "POPE question file")
        self.image_root = None if image_root is None else Path(image_root)
        self.parser = parser
        self.prompt_suffix = prompt_suffix
        self._parse = PARSERS[parser]
        self._questions = read_pope_questions(self.questions_path)

    @classmethod
    def for_scoring(cls, config: dict[str, Any]) -> "PopeSuite":
        """Metrics, unit statistics and `score` from a manifest's config, without the question file."""
        parser = config.get("parser", "rucaibox")
        if parser not in PARSERS:
            raise UserError(f"unknown POPE parser '{parser}' in the run's suite_config; known: {', '.join(PARSERS)}")
        obj = cls.__new__(cls)
        obj.parser = parser
        obj.prompt_suffix = config.get("prompt_suffix", "")
        obj._parse = PARSERS[parser]
        return obj

    def config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"parser": self.parser}
        if self.prompt_suffix:  # only when set, so default manifests stay {"parser": ...}
            config["prompt_suffix"] = self.prompt_suffix
        return config

    def data_fingerprint(self) -> str:
        return hashlib.sha256(self.questions_path.read_bytes()).hexdigest()

    def metrics(self) -> list[Metric]:
        return list(POPE_METRICS)

    def items(self) -> list[Item]:
        items = []
        root = self.image_root if self.image_root is not None else self.questions_path.parent
        for q in self._questions:
            image = path_inside(root, q["image"], f"{self.questions_path}:{q['line']}")
            items.append(
                Item(
                    id=q["id"],
                    unit=q["image"],
                    messages=(Message.user(ImagePart(image), q["text"] + self.prompt_suffix),),
                    target=q["label"],
                )
            )
        return items

    def read_predictions(self, answers: str | Path) -> dict[str, str]:
        """Answers by question id, in question order.

        Lines carry `question_id` and `answer` (or LLaVA's `text`). A file whose lines carry no `question_id`
        at all (the answer format of POPE's README, `{"question": ..., "answer": ...}`) is matched by position,
        which needs exactly one line per question.
        """
        n_questions = len(self._questions)
        by_line: list[tuple[int, str | None, str]] = []
        for lineno, obj in read_jsonl(answers, "POPE answer file"):
            where = f"{answers}:{lineno}"
            key = "answer" if "answer" in obj else "text" if "text" in obj else None
            if key is None:
                raise UserError(f"{where}: missing key 'answer' (or LLaVA's 'text')")
            if not isinstance(obj[key], str):
                raise UserError(f"{where}: key '{key}' must be a string, got {obj[key]!r}")
            qid = _question_id(obj["question_id"], where) if "question_id" in obj else None
            by_line.append((lineno, qid, obj[key]))

        if not by_line:
            raise UserError(f"{answers}: no answers (empty file); expected one JSON line per question of {self.questions_path}")
        with_id = [line for line in by_line if line[1] is not None]
        if not with_id:
            if len(by_line) != n_questions:
                raise UserError(
                    f"{answers} has {len(by_line)} answers without question_id but {self.questions_path} has "
                    f"{n_questions} questions; answers matched by position need exactly one per question"
                )
            return {q["id"]: text for q, (_, _, text) in zip(self._questions, by_line)}
        if len(with_id) != len(by_line):
            lineno = next(line[0] for line in by_line if line[1] is None)
            raise UserError(f"{answers}:{lineno}: missing key 'question_id' (other lines have one)")

        found: dict[str, tuple[int, str]] = {}
        for lineno, qid, text in with_id:
            assert qid is not None
            if qid in found:
                raise UserError(f"{answers}:{lineno}: duplicate question_id {qid} (first on line {found[qid][0]})")
            found[qid] = (lineno, text)
        question_ids = [q["id"] for q in self._questions]
        check_answers_match(answers, self.questions_path, n_answers=len(found), n_questions=n_questions,
                            missing=[i for i in question_ids if i not in found],
                            unexpected=sorted(set(found) - set(question_ids)), id_label="question_id")
        return {qid: found[qid][1] for qid in question_ids}

    def score(self, item: Item, output: str | None) -> Scored:
        # The official scripts have no notion of a missing output: it is read as an empty answer.
        parsed = self._parse(output if output is not None else "")
        label = item.target
        stats = [0.0] * len(STAT_NAMES)
        if parsed is None:
            stats[UNPARSED] = 1.0
        elif parsed == "yes":
            stats[TP if label == "yes" else FP] = 1.0
        else:
            stats[FN if label == "yes" else TN] = 1.0
        return Scored(
            scores={"correct": int(parsed == label), "unparsed": int(parsed is None)},
            stats=stats,
            details={"parsed": parsed, "label": label},
        )


# ---------------------------------------------------------------------------------------------------------
# Question builder

SPLITS = ("random", "popular", "adversarial")


def pope_question_text(category: str) -> str:
    """POPE's question, with "an" before a lower-case vowel as in the published files ("Is there an umbrella
    in the image?"). POPE's `utils.py` builds "an" by replacing every "a" of the template, which also turns
    "image" into "imange"; the published files do not have that slip, so neither do we."""
    article = "an" if category[:1] in ("a", "e", "i", "o", "u") else "a"
    return f"Is there {article} {category} in the image?"


def pope_questions_for_images(
    images: Sequence[tuple[str, Sequence[str]]],
    *,
    n_per_image: int,
    strategy: str,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """POPE's question procedure (`utils.pope`) on already selected images, each (file name, distinct objects).

    For each image, in order, and for i in 0..n_per_image-1: a "yes" question about its i-th object, then a
    "no" question about an object absent from the image and not yet asked about it:
    - random: uniform over the objects that occur in the selected images (rejection sampling with rng.choice);
    - popular: the most frequent such object over the selected images;
    - adversarial: the object that co-occurs most often with the i-th object over the selected images; when
      none is left, a random one as above.
    Counting ties keep first-seen order (images in order, objects in order), as the official code does;
    with the same rng state, the random choices are also the official ones. question_id counts from 1.
    """
    if strategy not in SPLITS:
        raise UserError(f"unknown POPE split '{strategy}'; known: {', '.join(SPLITS)}")
    frequency: Counter[str] = Counter()
    co_occurrence: dict[str, Counter[str]] = {}
    for _, objects in images:
        frequency.update(objects)
        for obj in objects:
            co_occurrence.setdefault(obj, Counter()).update(o for o in objects if o != obj)
    candidates = list(frequency)  # first-seen order, like the official dict's keys
    by_popularity = [obj for obj, _ in frequency.most_common()]  # stable: ties keep first-seen order
    by_co_occurrence = {obj: [o for o, _ in c.most_common()] for obj, c in co_occurrence.items()}

    questions: list[dict[str, Any]] = []

    def ask(image: str, obj: str, label: str) -> None:
        questions.append(
            {"question_id": len(questions) + 1, "image": image, "text": pope_question_text(obj), "label": label}
        )

    for image, objects in images:
        if len(objects) < n_per_image:
            raise UserError(f"image {image}: {len(objects)} objects, fewer than n_per_image={n_per_image}")
        present = set(objects)
        asked: set[str] = set()

        def usable(obj: str) -> bool:
            return obj not in present and obj not in asked

        def random_negative() -> str:
            if not any(usable(o) for o in candidates):
                # The official loop would spin forever here.
                raise UserError(
                    f"image {image}: no absent object left to ask about; only {len(candidates)} object "
                    f"categories occur in the selected images (need more categories or a smaller n_per_image)"
                )
            while True:
                obj = rng.choice(candidates)
                if usable(obj):
                    return obj

        for i in range(n_per_image):
            positive = objects[i]
            asked.add(positive)
            ask(image, positive, "yes")
            ranked = by_popularity if strategy == "popular" else by_co_occurrence[positive]
            negative = None if strategy == "random" else next((o for o in ranked if usable(o)), None)
            if negative is None:
                negative = random_negative()
            asked.add(negative)
            ask(image, negative, "no")
    return questions


def coco_image_objects(instances: str | Path) -> list[tuple[str, list[str]]]:
    """(file_name, distinct category names in order of first annotation) for every image of a COCO file."""
    data = read_json(instances, "COCO instances file")
    if not isinstance(data, dict):
        raise UserError(f"{instances}: expected a JSON object with images, annotations and categories (COCO)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"{instances}: key '{key}' must be a list (COCO instances format)")

    def field(entry: Any, key: str, section: str, index: int) -> Any:
        if not isinstance(entry, dict) or key not in entry:
            raise UserError(f"{instances}: {section}[{index}] has no key '{key}'")
        return entry[key]

    category_name = {
        field(c, "id", "categories", i): str(field(c, "name", "categories", i))
        for i, c in enumerate(data["categories"])
    }
    objects: dict[Any, list[str]] = {}
    file_name: dict[Any, str] = {}
    for i, img in enumerate(data["images"]):
        image_id = field(img, "id", "images", i)
        file_name[image_id] = str(field(img, "file_name", "images", i))
        objects[image_id] = []
    for i, ann in enumerate(data["annotations"]):
        image_id = field(ann, "image_id", "annotations", i)
        category_id = field(ann, "category_id", "annotations", i)
        if image_id not in objects:
            raise UserError(f"{instances}: annotations[{i}] has image_id {image_id!r}, not in 'images'")
        if category_id not in category_name:
            raise UserError(f"{instances}: annotations[{i}] has category_id {category_id!r}, not in 'categories'")
        name = category_name[category_id]
        if name not in objects[image_id]:
            objects[image_id].append(name)
    return [(file_name[image_id], objs) for image_id, objs in objects.items()]


def build_pope_questions(
    instances: str | Path,
    out_dir: str | Path,
    *,
    n_images: int | None = 500,
    n_per_image: int = 3,
    seed: int = 0,
    splits: Iterable[str] = SPLITS,
    dataset_name: str = "coco",
) -> dict[str, Path]:
    """Write `{dataset_name}_pope_{split}.json` for each split from a COCO-format instances file.

    Follows POPE's `main.py`: keep the images with at least `n_per_image` distinct annotated categories, sample
    `n_images` of them (all of them, in sampled order, when None), and run `pope_questions_for_images` on the
    sample; frequencies and co-occurrences are counted over the sampled images, and only categories occurring
    there are asked about. In the official file the objects of an image are a Python set, so which ones become
    the "yes" questions is arbitrary; here each image's objects are shuffled by the seed instead.

    Deterministic per seed: the image sample and object order come from `seed` alone, and each split has its
    own random stream, so building one split alone gives the same file as building all three.
    Returns {split: path}.
    """
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        given = ", ".join(map(repr, unknown)) or "(none given)"
        raise UserError(f"unknown POPE split {given}; known: {', '.join(SPLITS)}")
    if n_per_image < 1:
        raise UserError(f"n_per_image must be at least 1, got {n_per_image}")
    if n_images is not None and n_images < 1:
        raise UserError(f"n_images must be at least 1 or None (all images), got {n_images}")

    eligible = [(name, objs) for name, objs in coco_image_objects(instances) if len(objs) >= n_per_image]
    if n_images is not None and len(eligible) < n_images:
        raise UserError(
            f"{instances}: only {len(eligible)} images have at least {n_per_image} annotated categories; "
            f"n_images={n_images} asked for more"
        )
    if not eligible:
        raise UserError(f"{instances}: no image has at least {n_per_image} annotated categories")
    selection_rng = random.Random(f"pope-images-{seed}")
    selected = selection_rng.sample(eligible, len(eligible) if n_images is None else n_images)
    selected = [(name, selection_rng.sample(objs, len(objs))) for name, objs in selected]

    # Build every split before writing any, so a failure leaves no partial set of files.
    built = {
        split: pope_questions_for_images(
            selected, n_per_image=n_per_image, strategy=split, rng=random.Random(f"pope-{split}-{seed}")
        )
        for split in splits
    }
    paths: dict[str, Path] = {}
    for split, questions in built.items():
        paths[split] = Path(out_dir) / f"{dataset_name}_pope_{split}.json"
        atomic_write_text(paths[split], "".join(json.dumps(q) + "\n" for q in questions))
    return paths


__all__ = [
    "PARSERS",
    "POPE_METRICS",
    "PopeSuite",
    "SPLITS",
    "STAT_NAMES",
    "build_pope_questions",
    "coco_image_objects",
    "parse_answer_opera",
    "parse_answer_rucaibox",
    "parse_answer_strict",
    "pope_question_text",
    "pope_questions_for_images",
    "read_pope_questions",
]
