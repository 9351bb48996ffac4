"""SEED-Bench: loaders (official JSON, lmms-lab parquet) and both scorers against the official programs' outputs
(fixtures/seed_bench/README.md says how the expected files were made)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from csr_bench.errors import UserError
from csr_bench.runner.scoring import score_pairs
from csr_bench.suites.seed_bench import DIMENSIONS, SeedBenchSuite, correct_lmms

FIX = Path(__file__).parent / "fixtures" / "seed_bench"


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _sums(suite, answers):
    items = suite.items()
    samples = score_pairs(suite, [(it, answers[it.id]) for it in items])
    return samples, np.sum([s.stats for s in samples], axis=0)


def test_official_file_loads_image_questions_only_with_the_llava_prompt():
    suite = SeedBenchSuite(FIX / "SEED-Bench.json")
    items = suite.items()
    assert [it.id for it in items if it.id == "900"] == []  # the video question is not an item
    assert len(items) == 23
    first = items[0]
    assert first.messages[0].parts[0].path == str(FIX / "SEED-Bench-image" / "img_0.jpg")
    assert first.messages[0].parts[1].text == ("Question number 0?\nA. apple 0\nB. banana 0\nC. cherry 0\nD. date 0"
                                               "\nAnswer with the option's letter from the given choices directly.")
    assert items[0].unit == items[1].unit == "img_0.jpg"
    assert suite.config_dict() == {"variant": "llava"}


def test_llava_variant_matches_convert_seed_for_submission():
    suite = SeedBenchSuite(FIX / "SEED-Bench.json")
    answers = suite.read_predictions(FIX / "answers.jsonl")
    _, sums = _sums(suite, answers)
    values = suite.metric_values(sums)
    expected = (FIX / "expected_llava_convert_seed.txt").read_text()
    image_acc = float(re.search(r"image accuracy: ([\d.]+)%", expected).group(1))
    assert round(values["accuracy"], 2) == image_acc
    names = {v: k for k, v in json.loads((FIX / "SEED-Bench.json").read_text())["question_type"].items()}
    for type_id, dim in DIMENSIONS.items():
        official = float(re.search(rf"{names[type_id]}: ([\d.]+)%", expected).group(1))
        assert round(values[f"acc_{dim}"], 2) == official, dim


def test_lmms_variant_matches_lmms_eval_item_by_item():
    expected = json.loads((FIX / "expected_lmms_eval.json").read_text())
    suite = SeedBenchSuite(FIX / "SEED-Bench.json", variant="lmms")
    answers = suite.read_predictions(FIX / "answers.jsonl")
    samples, sums = _sums(suite, answers)
    assert {s.item_id: s.scores["correct"] for s in samples} == {
        k: v for k, v in expected["per_item_correct"].items() if k != "900"}
    assert suite.metric_values(sums)["accuracy"] == pytest.approx(100 * expected["seed_image"])
    # The two rules disagree on the quirky answers ("B.", "c", "Banana" ...).
    llava = SeedBenchSuite(FIX / "SEED-Bench.json")
    assert llava.metric_values(_sums(llava, answers)[1])["accuracy"] < suite.metric_values(sums)["accuracy"]


def test_lmms_rule_edge_cases():
    assert correct_lmms("  a  ", "A") and correct_lmms("Apple", "A") and not correct_lmms("", "A")
    assert correct_lmms("(A)", "A") is False  # first character only


def test_parquet_schema_and_images(tmp_path):
    rows = {
        "question_id": ["1", "2", "3"], "question": ["q1?", "q2?", "q3?"], "choice_a": ["a"] * 3,
        "choice_b": ["b"] * 3, "choice_c": ["c"] * 3, "choice_d": ["d"] * 3, "answer": ["A", "B", "C"],
        "data_id": [["x.jpg"], ["y.jpg"], ["v.mp4"]], "data_type": ["image", "image", "video"],
        "question_type_id": [1, 5, 10],
        "image": [[{"bytes": _png((255, 0, 0)), "path": None}], [{"bytes": _png((0, 255, 0)), "path": None}], []],
    }
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.table(rows), path)
    suite = SeedBenchSuite(path, image_cache=tmp_path / "images")
    items = suite.items()
    assert [it.id for it in items] == ["1", "2"]
    image = Path(items[0].messages[0].parts[0].path)
    assert image.parent == tmp_path / "images" and Image.open(image).getpixel((0, 0)) == (255, 0, 0)
    assert items[0].unit == "x.jpg"
    answers_file = tmp_path / "answers.jsonl"
    answers_file.write_text('{"question_id": 1, "text": "A"}\n{"question_id": "2", "text": "C"}\n')
    answers = suite.read_predictions(answers_file)
    assert [s.scores["correct"] for s in score_pairs(suite, [(it, answers[it.id]) for it in items])] == [1, 0]
    assert len(suite.data_fingerprint()) == 64


def test_parquet_missing_column_is_one_clear_error(tmp_path):
    path = tmp_path / "test.parquet"
    pq.write_table(pa.table({"question_id": ["1"], "question": ["q"], "answer": ["A"]}), path)
    with pytest.raises(UserError, match=r"test.parquet: missing column 'choice_a'"):
        SeedBenchSuite(path)


def test_answers_with_other_ids_name_both_files_and_counts(tmp_path):
    suite = SeedBenchSuite(FIX / "SEED-Bench.json")
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"question_id": 100, "text": "A"}\n{"question_id": 12345, "text": "B"}\n')
    with pytest.raises(UserError) as e:
        suite.read_predictions(bad)
    msg = str(e.value)
    assert str(bad) in msg and "SEED-Bench.json" in msg and "2 answers" in msg and "23 questions" in msg
    assert "12345" in msg and "\n" not in msg


def test_unknown_variant():
    with pytest.raises(UserError, match="unknown SEED-Bench variant 'x'"):
        SeedBenchSuite(FIX / "SEED-Bench.json", variant="x")
