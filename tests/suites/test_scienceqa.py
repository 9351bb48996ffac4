"""ScienceQA-IMG: official folder and lmms-lab parquet loaders; LLaVA's and lmms-eval's scorers item by item."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from csr_bench.errors import UserError
from csr_bench.runner.scoring import score_pairs
from csr_bench.suites.scienceqa import ScienceQASuite, extract_letter_llava

FIX = Path(__file__).parent / "fixtures" / "scienceqa"


def _score(suite, answers):
    items = suite.items()
    return score_pairs(suite, [(it, answers[it.id]) for it in items])


def test_official_folder_keeps_image_questions_of_the_split():
    suite = ScienceQASuite(FIX)
    ids = [it.id for it in suite.items()]
    assert "3" not in ids and "99" not in ids and len(ids) == 14
    item = suite.items()[1]
    assert item.messages[0].parts[0].path == str(FIX / "images" / "test" / "2" / "image.png")
    expected_prompts = json.loads((FIX / "expected_lmms_eval.json").read_text())["prompts"]
    for it in suite.items():
        if it.id in expected_prompts:
            assert it.messages[0].parts[1].text == expected_prompts[it.id]


def test_llava_variant_matches_eval_science_qa_on_image_questions():
    expected = json.loads((FIX / "expected_llava_eval_science_qa_result.json").read_text())
    problems = json.loads((FIX / "problems.json").read_text())
    suite = ScienceQASuite(FIX)
    samples = _score(suite, suite.read_predictions(FIX / "answers.jsonl"))
    for s in samples:
        assert s.scores["correct"] == int(expected["results"][s.item_id] == problems[s.item_id]["answer"]), s.item_id
        assert s.details["parsed"] == "FAILED" or expected["results"][s.item_id] != -1 or s.details["parsed"] in "ABCDE"
    img_acc = float(re.search(r"IMG-Accuracy: ([\d.]+)%", (FIX / "expected_llava_eval_science_qa.txt").read_text())[1])
    sums = [sum(col) for col in zip(*[s.stats for s in samples])]
    assert round(suite.metric_values(sums)["accuracy"], 2) == img_acc


def test_lmms_variant_matches_sqa_process_results():
    expected = json.loads((FIX / "expected_lmms_eval.json").read_text())["per_item_exact_match"]
    suite = ScienceQASuite(FIX, variant="lmms")
    samples = _score(suite, suite.read_predictions(FIX / "answers.jsonl"))
    assert {s.item_id: float(s.scores["correct"]) for s in samples} == {k: v for k, v in expected.items() if k != "3"}


def test_letter_extraction_quirks():
    assert extract_letter_llava("The answer is B.") == "B"
    assert extract_letter_llava("The answer is B") == "FAILED"  # the pattern needs a character after the letter
    assert extract_letter_llava("The answer is A. The answer is A.") == "FAILED"  # two matches
    assert extract_letter_llava("B. q") == "B" and extract_letter_llava("B.q") == "FAILED"


def test_llava_prompts_from_llava_question_file(tmp_path):
    for name in ("problems.json", "pid_splits.json"):
        (tmp_path / name).write_text((FIX / name).read_text())
    (tmp_path / "llava_test_CQM-A.json").write_text(json.dumps(
        [{"id": "1", "image": "1/image.png", "conversations": [
            {"from": "human", "value": "<image>\nContext: N/A\nWhich one?\nA. red\nB. blue"},
            {"from": "gpt", "value": "A"}]}]))
    suite = ScienceQASuite(tmp_path)
    first = suite.items()[0]
    assert first.messages[0].parts[1].text == ("Context: N/A\nWhich one?\nA. red\nB. blue\n"
                                               "Answer with the option's letter from the given choices directly.")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (0, 0, 255)).save(buf, format="PNG")
    return buf.getvalue()


def test_parquet_schema(tmp_path):
    folder = tmp_path / "ScienceQA" / "ScienceQA-IMG"
    folder.mkdir(parents=True)
    table = pa.table({
        "image": [{"bytes": _png(), "path": None}, None, {"bytes": _png(), "path": None}],
        "question": ["q0?", "q1?", "q2?"], "choices": [["a", "b"], ["c", "d"], ["e", "f", "g"]],
        "answer": pa.array([1, 0, 2], pa.int8()), "hint": ["", "h", "Look."],
        "subject": ["natural science", "social science", "social science"],
    })
    pq.write_table(table, folder / "test-00000-of-00001.parquet")
    pq.write_table(table.slice(0, 1), folder / "validation-00000-of-00001.parquet")
    suite = ScienceQASuite(tmp_path / "ScienceQA", image_cache=tmp_path / "img")
    items = suite.items()
    assert [it.id for it in items] == ["0", "2"]
    assert items[1].messages[0].parts[1].text.startswith("Context: Look.\nq2?\nA. e\nB. f\nC. g\n")
    answers = tmp_path / "a.jsonl"
    answers.write_text('{"question_id": "0", "text": "B"}\n{"question_id": "1", "text": "A"}\n'
                       '{"question_id": "2", "text": "B"}\n')
    samples = _score(suite, suite.read_predictions(answers))
    assert [s.scores["correct"] for s in samples] == [1, 0]
    values = suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])
    assert values["acc_natural"] == 100.0 and values["acc_social"] == 0.0 and values["acc_language"] is None


def test_parquet_missing_column(tmp_path):
    path = tmp_path / "test.parquet"
    pq.write_table(pa.table({"image": [None], "question": ["q"], "answer": [0]}), path)
    with pytest.raises(UserError, match=r"missing column 'choices'"):
        ScienceQASuite(path)


def test_answers_with_other_ids(tmp_path):
    bad = tmp_path / "a.jsonl"
    bad.write_text('{"question_id": "1", "text": "A"}\n')
    with pytest.raises(UserError, match=r"has 1 answers but .*problems.json has 14 questions; no answer for"):
        ScienceQASuite(FIX).read_predictions(bad)
