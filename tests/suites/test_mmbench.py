"""MMBench circular suite against VLMEvalKit's official functions at two commits (fixtures/mmbench/README.md)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csr_bench.core.types import ImagePart, TextPart
from csr_bench.errors import UserError
from csr_bench.suites.mmbench import (
    MmbenchSuite,
    build_circular_rows,
    extract_choice,
    group_status,
    judge_prompt,
    questions_needing_judge,
    read_mmbench_tsv,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mmbench"
OFFICIAL = FIXTURES / "official"
PREDICTIONS = FIXTURES / "predictions.tsv"
BASE = FIXTURES / "base.tsv"
REPLIES = json.loads((FIXTURES / "judge_replies.json").read_text())
COMBOS = [(m, j) for m in ("current", "legacy") for j in ("exact", "judge")]


class FakeJudge:
    """The judge the official run used: answers from judge_replies.json by (question, answer) in the prompt."""

    name = "fake-judge"

    def __init__(self, replies: dict[str, str | None] | None = None, default: str | None = "Z"):
        self.replies = REPLIES if replies is None else replies
        self.default = default
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        english = r"Example 3: \nQuestion: (.*)\?\nOptions: .*\nAnswer: (.*)\nYour output: $"
        chinese = r"例 3: \n问题: (.*)\?\n选项: .*\n答案: (.*)\n输出: $"
        m = re.search(english, prompt, re.S) or re.search(chinese, prompt, re.S)
        assert m is not None, prompt
        return self.replies.get(f"{m.group(1)}\t{m.group(2)}", self.default)


def official(matcher: str, judge: str) -> dict:
    return json.loads((OFFICIAL / f"eval_{matcher}_{judge}.json").read_text())


def official_status(group: dict, judged: bool) -> str:
    """Our status name for an official question result, from its log."""
    log = group["log"]
    if log == "Succeed During Pre-fetching":
        return "rule_hit"
    if log.startswith("Failed in Prefetching Rolling"):
        return "rule_miss"
    if log.startswith("Failed in Prefetch, no GPT-based answer matching"):
        return "needs_judge"
    assert judged and "randomly" not in log
    return "judge_hit" if group["hit"] else "judge_miss"


def scored_units(suite: MmbenchSuite, pairs, scored) -> dict[str, tuple[np.ndarray, list]]:
    rows: dict[str, list] = {}
    for (item, _), s in zip(pairs, scored):
        rows.setdefault(item.unit, []).append(s)
    return {u: (suite.unit_stats(np.asarray([s.stats for s in ss])), ss) for u, ss in rows.items()}


# ---------------------------------------------------------------------------------------------------------
# Rule matchers


def test_matchers_agree_with_official_can_infer_case_by_case():
    cases = json.loads((FIXTURES / "matcher_cases.json").read_text())
    expected = json.loads((OFFICIAL / "matcher_outputs.json").read_text())
    for matcher in ("current", "legacy"):
        assert len(expected[matcher]) == len(cases["cases"]) == 1128
        for (k, answer), want in zip(cases["cases"], expected[matcher]):
            got = extract_choice(answer, dict(cases["choices"][k]), matcher)
            assert got == want, (matcher, answer, cases["choices"][k])
    differ = sum(a != b for a, b in zip(expected["current"], expected["legacy"]))
    assert differ > 100  # the fixture does exercise the differences


@pytest.mark.parametrize(
    "answer, current, legacy",
    [
        ("The answer is a book", "A", "B"),  # current: "answer is a" is read as option A
        ("A plate of food on the table", "D", "A"),  # legacy: a lone "A" anywhere is option A
        ("A plate of food", "A", "A"),  # within the last four words, both take the lone A
        ("I think it's B or C", None, None),
        ("Cannot determine the answer", "Z", "Z"),
        ("Failed to obtain answer via API: B", None, None),
    ],
)
def test_matcher_differences(answer, current, legacy):
    choices = {"A": "a pen", "B": "a book", "C": "a cup", "D": "a plate of food"}
    assert extract_choice(answer, dict(choices), "current") == current
    assert extract_choice(answer, dict(choices), "legacy") == legacy


def test_unknown_matcher():
    with pytest.raises(UserError, match="unknown MMBench matcher 'new'"):
        MmbenchSuite(matcher="new")


# ---------------------------------------------------------------------------------------------------------
# Circular rows


@pytest.mark.parametrize("name", ["base", "base_large_index"])
def test_build_circular_rows_writes_the_official_file(name):
    base = pd.read_csv(FIXTURES / f"{name}.tsv", sep="\t")
    ours = build_circular_rows(base)
    buffer = io.StringIO()
    ours.to_csv(buffer, sep="\t", index=False, quoting=csv.QUOTE_ALL)  # VLMEvalKit's dump for .tsv
    assert buffer.getvalue() == (OFFICIAL / f"{name}_circular.tsv").read_text()


def test_circular_rotation_order_and_option_counts():
    rows = build_circular_rows(pd.read_csv(BASE, sep="\t")).set_index("index")
    # 4 options: rotation 1 puts the texts of A, B, C, D at D, A, B, C; the answer follows its text.
    assert list(rows.loc[1000000, ["A", "B", "C", "D"]]) == ["a book", "a cup", "a plate of food", "a pen"]
    assert rows.loc[1000000, "answer"] == "A" and rows.loc[1000000, "image"] == 0
    assert list(rows.loc[3000000, ["A", "B", "C", "D"]]) == ["a plate of food", "a pen", "a book", "a cup"]
    # 3 options (D written as "None", which pandas reads as missing): 3 rotations; 2 options: 2.
    assert {7, 1000007, 2000007} <= set(rows.index) and 3000007 not in rows.index
    assert {3, 1000003} <= set(rows.index) and 2000003 not in rows.index
    # Abnormal questions stay once: two option letters in a text, an option "NO", answer D with 3 options.
    for index in (4, 5, 6):
        assert index in rows.index and index + 1_000_000 not in rows.index
    assert (rows["g_index"] == [i % 1_000_000 for i in rows.index]).all()


@pytest.mark.parametrize(
    "frame, message",
    [
        (
            pd.DataFrame({"index": [1], "A": ["x"], "B": [None], "C": ["z"], "answer": ["A"]}),
            "option C follows an empty option B",
        ),
        (pd.DataFrame({"index": [1], "A": ["x"], "B": [None], "answer": ["A"]}), "a single option"),
        (pd.DataFrame({"index": [1], "A": ["x"], "B": ["y"], "answer": [""]}), "answer must be an option letter"),
        (pd.DataFrame({"index": [1], "A": [3.0], "B": [4.0], "answer": ["A"]}), "option A must be text"),
        (pd.DataFrame({"index": [1], "A": ["x"], "C": ["y"], "answer": ["A"]}), "option column 'C' without column 'B'"),
    ],
)
def test_build_circular_rows_errors_where_vlmevalkit_crashes(frame, message):
    with pytest.raises(UserError, match=message):
        build_circular_rows(frame, source="base.tsv")


# ---------------------------------------------------------------------------------------------------------
# Circular evaluation


@pytest.mark.parametrize("matcher, judge_mode", COMBOS)
def test_circular_evaluation_matches_official_question_by_question(matcher, judge_mode):
    expected = official(matcher, judge_mode)
    judge = FakeJudge() if judge_mode == "judge" else None
    suite = MmbenchSuite(matcher=matcher, judge=judge)
    pairs = suite.read_predictions(PREDICTIONS)
    scored = suite.score_predictions(pairs)
    units = scored_units(suite, pairs, scored)
    assert set(units) == set(expected["groups"])
    for g, group in expected["groups"].items():
        stats, rotations = units[g]
        assert stats[1] == group["hit"], (g, [s.details for s in rotations])
        status = official_status(group, judged=judge is not None)
        assert {s.details["group_status"] for s in rotations} == {status}, g
        assert group_status([s.details["status"] for s in rotations]) == status
        assert stats[2] == (status == "needs_judge")
    # Each rotation's rule extraction, as prefetch_answer.
    extracted = {str(r["index"]): r["extracted"] for r in expected["rows"]}
    for (item, _), s in zip(pairs, scored):
        assert s.details["extracted"] == extracted[item.id], item.id
    # The judge was asked the same prompts, in the same order.
    assert (judge.prompts if judge else []) == expected["judge_prompts"]


@pytest.mark.parametrize("matcher, judge_mode", COMBOS)
def test_metrics_equal_official_report(matcher, judge_mode):
    expected = official(matcher, judge_mode)
    suite = MmbenchSuite(matcher=matcher, judge=FakeJudge() if judge_mode == "judge" else None)
    pairs = suite.read_predictions(PREDICTIONS)
    scored = suite.score_predictions(pairs)
    units = scored_units(suite, pairs, scored)
    values = suite.metric_values(np.sum([u[0] for u in units.values()], axis=0))
    report = {("overall" if k == "Overall" else k): v[0] for k, v in expected["report"].items() if k != "split"}
    assert {k: values[k] for k in report} == report  # exact: same counts, same division
    needs = [g for g, group in expected["groups"].items() if official_status(group, judge_mode == "judge") == "needs_judge"]
    assert values["needs_judge"] == len(needs)
    listed = questions_needing_judge((item.unit, s.details) for (item, _), s in zip(pairs, scored))
    assert sorted(listed) == sorted(needs)
    assert bool(needs) == (judge_mode == "exact")


def test_scoring_rotations_one_by_one_gives_the_same_questions():
    """score() per rotation (as the runner calls it) asks the judge more often, with the same outcome."""
    expected = official("current", "judge")
    judge = FakeJudge()
    suite = MmbenchSuite(judge=judge)
    pairs = suite.read_predictions(PREDICTIONS)
    units = scored_units(suite, pairs, [suite.score(item, output) for item, output in pairs])
    for g, group in expected["groups"].items():
        assert units[g][0][1] == group["hit"], g
    assert set(expected["judge_prompts"]) <= set(judge.prompts)


def test_needs_judge_is_counted_and_never_a_random_letter():
    for replies, default in (({}, None), ({}, "I am not sure"), ({}, "Failed to obtain answer via API")):
        judge = FakeJudge(replies, default)
        suite = MmbenchSuite(judge=judge)
        pairs = suite.read_predictions(PREDICTIONS)
        scored = suite.score_predictions(pairs)
        undecided = [s for s in scored if s.details["status"] == "needs_judge" and "judge_replies" in s.details]
        assert undecided and all(len(s.details["judge_replies"]) == 3 for s in undecided)
        assert all(s.details["judged"] is None and s.scores["correct"] == 0 for s in undecided)
        units = scored_units(suite, pairs, scored)
        exact = official("current", "exact")
        for g, group in exact["groups"].items():
            # Without a usable reply, every question the rules left open stays needs_judge, as with no judge.
            assert units[g][0][2] == (official_status(group, False) == "needs_judge"), g


def test_predictions_are_read_as_pandas_reads_them():
    suite = MmbenchSuite()
    pairs = dict((item.id, output) for item, output in suite.read_predictions(PREDICTIONS))
    assert pairs["2000009"] == "nan"  # the text None
    assert pairs["1000007"] == "nan"  # an empty cell
    assert suite.orphan_rows == [4000099]  # a rotation without its question is ignored, as VLMEvalKit does
    assert "3000107" not in pairs and "2000107" in pairs  # a missing rotation: the rest are scored
    ids = list(pairs)
    assert ids[:4] == ["0", "1000000", "2000000", "3000000"]  # questions in index order, rotation 0 first


def test_judge_prompt_is_vlmevalkit_prompt():
    prompts = official("current", "judge")["judge_prompts"]
    english = next(p for p in prompts if "Question: Which color is the largest shape??" in p)
    choices = {"A": "blue", "B": "red", "C": "green"}
    assert judge_prompt("Which color is the largest shape?", choices, "I think it's B or C") == english
    chinese = next(p for p in prompts if "问题: 图中最主要的物体是什么?" in p)
    assert chinese.startswith("你是一个帮助我匹配答案") and "选项: There are several options: \nA. " in chinese


# ---------------------------------------------------------------------------------------------------------
# Items, files, config


def test_items_from_a_base_tsv_are_its_circular_rows(tmp_path):
    suite = MmbenchSuite(BASE, image_cache=tmp_path / "cache")
    items = suite.items()
    circular = pd.read_csv(OFFICIAL / "base_circular.tsv", sep="\t")
    assert sorted(int(it.id) for it in items) == sorted(circular["index"])
    by_id = {it.id: it for it in items}
    item = by_id["1000001"]
    assert item.unit == "1" and item.target == "B" and item.meta["rotation"] == 1
    image, text = item.messages[0].parts
    assert isinstance(image, ImagePart) and isinstance(text, TextPart)
    assert text.text == (
        "Hint: The image shows shapes.\nQuestion: What shape is in the middle?\nOptions:\nA. circle\nB. triangle\n"
        "C. star\nD. square\nPlease select the correct answer from the options above. \n"
    )
    # Every rotation shows the image of its question's rotation 0.
    raw = pd.read_csv(BASE, sep="\t").set_index("index")
    assert Path(image.path).read_bytes() == base64.b64decode(raw.loc[1, "image"])
    assert by_id["1"].messages[0].parts[0].path == image.path
    # The already circular file gives the same items.
    again = MmbenchSuite(OFFICIAL / "base_circular.tsv", image_cache=tmp_path / "cache").items()
    def described(items):
        return {it.id: (it.unit, it.target, it.messages) for it in items}

    assert described(again) == described(items)


def test_image_path_column(tmp_path):
    frame = pd.read_csv(BASE, sep="\t").drop(columns=["image"]).iloc[:2]
    frame["image_path"] = ["img/a.png", "img/b.png"]
    frame.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    items = MmbenchSuite(tmp_path / "b.tsv").items()
    assert {it.messages[0].parts[0].path for it in items} == {str(tmp_path / "img/a.png"), str(tmp_path / "img/b.png")}


@pytest.mark.parametrize("column", ["index", "answer", "prediction", "B"])
def test_missing_column_names_file_and_column(tmp_path, column):
    frame = pd.read_csv(PREDICTIONS, sep="\t").drop(columns=[column])
    frame.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    with pytest.raises(UserError, match=rf"p.tsv: missing column '{column}'"):
        MmbenchSuite().read_predictions(tmp_path / "p.tsv")


def test_bad_index_and_duplicates(tmp_path):
    frame = pd.read_csv(PREDICTIONS, sep="\t")
    bad = frame.astype({"index": object})
    bad.loc[3, "index"] = "x7"
    bad.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    with pytest.raises(UserError, match=r"p.tsv:5: column 'index' must be an integer, got 'x7'"):
        MmbenchSuite().read_predictions(tmp_path / "p.tsv")
    dup = pd.concat([frame, frame.iloc[[0]]])
    dup.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    with pytest.raises(UserError, match=rf"d.tsv:{len(frame) + 2}: duplicate index {frame['index'].iloc[0]}"):
        MmbenchSuite().read_predictions(tmp_path / "d.tsv")
    with pytest.raises(UserError, match="MMBench TSV not found"):
        read_mmbench_tsv(tmp_path / "nope.tsv")


def test_for_scoring_rebuilds_metrics_and_unit_statistics():
    suite = MmbenchSuite(matcher="legacy", judge=FakeJudge())
    pairs = suite.read_predictions(PREDICTIONS)
    scored = suite.score_predictions(pairs)
    config = json.loads(json.dumps(suite.config_dict()))
    assert config["matcher"] == "legacy" and config["judge"] == "fake-judge"
    rebuilt = MmbenchSuite.for_scoring(config)
    assert rebuilt.stat_names == suite.stat_names
    units = scored_units(rebuilt, pairs, scored)
    sums = np.sum([u[0] for u in units.values()], axis=0)
    assert rebuilt.metric_values(sums) == suite.metric_values(sums)
    names = [m.name for m in suite.metrics()]
    assert names[0] == "overall" and names[-1] == "needs_judge"
    assert {"CP", "FP-S", "FP-C", "LR", "RR", "AR", "ocr", "image_topic"} <= set(names)


def test_category_named_like_a_metric_gets_a_prefix(tmp_path):
    frame = pd.read_csv(PREDICTIONS, sep="\t")
    frame.loc[frame["category"] == "ocr", "category"] = "overall"
    frame.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    suite = MmbenchSuite()
    suite.read_predictions(tmp_path / "p.tsv")
    names = [m.name for m in suite.metrics()]
    assert names.count("overall") == 1 and "category:overall" in names


def test_data_fingerprint_ignores_predictions(tmp_path):
    a = MmbenchSuite()
    a.read_predictions(PREDICTIONS)
    frame = pd.read_csv(PREDICTIONS, sep="\t")
    frame["prediction"] = "A"
    frame.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    b = MmbenchSuite()
    b.read_predictions(tmp_path / "p.tsv")
    assert a.data_fingerprint() == b.data_fingerprint() != ""
