"""POPE suite: parsers, metrics against the official scorers' printed numbers, file errors, question builder.

Expected numbers come from running the official code on the fixtures (see fixtures/pope/README.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from csr_bench.core.registry import suites
from csr_bench.core.types import ImagePart, TextPart
from csr_bench.errors import UserError
from csr_bench.suites.pope import (
    PARSERS,
    PopeSuite,
    build_pope_questions,
    coco_image_objects,
    pope_question_text,
    pope_questions_for_images,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pope"
QUESTIONS = FIXTURES / "questions.json"
ANSWERS = FIXTURES / "answers.json"


def sums_for(suite: PopeSuite, answers: Path | dict[str, str]) -> np.ndarray:
    preds = suite.read_predictions(answers) if isinstance(answers, Path) else answers
    rows = [suite.score(item, preds[item.id]).stats for item in suite.items()]
    return np.asarray(rows, dtype=float).sum(axis=0)


def metric_values(suite: PopeSuite, sums: np.ndarray) -> dict[str, float]:
    return {m.name: float(m(sums)) for m in suite.metrics()}


def read_official_printout(path: Path) -> dict[str, float]:
    """The numbers POPE's evaluate.py (and its copies in LLaVA and OPERA) print."""
    lines = path.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("TP\tFP\tTN\tFN"))
    tp, fp, tn, fn = (int(x) for x in lines[header + 1].split("\t"))
    out: dict[str, float] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    names = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1 score": "f1",
             "Yes ratio": "yes_ratio"}
    for line in lines[header + 2:]:
        label, _, value = line.partition(": ")
        if label in names:
            out[names[label]] = float(value)
    return out


def column(sums: np.ndarray, name: str) -> float:
    return float(sums[PopeSuite.stat_names.index(name)])


# ---------------------------------------------------------------------------------------------------------
# Parsers


@pytest.mark.parametrize(
    "answer, rucaibox, opera, strict",
    [
        ("Yes", "yes", "yes", "yes"),
        ("No", "no", "no", "no"),
        ("No.", "no", "no", None),
        ("no,", "no", "no", None),
        ("NO", "yes", "no", "no"),  # POPE checks case-sensitive tokens; OPERA added "NO"
        ("nope", "yes", "yes", None),
        ("", "yes", "yes", None),
        ("Not at all", "yes", "yes", None),  # "Not" is not "not"
        ("Yes, there is no doubt.", "no", "no", None),
        ("Yes. But there is no cat.", "yes", "no", None),  # POPE reads only the first sentence
        ("There isn't a dog.", "yes", "no", None),  # OPERA: a word ending in n't
        ("no.yes", "no", "yes", None),  # OPERA deletes dots: "noyes"
        ("No\nThere is a cat", "yes", "yes", None),  # split on single spaces only: "No\nThere"
        (" no ", "no", "no", "no"),
        ("YES\n", "yes", "yes", "yes"),
    ],
)
def test_parsers_quirks(answer, rucaibox, opera, strict):
    assert PARSERS["rucaibox"](answer) == rucaibox
    assert PARSERS["opera"](answer) == opera
    assert PARSERS["strict"](answer) == strict


def test_opera_parser_matches_official_predictions():
    # First line of OPERA's printout: recorder()'s predictions, 1 = yes, 0 = no.
    first = (FIXTURES / "expected_opera_answers.txt").read_text().splitlines()[0]
    official = json.loads(first.removeprefix("preds "))
    answers = [json.loads(line)["answer"] for line in ANSWERS.read_text().splitlines()]
    assert [1 if PARSERS["opera"](a) == "yes" else 0 for a in answers] == official


def test_strict_parser_matches_lmms_eval_predictions():
    official = json.loads((FIXTURES / "expected_lmms_eval_answers.json").read_text())
    answers = [json.loads(line)["answer"] for line in ANSWERS.read_text().splitlines()]
    assert [PARSERS["strict"](a) for a in answers] == [
        p if p in ("yes", "no") else None for p in official["predictions"]
    ]


def test_the_three_parsers_disagree_on_the_same_answers():
    answers = [json.loads(line)["answer"] for line in ANSWERS.read_text().splitlines()]
    parsed = {name: [parse(a) for a in answers] for name, parse in PARSERS.items()}
    assert parsed["rucaibox"] != parsed["opera"]
    assert None not in parsed["rucaibox"] and None not in parsed["opera"]
    assert parsed["strict"].count(None) == 16


# ---------------------------------------------------------------------------------------------------------
# Metrics against the official printouts


@pytest.mark.parametrize(
    "answers, parser, printout",
    [
        (ANSWERS, "rucaibox", "expected_pope_evaluate_answers.txt"),
        (FIXTURES / "answers_llava.jsonl", "rucaibox", "expected_llava_eval_pope_answers_llava.txt"),
        (ANSWERS, "opera", "expected_opera_answers.txt"),
    ],
)
def test_metrics_equal_official_printout(answers, parser, printout):
    suite = PopeSuite(QUESTIONS, parser=parser)
    sums = sums_for(suite, answers)
    official = read_official_printout(FIXTURES / printout)
    for name in ("tp", "fp", "tn", "fn"):
        assert column(sums, name) == official[name]
    assert column(sums, "unparsed") == 0
    values = metric_values(suite, sums)
    for name in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        assert values[name] == official[name], name  # exact: same float operations
    assert values["unparsed"] == 0.0


def test_no_yes_prediction_gives_nan_where_official_divides_by_zero():
    suite = PopeSuite(QUESTIONS)
    sums = sums_for(suite, FIXTURES / "answers_all_no.json")
    printout = FIXTURES / "expected_pope_evaluate_all_no.txt"
    assert printout.read_text().rstrip().endswith("ZeroDivisionError: float division by zero")
    official = read_official_printout(printout)
    for name in ("tp", "fp", "tn", "fn"):
        assert column(sums, name) == official[name]
    values = metric_values(suite, sums)
    assert math.isnan(values["precision"]) and math.isnan(values["f1"])
    assert values["recall"] == 0.0 and values["yes_ratio"] == 0.0
    assert values["accuracy"] == (official["tp"] + official["tn"]) / 24
    reported = suite.metric_values(sums)
    assert reported["precision"] is None and reported["f1"] is None and reported["recall"] == 0.0


def test_strict_parser_scores_like_lmms_eval():
    suite = PopeSuite(QUESTIONS, parser="strict")
    preds = suite.read_predictions(ANSWERS)
    official = json.loads((FIXTURES / "expected_lmms_eval_answers.json").read_text())
    scored = [suite.score(item, preds[item.id]) for item in suite.items()]
    assert [s.scores["correct"] for s in scored] == official["scores"]
    sums = np.asarray([s.stats for s in scored]).sum(axis=0)
    values = metric_values(suite, sums)
    assert values["accuracy"] == official["pope_accuracy"]
    assert values["precision"] == official["pope_precision"]
    assert values["recall"] == official["pope_recall"]
    assert values["f1"] == official["pope_f1_score"]
    n_unparsed = sum(p not in ("yes", "no") for p in official["predictions"])
    assert column(sums, "unparsed") == n_unparsed
    assert values["unparsed"] == n_unparsed / 24
    # lmms-eval's pope_yes_ratio is the share of "yes" labels; ours is the share of "yes" answers.
    assert values["yes_ratio"] == official["predictions"].count("yes") / 24
    assert official["pope_yes_ratio"] == 0.5


def test_strict_parser_all_no_gives_nan_where_lmms_eval_reports_zero():
    suite = PopeSuite(QUESTIONS, parser="strict")
    values = metric_values(suite, sums_for(suite, FIXTURES / "answers_all_no.json"))
    official = json.loads((FIXTURES / "expected_lmms_eval_all_no.json").read_text())
    assert official["pope_precision"] == 0 and official["pope_f1_score"] == 0
    assert math.isnan(values["precision"]) and math.isnan(values["f1"])
    assert values["recall"] == official["pope_recall"] == 0.0
    assert values["accuracy"] == official["pope_accuracy"]


def test_metrics_are_vectorised_over_resamples():
    suite = PopeSuite(QUESTIONS)
    sums = np.array([[8, 6, 4, 6, 0], [0, 0, 12, 12, 0], [0, 0, 0, 0, 0]], dtype=float)
    values = {m.name: m(sums) for m in suite.metrics()}
    for v in values.values():
        assert v.shape == (3,)
    assert values["precision"][0] == 8 / 14 and math.isnan(values["precision"][1])
    assert all(math.isnan(v[2]) for v in values.values())


def test_score_details_and_missing_output():
    suite = PopeSuite(QUESTIONS, parser="strict")
    item = suite.items()[0]  # label yes
    scored = suite.score(item, "Yes")
    assert scored.scores == {"correct": 1, "unparsed": 0}
    assert scored.details == {"parsed": "yes", "label": "yes"}
    assert dict(zip(suite.stat_names, scored.stats))["tp"] == 1 and sum(scored.stats) == 1
    missing = suite.score(item, None)
    assert missing.details["parsed"] is None and missing.scores["correct"] == 0
    assert dict(zip(suite.stat_names, missing.stats))["unparsed"] == 1
    # Under POPE's rule an empty answer is a "yes".
    assert PopeSuite(QUESTIONS).score(item, None).details["parsed"] == "yes"


# ---------------------------------------------------------------------------------------------------------
# Items, identity, registry


def test_items_units_and_prompts(tmp_path):
    suite = PopeSuite(QUESTIONS, image_root=tmp_path)
    items = suite.items()
    lines = [json.loads(line) for line in QUESTIONS.read_text().splitlines()]
    assert [i.id for i in items] == [str(q["question_id"]) for q in lines]
    assert [i.unit for i in items] == [q["image"] for q in lines]
    assert [i.target for i in items] == [q["label"] for q in lines]
    assert len({i.unit for i in items}) == 4
    parts = items[0].messages[0].parts
    assert parts == (ImagePart(str(tmp_path / lines[0]["image"])), TextPart(lines[0]["text"]))
    # Without image_root, image names are relative to the question file's folder (the data root).
    assert PopeSuite(QUESTIONS).items()[0].messages[0].parts[0] == ImagePart(str(QUESTIONS.parent / lines[0]["image"]))


def test_identity_and_registry(tmp_path):
    suite = PopeSuite(QUESTIONS, parser="opera")
    assert suite.config_dict() == {"parser": "opera"}
    assert suite.data_fingerprint() == hashlib.sha256(QUESTIONS.read_bytes()).hexdigest()
    changed = tmp_path / "q.json"
    changed.write_bytes(QUESTIONS.read_bytes().replace(b'"label": "no"}', b'"label": "yes"}', 1))
    assert PopeSuite(changed).data_fingerprint() != suite.data_fingerprint()
    assert suites.get("pope") is PopeSuite
    assert PopeSuite.stat_names == ("tp", "fp", "fn", "tn", "unparsed")


def test_for_scoring_rebuilds_scorer_from_config():
    full = PopeSuite(QUESTIONS, parser="opera")
    bare = PopeSuite.for_scoring(full.config_dict())
    item = full.items()[6]
    assert bare.score(item, "NO") == full.score(item, "NO")
    sums = sums_for(full, ANSWERS)
    assert bare.metric_values(sums) == full.metric_values(sums)
    assert [m.name for m in bare.headline_metrics()] == ["accuracy", "f1", "yes_ratio"]
    with pytest.raises(UserError, match="unknown POPE parser 'loose'"):
        PopeSuite.for_scoring({"parser": "loose"})


def test_prompt_suffix_is_appended_and_recorded():
    suffix = "\nAnswer the question using a single word or phrase."
    suite = PopeSuite(QUESTIONS, prompt_suffix=suffix)
    assert suite.items()[0].messages[0].parts[1] == TextPart("Is there a snowboard in the image?" + suffix)
    assert suite.config_dict() == {"parser": "rucaibox", "prompt_suffix": suffix}
    assert suite.items()[0].prompt_hash() != PopeSuite(QUESTIONS).items()[0].prompt_hash()


def test_unknown_parser_lists_known_ones():
    with pytest.raises(UserError, match="known: rucaibox, opera, strict"):
        PopeSuite(QUESTIONS, parser="lenient")


# ---------------------------------------------------------------------------------------------------------
# Answer files


def test_answers_matched_by_id_not_position(tmp_path):
    lines = ANSWERS.read_text().splitlines()
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text("\n".join(reversed(lines)) + "\n")
    suite = PopeSuite(QUESTIONS)
    assert suite.read_predictions(shuffled) == suite.read_predictions(ANSWERS)
    assert list(suite.read_predictions(shuffled)) == [i.id for i in suite.items()]


def test_answers_without_ids_are_matched_by_position(tmp_path):
    # POPE's README answer format: {"question": ..., "answer": ...}, in question order.
    plain = tmp_path / "plain.json"
    rows = [json.loads(line) for line in ANSWERS.read_text().splitlines()]
    plain.write_text("".join(json.dumps({"question": "q", "answer": r["answer"]}) + "\n" for r in rows))
    suite = PopeSuite(QUESTIONS)
    assert suite.read_predictions(plain) == suite.read_predictions(ANSWERS)
    short = tmp_path / "short.json"
    short.write_text("".join(plain.read_text().splitlines(keepends=True)[:20]))
    with pytest.raises(UserError) as err:
        suite.read_predictions(short)
    assert str(short) in str(err.value) and str(QUESTIONS) in str(err.value)
    assert "20" in str(err.value) and "24" in str(err.value)


def test_id_mismatch_names_both_files_and_counts(tmp_path):
    lines = ANSWERS.read_text().splitlines()
    truncated = tmp_path / "truncated.json"
    truncated.write_text("\n".join(lines[:21]) + "\n")
    with pytest.raises(UserError) as err:
        PopeSuite(QUESTIONS).read_predictions(truncated)
    message = str(err.value)
    assert str(truncated) in message and str(QUESTIONS) in message
    assert "21 answers" in message and "24 questions" in message
    assert "22, 23, 24" in message

    extra = tmp_path / "extra.json"
    extra.write_text("\n".join(lines + ['{"question_id": 99, "answer": "yes"}']) + "\n")
    with pytest.raises(UserError, match=r"25 answers .* 24 questions; question_id 99 not in the questions"):
        PopeSuite(QUESTIONS).read_predictions(extra)


def test_duplicate_answer_id(tmp_path):
    lines = ANSWERS.read_text().splitlines()
    dup = tmp_path / "dup.json"
    dup.write_text("\n".join(lines + [lines[2]]) + "\n")
    with pytest.raises(UserError, match=rf"{re.escape(str(dup))}:25: duplicate question_id 3 \(first on line 3\)"):
        PopeSuite(QUESTIONS).read_predictions(dup)


def test_llava_text_key_is_read():
    preds = PopeSuite(QUESTIONS).read_predictions(FIXTURES / "answers_llava.jsonl")
    rows = [json.loads(line) for line in (FIXTURES / "answers_llava.jsonl").read_text().splitlines()]
    assert preds == {str(r["question_id"]): r["text"] for r in rows}


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"question_id": 5, "answer": "yes"', r":5: malformed JSON"),
        ('{"question_id": 5}', r":5: missing key 'answer' \(or LLaVA's 'text'\)"),
        ('{"question_id": 5, "answer": 1}', r":5: key 'answer' must be a string"),
        ('{"question_id": 5.0, "answer": "yes"}', r":5: key 'question_id' must be an integer"),
        ('{"answer": "yes"}', r":5: missing key 'question_id'"),
    ],
)
def test_bad_answer_lines_name_file_and_line(tmp_path, bad_line, message):
    lines = ANSWERS.read_text().splitlines()
    lines[4] = bad_line
    path = tmp_path / "answers.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=re.escape(str(path)) + message):
        PopeSuite(QUESTIONS).read_predictions(path)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"question_id": 3, "image": "a.jpg", "text": "Is there', r":3: malformed JSON"),
        ('{"question_id": 3, "image": "a.jpg", "text": "Is there a cat?"}', r":3: missing key 'label'"),
        ('{"question_id": 3, "image": "a.jpg", "text": "q", "label": "maybe"}', r":3: key 'label' must be"),
        ('{"question_id": 1, "image": "a.jpg", "text": "q", "label": "no"}', r":3: duplicate question_id 1 \(first"),
        ('{"question_id": 3, "image": "", "text": "q", "label": "no"}', r":3: key 'image' must be"),
        ('[1, 2]', r":3: expected a JSON object"),
    ],
)
def test_bad_question_lines_name_file_line_and_key(tmp_path, bad_line, message):
    lines = QUESTIONS.read_text().splitlines()
    lines[2] = bad_line
    path = tmp_path / "questions.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=re.escape(str(path)) + message):
        PopeSuite(path)


def test_missing_and_empty_question_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        PopeSuite(tmp_path / "nope.json")
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no questions"):
        PopeSuite(empty)


# ---------------------------------------------------------------------------------------------------------
# Question builder

QUESTION_RE = re.compile(r"^Is there an? (.+) in the ima?n?ge\?$")  # the official builder writes "imange"


def asked_object(question: dict) -> str:
    match = QUESTION_RE.match(question["text"])
    assert match, question["text"]
    return match.group(1)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_question_text_matches_published_pope_files():
    # Questions as they appear in RUCAIBox/POPE output/coco/coco_pope_*.json.
    assert pope_question_text("umbrella") == "Is there an umbrella in the image?"
    assert pope_question_text("orange") == "Is there an orange in the image?"
    assert pope_question_text("skis") == "Is there a skis in the image?"
    assert pope_question_text("dining table") == "Is there a dining table in the image?"


@pytest.mark.parametrize("split", ["random", "popular", "adversarial"])
def test_procedure_reproduces_official_builder(split):
    images = [(s["image"], s["objects"]) for s in read_lines(FIXTURES / "segments.json")]
    ours = pope_questions_for_images(images, n_per_image=3, strategy=split, rng=random.Random(7))
    official = read_lines(FIXTURES / f"expected_official_builder_{split}_seed7.json")
    key = lambda q: (q["question_id"], q["image"], q["label"], asked_object(q))  # noqa: E731
    assert [key(q) for q in ours] == [key(q) for q in official]
    assert all(q["text"] == pope_question_text(asked_object(q)) for q in ours)


INSTANCES = FIXTURES / "instances_tiny.json"


def objects_by_image() -> dict[str, set[str]]:
    # Independent reading of the fixture: category names of each image's annotations.
    data = json.loads(INSTANCES.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    files = {i["id"]: i["file_name"] for i in data["images"]}
    out: dict[str, set[str]] = {f: set() for f in files.values()}
    for a in data["annotations"]:
        out[files[a["image_id"]]].add(names[a["category_id"]])
    return out


def test_coco_objects_are_distinct_categories():
    objects = dict(coco_image_objects(INSTANCES))
    assert {k: set(v) for k, v in objects.items()} == objects_by_image()
    assert all(len(v) == len(set(v)) for v in objects.values())


def test_builder_popular_negatives_are_the_most_frequent_absent(tmp_path):
    for seed in range(5):  # the answer does not depend on the image order or the object order
        paths = build_pope_questions(INSTANCES, tmp_path, n_images=None, n_per_image=2, seed=seed, splits=["popular"])
        assert list(paths) == ["popular"] and paths["popular"].name == "coco_pope_popular.json"
        check_popular(paths["popular"])


def check_popular(path: Path) -> None:
    # Over the 7 images with >= 2 categories: person 6, dog 5, car 4, cat 3, bicycle 2, apple 1.
    expected = {
        1: ["bicycle", "apple"], 2: ["cat", "bicycle"], 3: ["car", "cat"], 4: ["car", "bicycle"],
        5: ["dog", "cat"], 6: ["cat", "bicycle"], 7: ["person", "dog"],
    }
    negatives: dict[str, list[str]] = {}
    for q in read_lines(path):
        if q["label"] == "no":
            negatives.setdefault(q["image"], []).append(asked_object(q))
    assert negatives == {f"synthetic_{i:012d}.png": objs for i, objs in expected.items()}


def test_builder_adversarial_negatives_co_occur_most(tmp_path):
    truth = objects_by_image()
    eligible = {img: objs for img, objs in truth.items() if len(objs) >= 2}
    co = Counter((a, b) for objs in eligible.values() for a in objs for b in objs if a != b)
    for seed in range(5):
        path = build_pope_questions(INSTANCES, tmp_path, n_images=None, n_per_image=2, seed=seed,
                                    splits=["adversarial"])["adversarial"]
        questions = read_lines(path)
        for image in eligible:
            asked = [q for q in questions if q["image"] == image]
            history: list[str] = []
            for pos, neg in zip(asked[::2], asked[1::2]):
                positive, negative = asked_object(pos), asked_object(neg)
                history.append(positive)
                candidates = [c for c in {c for _, c in co} if c not in truth[image] and c not in history]
                best = max(co[(positive, c)] for c in candidates)
                assert negative in candidates
                if best > 0:
                    assert co[(positive, negative)] == best, (image, positive, negative)
                history.append(negative)


@pytest.mark.parametrize("n_images, n_per_image", [(None, 2), (5, 1)])
def test_builder_structure_and_never_asks_present_objects_as_negatives(tmp_path, n_images, n_per_image):
    truth = objects_by_image()
    n_eligible = sum(len(objs) >= n_per_image for objs in truth.values())
    n_sampled = n_eligible if n_images is None else n_images
    n_questions = 2 * n_per_image * n_sampled
    for seed in range(10):
        paths = build_pope_questions(
            INSTANCES, tmp_path / str(seed), n_images=n_images, n_per_image=n_per_image, seed=seed,
            dataset_name="tiny",
        )
        assert sorted(p.name for p in paths.values()) == [f"tiny_pope_{s}.json" for s in sorted(paths)]
        assert sorted(paths) == ["adversarial", "popular", "random"]
        for split, path in paths.items():
            questions = read_lines(path)
            assert [q["question_id"] for q in questions] == list(range(1, n_questions + 1))
            assert [q["label"] for q in questions] == ["yes", "no"] * (n_questions // 2)
            images = list(dict.fromkeys(q["image"] for q in questions))
            assert len(images) == n_sampled and all(len(truth[i]) >= n_per_image for i in images)
            for image in images:
                asked = [asked_object(q) for q in questions if q["image"] == image]
                assert len(asked) == 2 * n_per_image and len(set(asked)) == len(asked)
            for q in questions:
                obj = asked_object(q)
                assert (obj in truth[q["image"]]) == (q["label"] == "yes"), (split, q)
                # Only categories of the sampled images are asked about (kite, in no image, never is).
                assert obj in set().union(*(truth[i] for i in images)) and obj != "kite"
            suite = PopeSuite(path)
            assert len(suite.items()) == n_questions and {i.unit for i in suite.items()} == set(images)


def test_builder_is_deterministic_per_seed(tmp_path):
    a = build_pope_questions(INSTANCES, tmp_path / "a", n_images=None, n_per_image=2, seed=11)
    b = build_pope_questions(INSTANCES, tmp_path / "b", n_images=None, n_per_image=2, seed=11)
    assert all(a[s].read_bytes() == b[s].read_bytes() for s in a)
    alone = build_pope_questions(INSTANCES, tmp_path / "c", n_images=None, n_per_image=2, seed=11, splits=["random"])
    assert alone["random"].read_bytes() == a["random"].read_bytes()
    other = build_pope_questions(INSTANCES, tmp_path / "d", n_images=None, n_per_image=2, seed=12)
    assert any(a[s].read_bytes() != other[s].read_bytes() for s in a)


def test_builder_errors(tmp_path):
    with pytest.raises(UserError, match=r"only 6 images have at least 3 annotated categories; n_images=7"):
        build_pope_questions(INSTANCES, tmp_path, n_images=7, n_per_image=3)
    with pytest.raises(UserError, match="unknown POPE split 'hard'"):
        build_pope_questions(INSTANCES, tmp_path, splits=["hard"])
    data = json.loads(INSTANCES.read_text())
    data["annotations"][3]["category_id"] = 42
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(UserError, match=re.escape(str(broken)) + r": annotations\[3\] has category_id 42"):
        build_pope_questions(broken, tmp_path)
    # Too few categories to find absent ones: 2 categories, each image has both.
    tiny = {
        "images": [{"id": 1, "file_name": "x.png"}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 1, "category_id": 2}],
    }
    small = tmp_path / "small.json"
    small.write_text(json.dumps(tiny))
    with pytest.raises(UserError, match="no absent object left"):
        build_pope_questions(small, tmp_path, n_images=1, n_per_image=1)
    assert not list(tmp_path.glob("*_pope_*.json"))
