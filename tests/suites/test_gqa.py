"""GQA testdev balanced: loaders and both scorers against LLaVA's convert_gqa_for_eval.py + GQA eval.py and
lmms-eval's exact_match."""

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
from csr_bench.suites.gqa import GQASuite, correct_llava, correct_lmms

FIX = Path(__file__).parent / "fixtures" / "gqa"


def _run(suite):
    answers = suite.read_predictions(FIX / "answers.jsonl")
    samples = score_pairs(suite, [(it, answers[it.id]) for it in suite.items()])
    return samples, suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])


def test_official_questions_file():
    suite = GQASuite(FIX / "testdev_balanced_questions.json")
    items = suite.items()
    assert "211" not in [it.id for it in items]  # not balanced
    assert items[0].messages[0].parts[0].path == str(FIX / "images" / "n1.jpg")
    assert items[0].messages[0].parts[1].text == "Question 201?\nAnswer the question using a single word or phrase."
    assert items[0].unit == "n1"


def test_llava_variant_matches_gqa_eval_py():
    samples, values = _run(GQASuite(FIX))
    converted = {p["questionId"]: p["prediction"]
                 for p in json.loads((FIX / "expected_llava_convert_gqa_predictions.json").read_text())}
    questions = json.loads((FIX / "testdev_balanced_questions.json").read_text())
    for s in samples:  # item by item: eval.py's predicted == gold on convert_gqa_for_eval.py's predictions
        assert s.scores["correct"] == int(converted[s.item_id] == questions[s.item_id]["answer"])
    printed = (FIX / "expected_gqa_eval.txt").read_text()
    for name, key in (("Accuracy", "accuracy"), ("Binary", "binary"), ("Open", "open")):
        assert round(values[key], 2) == float(re.search(rf"^{name}: ([\d.]+)%", printed, re.M)[1])
    for t in ("choose", "compare", "logical", "query", "verify", "attr", "cat", "global", "obj", "rel"):
        assert round(values[f"acc_{t}"], 2) == float(re.search(rf"^  {t}: ([\d.]+)%", printed, re.M)[1])


def test_lmms_variant_matches_exact_match_item_by_item():
    expected = json.loads((FIX / "expected_lmms_eval.json").read_text())["per_item_exact_match"]
    samples, _ = _run(GQASuite(FIX, variant="lmms"))
    assert {s.item_id: float(s.scores["correct"]) for s in samples} == {k: v for k, v in expected.items() if k != "211"}


def test_rules_disagree_where_expected():
    assert correct_llava("Yes.", "yes") and correct_lmms("Yes.", "yes")
    assert not correct_llava("Yes!", "yes") and correct_lmms("Yes!", "yes")
    assert not correct_llava("T-shirt.", "tshirt") and correct_lmms("T-shirt.", "tshirt")
    assert not correct_lmms("dark  blue", "dark blue")  # inner spaces are kept


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (9, 9, 9)).save(buf, format="JPEG")
    return buf.getvalue()


def test_lmms_lab_layout_joins_instructions_and_images(tmp_path):
    (tmp_path / "testdev_balanced_instructions").mkdir()
    (tmp_path / "testdev_balanced_images").mkdir()
    pq.write_table(pa.table({"id": ["q1", "q2"], "imageId": ["n7", "n8"], "question": ["Is it?", "What?"],
                             "answer": ["yes", "cat"], "isBalanced": [True, True],
                             "types": [{"structural": "verify", "semantic": "obj", "detailed": "x"},
                                       {"structural": "query", "semantic": "cat", "detailed": "y"}]}),
                   tmp_path / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet")
    pq.write_table(pa.table({"id": ["n7", "n8"], "image": [{"bytes": _jpeg(), "path": None}] * 2}),
                   tmp_path / "testdev_balanced_images" / "testdev-00000-of-00001.parquet")
    suite = GQASuite(tmp_path, image_cache=tmp_path / "cache")
    items = suite.items()
    assert [Path(it.messages[0].parts[0].path).name for it in items] == ["gqa_n7.jpg", "gqa_n8.jpg"]
    answers = tmp_path / "p.json"
    answers.write_text(json.dumps([{"questionId": "q1", "prediction": "yes"}, {"questionId": "q2", "prediction": "dog"}]))
    got = suite.read_predictions(answers)
    samples = score_pairs(suite, [(it, got[it.id]) for it in items])
    values = suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])
    assert values["accuracy"] == 50.0 and values["binary"] == 100.0 and values["open"] == 0.0


def test_instructions_without_images_is_an_error(tmp_path):
    path = tmp_path / "i.parquet"
    pq.write_table(pa.table({"id": ["q"], "imageId": ["n"], "question": ["?"], "answer": ["a"]}), path)
    with pytest.raises(UserError, match="pass image_root"):
        GQASuite(path)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["q"], "question": ["?"], "answer": ["a"]}), bad)
    with pytest.raises(UserError, match=r"bad.parquet: missing column 'imageId'"):
        GQASuite(bad, image_root=tmp_path)


def test_world_generator_gqa_file_loads(tmp_path):
    from csr_bench.world.generator import WorldConfig, generate_world

    paths = generate_world(tmp_path / "world", config=WorldConfig.quick(n_gqa_questions=15, n_vizwiz_questions=10))
    suite = GQASuite(paths.gqa_questions)
    items = suite.items()
    assert items and all(Path(it.messages[0].parts[0].path).exists() for it in items)
    samples = score_pairs(suite, [(it, it.target) for it in items])
    assert suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])["accuracy"] == 100.0
