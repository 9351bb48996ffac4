"""MM-Vet: grading requests, retry schedule and scores against the official mm-vet_evaluator.py (run with a
stand-in client, fixtures/mmvet/README.md); lmms-eval's prompt; missing grades; loaders."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from csr_bench.errors import UserError
from csr_bench.judges import JudgeReply, OpenAIJudge
from csr_bench.runner.scoring import score_pairs
from csr_bench.suites.mmvet import CAPABILITIES, MMVetSuite, grading_requests
from tests.judges.chat_server import ChatServer

FIX = Path(__file__).parent / "fixtures" / "mmvet"
OFFICIAL_REQUESTS = json.loads((FIX / "expected_official_requests.json").read_text())
OFFICIAL_REPLIES = json.loads((FIX / "judge_replies_official.json").read_text())


class KeyedJudge:
    """Answers each request as the official run's stand-in client answered the same request."""

    def __init__(self):
        self.requests = []
        self.by_request = {}
        for request, reply in zip(OFFICIAL_REQUESTS, OFFICIAL_REPLIES):
            self.by_request.setdefault(json.dumps(request, sort_keys=True), reply)

    def describe(self):
        return {"kind": "keyed"}

    def complete(self, request):
        d = request.to_dict()
        self.requests.append(d)
        return JudgeReply(self.by_request[json.dumps(d, sort_keys=True)])


def _run(suite, answers_file=FIX / "results.json"):
    answers = suite.read_predictions(answers_file)
    samples = score_pairs(suite, [(it, answers[it.id]) for it in suite.items()])
    return samples, suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])


def test_requests_and_grades_match_the_official_evaluator():
    judge = KeyedJudge()
    samples, values = _run(MMVetSuite(FIX, judge=judge))
    # The official sends a sixth request for v1_4 whose reply it never reads; everything else is identical.
    official = OFFICIAL_REQUESTS[:12] + OFFICIAL_REQUESTS[13:]
    assert judge.requests == official
    grades = json.loads((FIX / "expected_official_grades.json").read_text())
    got = {s.item_id: s.scores.get("grade") for s in samples}
    assert {k: v for k, v in got.items() if k != "v1_4"} == {k: v for k, v in grades.items() if k != "v1_4"}
    # v1_4 never got a usable grade: the official writes 0.0, we leave it out and count it.
    assert got["v1_4"] is None and values["judge_missing"] == 1
    with open(FIX / "expected_official_cap_score.csv") as f:
        official_row = next(csv.DictReader(f))
    sums = [sum(c) for c in zip(*[s.stats for s in samples])]
    assert round(100 * sums[0] / (sums[1] + sums[2]), 1) == float(official_row["total"])  # with the 0.0 put back
    assert values["score"] == pytest.approx(100 * (0.5 + 1.0 + 0.5 + 0.0 + 0.3) / 5)
    data = json.loads((FIX / "mm-vet.json").read_text())
    for cap in CAPABILITIES:  # the official per-capability mean over the judged questions
        judged = [grades[k] for k, q in data.items() if cap in q["capability"] and k != "v1_4"]
        expected = 100 * sum(judged) / len(judged) if judged else None
        assert values[f"cap_{cap}"] == (pytest.approx(expected) if expected is not None else None), cap


def test_llava_answer_files_use_integer_ids():
    suite = MMVetSuite(FIX, judge=KeyedJudge())
    assert suite.read_predictions(FIX / "answers_llava.jsonl") == suite.read_predictions(FIX / "results.json")


def test_lmms_variant_prompt_and_schedule():
    requests = grading_requests("lmms", "What is x?", "-1<AND>-5", "x = 3")
    assert [r.temperature for r in requests] == [0.0, 0.5, 1.0, 1.5]
    assert all(r.max_tokens == 128 and len(r.messages) == 1 for r in requests)
    content = requests[0].messages[0][1]
    assert "\ngpt_query_prompt | Ground truth | Prediction | Correctness\n" in content
    assert content.endswith("| 1.0\n\nWhat is x? | -1 <AND> -5 | x = 3 |")


def test_http_judge_failures_are_missing(tmp_path):
    def behaviour(body):
        content = body["messages"][-1]["content"]
        if "Which country is this?" in content:
            return ("status", 503)
        return "1.0" if "What animal" in content else "0.2"

    with ChatServer(behaviour) as server:
        judge = OpenAIJudge("gpt-4-0613", base_url=server.base_url, cache_dir=tmp_path, max_retries=1, backoff=0.0)
        samples, values = _run(MMVetSuite(FIX, judge=judge))
        assert values["judge_missing"] == 1
        assert values["score"] == pytest.approx(100 * (1.0 + 0.2 * 4) / 5)
        assert all(r["max_tokens"] == 3 and r["temperature"] == 0.0 for r in server.requests)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    return buf.getvalue()


def test_parquet_schema(tmp_path):
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.table({"question_id": ["v1_0", "v1_1"], "image": [{"bytes": _png(), "path": None}] * 2,
                             "question": ["q0", "q1"], "answer": ["a", "b<OR>c"], "capability": ["rec,ocr", "math"],
                             "image_source": ["s", "s"]}), path)
    suite = MMVetSuite(path, judge=KeyedJudge(), image_cache=tmp_path / "c")
    assert [it.meta["capabilities"] for it in suite.items()] == [["rec", "ocr"], ["math"]]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question_id": ["v1_0"], "image": [None], "question": ["q"], "answer": ["a"]}), bad)
    with pytest.raises(UserError, match=r"bad.parquet: missing column 'capability'"):
        MMVetSuite(bad, judge=KeyedJudge())


def test_answers_with_other_ids(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"v1_0": "a", "v1_99": "b"}))
    with pytest.raises(UserError, match=r"has 2 answers but .*mm-vet.json has 6 questions;.*v1_99 not in the questions"):
        MMVetSuite(FIX, judge=KeyedJudge()).read_predictions(bad)
