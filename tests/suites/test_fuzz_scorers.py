"""Every suite's parsers and scorers, fed arbitrary unicode outputs (and arbitrary judge replies), never raise and
keep their per-item scores, per-unit statistics and metrics in range.

Items come from each suite's own test fixtures; hypothesis picks a few of them and an output for each. Outputs mix
st.text() (any code point but surrogates, control characters included), None (a missing output) and texts built
from the words each scorer looks for ("yes", "No", "A.", "answer is", COCO object phrases, numbers, line and
paragraph separators, case-changing letters such as "İ"). Runs are derandomized, so CI sees the same examples.
"""

from __future__ import annotations

import json
import math
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from csr_bench.core.types import Item
from csr_bench.judges import JudgeReply
from csr_bench.runner.scoring import offline_manifest, score_pairs, summarize, unit_matrix
from csr_bench.runner.store import load_run, write_run_atomically
from csr_bench.suites import chair as chair_module
from csr_bench.suites.base import Suite
from csr_bench.suites.chair import ChairSuite
from csr_bench.suites.chair_singularize import singularize
from csr_bench.suites.chair_tokenize import word_tokenize
from csr_bench.suites.gqa import GQASuite
from csr_bench.suites.gqa import SCORERS as GQA_SCORERS
from csr_bench.suites.llava_wild import PARSERS as LLAVA_WILD_PARSERS
from csr_bench.suites.llava_wild import LlavaWildSuite
from csr_bench.suites.mmbench import MmbenchSuite, extract_choice
from csr_bench.suites.mme import PERCEPTION_TASKS, TASKS, MmeSuite, parse_mme_answer
from csr_bench.suites.mmvet import MMVetSuite, parse_grade
from csr_bench.suites.pope import PARSERS as POPE_PARSERS
from csr_bench.suites.pope import PopeSuite
from csr_bench.suites.scienceqa import ScienceQASuite, correct_lmms, extract_letter_llava
from csr_bench.suites.seed_bench import SCORERS as SEED_SCORERS
from csr_bench.suites.seed_bench import SeedBenchSuite
from csr_bench.suites.vizwiz import VizWizSuite
from csr_bench.suites.vqa_normalize import normalize_evalai, vqa_accuracy_evalai, vqa_accuracy_vqaeval

FIXTURES = Path(__file__).parent / "fixtures"
PARSER_EXAMPLES = 200
SUITE_EXAMPLES = 100
FUZZ = settings(max_examples=SUITE_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------------------------------------------
# Strategies

SCORER_WORDS = [
    "yes", "no", "Yes", "No", "NO", "not", "n't", "isn't", "nope", "none", "know",
    "A", "B", "C", "D", "E", "Z", "(A)", "A.", "B. ", "[C]", "**D**", "answer is", "The correct answer is C",
    "Failed to obtain answer via API", "Cannot determine the answer", "I can't process this file.",
    "dog", "dogs", "hot", "toilet", "seat", "baby", "elephant", "passenger", "train", "bow", "tie", "motor", "bike",
    "person", "people", "cat", "cats", "teddy", "bear", "stop sign", "hot dog", "men", "children",
    "two", "three", "0", "1", "10", "-1", "0.5", "1.0", "1e3", "nan", "inf", "8 9", "7, 3", "Unanswerable",
    "<AND>", "<OR>", "'s", "a", "an", "the",
    ".", ",", ";", ":", "?", "!", "'", '"', "-", "/", " ", "  ", "\n", "\r", "\r\n", "\t", "\x00", "\x0b", "\x1c",
    "\x85", "\u2028", "\u2029", "\u200b", "\ufeff", "İ", "ß", "ﬁ", "ǅ", "\u0301", "Σ", "１", "٣", "½", "🐶", "中文",
]  # fmt: skip
word_soup = st.tuples(st.lists(st.one_of(st.sampled_from(SCORER_WORDS), st.text(max_size=3)), max_size=14),
                      st.sampled_from(["", " ", "\n"])).map(lambda t: t[1].join(t[0]))
any_text = st.one_of(st.text(), word_soup)
outputs = st.one_of(st.none(), any_text)

number = st.one_of(st.integers(-3, 12).map(str), st.floats(-5, 20, allow_nan=False).map(lambda x: f"{x:.2f}"))
score_pair_line = st.tuples(number, st.sampled_from([" ", ",", ", ", ";", "  ", "\t"]), number).map("".join)
llava_wild_replies = st.one_of(
    st.none(), any_text, st.tuples(score_pair_line, st.sampled_from(["", "\nbecause", "\n\n"]), st.text(max_size=5))
    .map("".join),
)
grade = st.one_of(st.sampled_from(["0", "0.0", "0.5", "1", "1.0", "-0", "1.1", "2", "nan", "inf", "1e-400", "0x1"]),
                  st.floats(-1, 2).map(repr))
mmvet_replies = st.one_of(st.none(), any_text, st.tuples(grade, st.sampled_from(["", " ", " points", "\n"]))
                          .map("".join))
mmbench_replies = st.one_of(st.none(), any_text)


class FuzzJudge:
    """A judge whose every reply is drawn by hypothesis (None: the call failed)."""

    name = "fuzz"

    def __init__(self) -> None:
        self.draw: Callable[[], str | None] = lambda: None

    def describe(self) -> dict[str, Any]:
        return {"kind": "fuzz"}

    def complete(self, request) -> JudgeReply:
        text = self.draw()
        return JudgeReply(text, error=None if text is not None else "fuzzed failure")

    def __call__(self, prompt: str) -> str | None:  # MMBench's judge(prompt) -> reply
        return self.draw()


# ---------------------------------------------------------------------------------------------------------
# Suites with their fixture items


class RecordlessNltk:
    """Stand-in NLTK tools for the `nltk` CHAIR variant on arbitrary text: every word a noun, lemma = word."""

    version = "fuzz"

    def tag(self, tokens: list[str]) -> list[str]:
        return ["NN"] * len(tokens)

    def lemmatize(self, word: str, pos: str) -> str:
        return word


@lru_cache(maxsize=None)
def chair_case(variant: str) -> tuple[ChairSuite, list[Item]]:
    tools = RecordlessNltk() if variant == "nltk" else None
    suite = ChairSuite(FIXTURES / "chair" / "annotations", variant=variant, disk_cache=False, nltk_tools=tools)
    items = [item for item, _ in suite.read_predictions(FIXTURES / "chair" / "captions.jsonl")]
    # An image absent from the annotations: empty ground truth, every mention hallucinated.
    items.append(Item(id="absent", unit="987654321", messages=(), target=987654321))
    return suite, items


@lru_cache(maxsize=None)
def case(name: str) -> tuple[Suite, list[Item], FuzzJudge | None]:
    """(suite, items, judge to draw replies from) for a suite/variant name."""
    kind, _, variant = name.partition(":")
    judge = FuzzJudge()
    if kind == "pope":
        suite = PopeSuite(FIXTURES / "pope" / "questions.json", parser=variant)
        return suite, suite.items(), None
    if kind == "chair":
        suite, items = chair_case(variant)
        return suite, items, None
    if kind == "mme":
        suite = MmeSuite()
        return suite, [item for item, _ in suite.read_predictions(FIXTURES / "mme" / "results")], None
    if kind == "mmbench":
        suite = MmbenchSuite(matcher=variant.split("+")[0], judge=judge if variant.endswith("+judge") else None)
        items = [item for item, _ in suite.read_predictions(FIXTURES / "mmbench" / "predictions.tsv")]
        return suite, items, judge
    if kind == "seed_bench":
        suite = SeedBenchSuite(FIXTURES / "seed_bench" / "SEED-Bench.json", variant=variant)
    elif kind == "scienceqa":
        suite = ScienceQASuite(FIXTURES / "scienceqa", variant=variant)
    elif kind == "gqa":
        suite = GQASuite(FIXTURES / "gqa" / "testdev_balanced_questions.json", variant=variant)
    elif kind == "vizwiz":
        suite = VizWizSuite(FIXTURES / "vizwiz" / "val.json", variant=variant)
    elif kind == "llava_wild":
        suite = LlavaWildSuite(FIXTURES / "llava_wild", variant=variant, judge=judge)
    elif kind == "mmvet":
        suite = MMVetSuite(FIXTURES / "mmvet", variant=variant, judge=judge)
    else:
        raise AssertionError(name)
    return suite, suite.items(), judge


CASES = [
    "pope:rucaibox", "pope:opera", "pope:strict", "chair:pattern", "chair:nltk", "mme:",
    "mmbench:current", "mmbench:legacy", "mmbench:current+judge", "mmbench:legacy+judge",
    "seed_bench:llava", "seed_bench:lmms", "scienceqa:llava", "scienceqa:lmms", "gqa:llava", "gqa:lmms",
    "vizwiz:llava", "vizwiz:lmms", "vizwiz:vqa_eval", "llava_wild:llava", "llava_wild:lmms",
    "mmvet:official", "mmvet:lmms",
]  # fmt: skip
JUDGE_REPLIES = {"mmbench": mmbench_replies, "llava_wild": llava_wild_replies, "mmvet": mmvet_replies}




def plausible_answers(kind: str, suite: Suite, item: Item) -> list[str]:
    """Outputs close to the item's right answer, so that hits (and near misses) are fuzzed too."""
    t = item.target
    if kind == "chair":
        return sorted(suite.ground_truth().objects.get(t, ())) or ["person"]
    if kind == "scienceqa":
        return ["ABCDE"[t], f"The answer is {'ABCDE'[t]}.", f"{'ABCDE'[t]}. yes"]
    if kind == "vizwiz":
        return [a["answer"] for a in t] or ["unanswerable"]
    if kind == "mmbench":
        return [t, f"({t})", f"The answer is {t}", *map(str, item.meta["choices"].values())]
    if kind == "llava_wild":
        return [t["reference"]]
    return [str(t)]


def item_output(kind: str, suite: Suite, item: Item) -> st.SearchStrategy[str | None]:
    answer = st.sampled_from(plausible_answers(kind, suite, item))
    noise = st.sampled_from(["", " ", "\n", ".", "!", " a dog", "The answer is ", "\u2028", "İ", "no "])
    near = st.tuples(noise, answer, noise).map("".join)
    several = st.lists(answer, min_size=1, max_size=4).map(" and ".join)
    return st.one_of(outputs, near, several)


# ---------------------------------------------------------------------------------------------------------
# Range checks, per suite


def col(suite: Suite, row: np.ndarray, name: str) -> float:
    return float(row[list(suite.stat_names).index(name)])


def in_range(value: float | None, low: float, high: float = math.inf) -> bool:
    return value is None or (math.isfinite(value) and low - 1e-9 <= value <= high + 1e-9)


def check_pope(suite, samples, units, values):
    for s in samples:
        assert sorted(s.stats) == [0.0] * 4 + [1.0]  # exactly one of tp, fp, fn, tn, unparsed
        assert s.scores["correct"] == int(s.details["parsed"] == s.details["label"])
        assert s.details["parsed"] in (("yes", "no", None) if suite.parser == "strict" else ("yes", "no"))
    assert units.sum() == len(samples)  # TP + FP + FN + TN + unparsed == items
    assert all(in_range(v, 0, 1) for v in values.values())


def check_chair(suite, samples, units, values):
    for s in samples:
        st_ = dict(zip(suite.stat_names, s.stats))
        assert st_["captions"] == 1 and st_["hallucinated_captions"] == float(st_["hallucinated_mentions"] > 0)
        assert st_["hallucinated_mentions"] <= st_["mentions"] <= st_["words"]
        assert st_["recalled_objects"] <= st_["gt_objects"]
        assert st_["mentions"] == len(s.details["mentioned"]) and st_["hallucinated_mentions"] == len(s.details["hallucinated"])
        assert set(s.details["hallucinated"]).isdisjoint(s.details["ground_truth"])
        assert 0 <= s.scores["CHAIR_i"] <= 1 and 0 <= s.scores["recall"] <= 1 and s.scores["CHAIR_s"] in (0, 1)
    for name, v in values.items():
        assert in_range(v, 0, math.inf if name == "len" else 1), (name, v)


def check_mme(suite, samples, units, values):
    for s in samples:
        assert s.scores["correct"] in (0, 1) and s.details["parsed"] in ("yes", "no", "other")
        assert sum(s.stats) == 2 + 2 * s.scores["correct"]  # its task's question and image, correct in both columns
    for row in units:
        for task in TASKS:
            q, c, i, b = (col(suite, row, f"{task}/{k}") for k in
                          ("n_questions", "n_correct", "n_images", "n_images_both_correct"))
            assert 0 <= c <= q and 0 <= b <= i <= 1 and (i == 1) == (q > 0)
    for name, v in values.items():
        top = 200 * (len(PERCEPTION_TASKS) if name == "perception" else 4 if name == "cognition" else 1)
        assert in_range(v, 0, top), (name, v)


def check_mmbench(suite, samples, units, values):
    for s in samples:
        assert s.stats[0] == 1 and s.stats[1] + s.stats[2] <= 1
        assert s.details["status"] in ("rule_hit", "rule_miss", "judge_hit", "judge_miss", "needs_judge")
        assert s.details["extracted"] in (None, "Z", *"ABCDEFGHI")
    for row in units:
        assert row[0] == 1 and 0 <= row[1] <= 1 and 0 <= row[2] <= 1 and row[1] + row[2] <= 1
        for j in range(3, len(row), 2):
            assert 0 <= row[j + 1] <= row[j] <= 1
    for name, v in values.items():
        assert in_range(v, 0, len(units) if name == "needs_judge" else 1), (name, v)


def check_counts(correct: str, count: str, top: float):
    def check(suite, samples, units, values):
        names = list(suite.stat_names)
        pairs = [(names.index(n), names.index(n.replace(correct, count, 1))) for n in names if n.startswith(correct)]
        for s in samples:
            assert all(x >= 0 for x in s.stats)
            for c, n in pairs:
                assert s.stats[c] <= s.stats[n] <= 1
        for name, v in values.items():
            assert in_range(v, 0, top), (name, v)

    return check


def check_scienceqa(suite, samples, units, values):
    check_counts("correct", "count", 100)(suite, samples, units, values)
    for s in samples:
        failed = s.stats[2]
        assert failed in (0, 1) and not (failed and s.stats[0])  # an answer without a letter is never right
        if suite.variant == "llava":  # "The answer is F." reads as F, as in eval_science_qa.py (then wrong)
            parsed = s.details["parsed"]
            assert (parsed == "FAILED") == bool(failed) and (failed or (len(parsed) == 1 and "A" <= parsed <= "Z"))


def check_vizwiz(suite, samples, units, values):
    check_counts("score", "count", 100)(suite, samples, units, values)
    for s in samples:
        assert 0 <= s.scores["vqa_accuracy"] <= 1


def check_llava_wild(suite, samples, units, values):
    names = list(suite.stat_names)
    nonnegative = True
    for s in samples:
        c = s.details["category"]
        judged, missing = (s.stats[names.index(f"{f}_{c}")] for f in ("judged", "missing"))
        assert judged + missing == 1 and sum(s.stats[names.index(f"judged_{k}")] + s.stats[names.index(f"missing_{k}")]
                                             for k in ("conv", "detail", "complex")) == 1
        assert all(math.isfinite(x) for x in s.stats)
        if judged:
            parsed = LLAVA_WILD_PARSERS[suite.variant](s.details["review"])
            assert (s.scores["reference_score"], s.scores["model_score"]) == parsed
            nonnegative &= min(parsed) >= 0
    assert values["judge_missing"] == sum(s.scores["judge_missing"] for s in samples)
    if nonnegative:  # the judge is asked for 1-10; the official parsers also read negative numbers
        assert all(in_range(v, 0) for v in values.values()), values


def check_mmvet(suite, samples, units, values):
    check_counts("score", "judged", 100)(suite, samples, units, values)
    for s in samples:
        assert s.stats[1] + s.stats[2] == 1 and 0 <= s.scores.get("grade", 0) <= 1
    assert values["judge_missing"] == sum(s.scores["judge_missing"] for s in samples)


CHECKS = {
    "pope": check_pope, "chair": check_chair, "mme": check_mme, "mmbench": check_mmbench,
    "seed_bench": check_counts("correct", "count", 100), "gqa": check_counts("correct", "count", 100),
    "scienceqa": check_scienceqa, "vizwiz": check_vizwiz, "llava_wild": check_llava_wild, "mmvet": check_mmvet,
}  # fmt: skip


def coverage_label(kind: str, sample) -> str:
    d, sc = sample.details, sample.scores
    if kind == "chair":
        return "hallucination" if d["hallucinated"] else "mention" if d["mentioned"] else "no mention"
    if kind == "mmbench":
        return d["status"]
    if kind in ("llava_wild", "mmvet"):
        return "judge missing" if sc["judge_missing"] else "judged"
    if kind == "vizwiz":
        return "partly right" if 0 < sc["vqa_accuracy"] < 1 else f"accuracy {sc['vqa_accuracy']}"
    return f"correct {sc.get('correct')}"


@pytest.mark.parametrize("name", CASES)
@FUZZ
@given(data=st.data())
def test_scorers_never_raise_and_keep_metrics_in_range(name, data):
    suite, items, judge = case(name)
    kind = name.split(":")[0]
    if judge is not None:
        judge.draw = lambda: data.draw(JUDGE_REPLIES[kind], label="judge reply")
    chosen = data.draw(st.lists(st.integers(0, len(items) - 1), min_size=1, max_size=6, unique=True), label="items")
    pairs = [(items[i], data.draw(item_output(kind, suite, items[i]), label=f"output {items[i].id}"))
             for i in sorted(chosen)]

    samples = score_pairs(suite, pairs)  # MMBench scores question groups together, the others item by item
    for s in samples:
        assert len(s.stats) == len(suite.stat_names) and all(math.isfinite(x) for x in s.stats)
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in s.scores.values()), s.scores
        line = s.to_json()  # what the run store writes: plain JSON, no NaN
        assert json.loads(line)["output"] == s.output
        event(f"scored: {coverage_label(kind, s)}")  # --hypothesis-show-statistics: what the examples reached
    _, units = unit_matrix(suite, samples)
    assert np.all(units >= 0) or kind == "llava_wild"
    values = suite.metric_values(units.sum(axis=0))
    assert set(values) == {m.name for m in suite.metrics()}
    CHECKS[kind](suite, samples, units, values)
    summary = summarize(suite, samples, n_resamples=50)
    assert summary["metrics"] == values and summary["n_items"] == len(samples)
    for name_, interval in summary["intervals"]["values"].items():
        if interval["low"] is not None:
            assert interval["low"] <= interval["high"], name_


# ---------------------------------------------------------------------------------------------------------
# Parsers alone: many more examples (they are cheap)

PARSER = settings(max_examples=PARSER_EXAMPLES, deadline=None, derandomize=True)


@PARSER
@given(text=any_text)
def test_pope_and_mme_parsers(text):
    for parser in POPE_PARSERS.values():
        assert parser(text) in ("yes", "no", None)
    assert POPE_PARSERS["rucaibox"](text) in ("yes", "no") and POPE_PARSERS["opera"](text) in ("yes", "no")
    assert parse_mme_answer(text) in ("yes", "no", "other")


@PARSER
@given(text=any_text, options=st.lists(st.one_of(any_text, st.floats(allow_nan=True)), min_size=2, max_size=5))
def test_mmbench_extraction_returns_an_option_z_or_nothing(text, options):
    choices = {"ABCDE"[i]: o for i, o in enumerate(options)}
    for matcher in ("current", "legacy"):
        got = extract_choice(text, dict(choices), matcher)
        assert got is None or got == "Z" or got in choices


@PARSER
@given(text=any_text)
@example(text="\u0130")  # "İ".lower() is two characters long
def test_letter_and_exact_match_scorers(text):
    letter = extract_letter_llava(text)
    assert letter == "FAILED" or (len(letter) == 1 and "A" <= letter <= "Z")
    for answer_index in range(4):
        assert correct_lmms(text, answer_index) in (True, False)
    for scorer in (*SEED_SCORERS.values(), *GQA_SCORERS.values()):
        assert scorer(text, "A") in (True, False) and scorer(text, "yes") in (True, False)


@PARSER
@given(text=any_text, humans=st.lists(any_text, max_size=10))
def test_vqa_accuracy_is_a_fraction(text, humans):
    assert isinstance(normalize_evalai(text), str)
    assert 0 <= vqa_accuracy_evalai(text, humans) <= 1
    assert 0 <= vqa_accuracy_vqaeval(text, [{"answer": h} for h in humans]) <= 1
    if humans and all(normalize_evalai(h) == normalize_evalai(text) for h in humans):
        assert vqa_accuracy_evalai(text, humans) == min(1.0, (len(humans) - 1) / 3)


@PARSER
@given(reply=st.one_of(any_text, score_pair_line, grade))
def test_judge_reply_parsers(reply):
    for parse in LLAVA_WILD_PARSERS.values():
        got = parse(reply)
        assert got is None or (len(got) == 2 and all(isinstance(x, float) for x in got))
    g = parse_grade(reply)
    assert g is None or 0.0 <= g <= 1.0


@PARSER
@given(text=any_text)
def test_chair_words(text):
    tokens = word_tokenize(text.lower())
    assert all(isinstance(t, str) and t for t in tokens)
    assert all(isinstance(singularize(t), str) for t in tokens)
    suite, _ = chair_case("pattern")
    words = suite.caption_words(text)
    assert len(words.mentions) == len(words.node_words) <= len(words.words)
    assert set(words.node_words) <= set(chair_module.vocabulary().node_word.values())


# ---------------------------------------------------------------------------------------------------------
# Any output survives the run store: written, read back, the same samples and metrics.


@settings(max_examples=60, deadline=None, derandomize=True)
@given(texts=st.lists(outputs, min_size=1, max_size=4))
@example(texts=["yes\u2028no", "a\x85b", "\u2029", None])  # line and paragraph separators that str.splitlines() splits on
def test_any_output_round_trips_through_the_run_store(texts):
    suite, items, _ = case("pope:rucaibox")
    samples = score_pairs(suite, list(zip(items, texts)))
    summary = summarize(suite, samples, n_resamples=20)
    manifest = offline_manifest(suite, model_name="fuzz", n_items=len(samples), predictions_file="fuzz.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        run = load_run(write_run_atomically(Path(tmp) / "run", manifest, samples, summary))
    assert [s.output for s in run.samples] == texts
    assert [(s.item_id, s.stats, s.scores, s.details) for s in run.samples] == \
        [(s.item_id, s.stats, s.scores, s.details) for s in samples]
    assert run.metrics == json.loads(json.dumps(summary))
