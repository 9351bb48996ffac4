"""VizWiz-VQA val: loaders, EvalAI normalisation and VQA accuracy (LLaVA's m4c_evaluator / lmms-eval) and the
official VQA vqaEval.py rule, against the outputs of those programs (fixtures/vizwiz/README.md)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from csr_bench.errors import UserError
from csr_bench.runner.scoring import score_pairs
from csr_bench.suites.vizwiz import VizWizSuite
from csr_bench.suites.vqa_normalize import normalize_evalai, vqa_accuracy_evalai

FIX = Path(__file__).parent / "fixtures" / "vizwiz"
EXPECTED = json.loads((FIX / "expected_official.json").read_text())


def _samples(suite, answers_file=FIX / "answers.jsonl"):
    answers = suite.read_predictions(answers_file)
    return score_pairs(suite, [(it, answers[it.id]) for it in suite.items()])


def test_official_file_and_prompt():
    suite = VizWizSuite(FIX / "val.json")
    item = suite.items()[0]
    assert item.id == item.unit == "VizWiz_val_00000000.jpg"
    assert item.messages[0].parts[0].path == str(FIX / "val" / "VizWiz_val_00000000.jpg")
    assert item.messages[0].parts[1].text == (
        "What color is this?\nWhen the provided information is insufficient, respond with 'Unanswerable'."
        "\nAnswer the question using a single word or phrase.")


@pytest.mark.parametrize("variant", ["llava", "lmms"])
def test_evalai_variants_match_m4c_and_lmms_eval(variant):
    samples = _samples(VizWizSuite(FIX / "val.json", variant=variant))
    m4c = EXPECTED["m4c_per_item"]
    lmms = json.loads((FIX / "expected_lmms_eval.json").read_text())["per_item_accuracy"]
    for s in samples:
        assert s.scores["vqa_accuracy"] == pytest.approx(m4c[s.item_id]) == pytest.approx(lmms[s.item_id])
    suite = VizWizSuite(FIX / "val.json", variant=variant)
    values = suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])
    assert values["accuracy"] == pytest.approx(100 * EXPECTED["m4c_overall"])


def test_vqa_eval_variant_matches_official_vqaeval():
    samples = _samples(VizWizSuite(FIX / "val.json", variant="vqa_eval"))
    for s in samples:
        assert s.scores["vqa_accuracy"] == pytest.approx(EXPECTED["vqaeval_per_item_rounded_6"][s.item_id], abs=1e-6)
    # Ten identical human records: vqaEval leaves all of them out at once, so even an exact answer scores 0.
    assert {s.item_id: s.scores["vqa_accuracy"] for s in samples}["VizWiz_val_00000005.jpg"] == 0.0


def test_evalai_normalisation_matches_official():
    for raw, normalized in EXPECTED["evalai_normalized"].items():
        assert normalize_evalai(raw) == normalized, raw


def test_vqa_accuracy_counts():
    assert vqa_accuracy_evalai("a", ["a"] * 3 + ["b"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy_evalai("a", []) == 0.0


def test_lmms_variant_capitalizes_the_question(tmp_path):
    (tmp_path / "val.json").write_text(json.dumps([{"image": "a.jpg", "question": "what is THIS?",
                                                    "answers": [{"answer": "x", "answer_confidence": "yes"}]}]))
    expected = json.loads((FIX / "expected_lmms_eval.json").read_text())["prompt_for_what_is_THIS"]
    assert VizWizSuite(tmp_path / "val.json", variant="lmms").items()[0].messages[0].parts[1].text == expected
    assert VizWizSuite(tmp_path / "val.json").items()[0].messages[0].parts[1].text.startswith("what is THIS?")


def test_evalai_upload_files_are_read(tmp_path):
    upload = tmp_path / "upload.json"
    upload.write_text(json.dumps([{"image": e["image"], "answer": "red"} for e in json.loads((FIX / "val.json").read_text())]))
    assert set(VizWizSuite(FIX / "val.json").read_predictions(upload).values()) == {"red"}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    return buf.getvalue()


def test_parquet_schema(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.table({"question_id": ["VizWiz_val_1", "VizWiz_val_2"], "image": [{"bytes": _png(), "path": None}] * 2,
                             "question": ["what is it?", "color?"], "answers": [["cat"] * 10, ["red"] * 9 + ["blue"]],
                             "category": ["other", "other"]}), folder / "val-00000-of-00001.parquet")
    suite = VizWizSuite(tmp_path, image_cache=tmp_path / "c")
    answers = tmp_path / "a.jsonl"
    answers.write_text('{"question_id": "VizWiz_val_1", "text": "A cat."}\n{"question_id": "VizWiz_val_2", "text": "Blue"}\n')
    samples = _samples(suite, answers)
    assert [round(s.scores["vqa_accuracy"], 6) for s in samples] == [1.0, 0.3]
    with pytest.raises(UserError, match=r"missing column 'answers'"):
        pq.write_table(pa.table({"question_id": ["x"], "image": [None], "question": ["q"]}), tmp_path / "bad.parquet")
        VizWizSuite(tmp_path / "bad.parquet")


def test_answers_with_other_ids(tmp_path):
    bad = tmp_path / "a.jsonl"
    bad.write_text('{"question_id": "VizWiz_val_00000000.jpg", "text": "x"}\n{"question_id": "nope.jpg", "text": "x"}\n')
    with pytest.raises(UserError, match=r"has 2 answers but .*val.json has 10 questions;.*nope.jpg not in the questions"):
        VizWizSuite(FIX / "val.json").read_predictions(bad)


def test_world_generator_vizwiz_file_loads(tmp_path):
    from csr_bench.world.generator import WorldConfig, generate_world

    paths = generate_world(tmp_path / "world", config=WorldConfig.quick(n_gqa_questions=5, n_vizwiz_questions=12))
    suite = VizWizSuite(paths.vizwiz_annotations)
    items = suite.items()
    assert len(items) == 12 and all(Path(it.messages[0].parts[0].path).exists() for it in items)
    # The most common human answer always scores 1 (at least 7 of 10 agree in the world's files).
    from collections import Counter

    best = {it.id: Counter(a["answer"] for a in it.target).most_common(1)[0][0] for it in items}
    samples = score_pairs(suite, [(it, best[it.id]) for it in items])
    assert all(s.scores["vqa_accuracy"] == 1.0 for s in samples)


def test_datasets_save_to_disk_folder(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"question_id": ["q1"], "image": [{"bytes": _png(), "path": None}], "question": ["what?"],
         "answers": [["dog"] * 10], "category": ["other"]},
        features=datasets.Features({"question_id": datasets.Value("string"), "image": datasets.Image(),
                                    "question": datasets.Value("string"),
                                    "answers": datasets.Sequence(datasets.Value("string")),
                                    "category": datasets.Value("string")}))
    datasets.DatasetDict({"val": ds}).save_to_disk(str(tmp_path / "saved"))
    suite = VizWizSuite(tmp_path / "saved", image_cache=tmp_path / "c")
    (item,) = suite.items()
    assert Path(item.messages[0].parts[0].path).read_bytes() == _png()
    with pytest.raises(UserError, match="expected split 'test'"):
        VizWizSuite(tmp_path / "saved", split="test")
