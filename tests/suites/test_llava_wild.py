"""LLaVA-Bench in-the-wild: the judge requests, review parsing and summary match LLaVA's eval_gpt_review_bench.py /
summarize_gpt_review.py and lmms-eval; judge failures are missing and counted; the cache prevents repeat calls."""

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
from csr_bench.judges import JudgeReply, OpenAIJudge
from csr_bench.runner.scoring import score_pairs
from csr_bench.suites.llava_wild import LlavaWildSuite, parse_scores_llava, parse_scores_lmms
from tests.judges.chat_server import ChatServer

FIX = Path(__file__).parent / "fixtures" / "llava_wild"
REPLIES = json.loads((FIX / "judge_replies.json").read_text())


class ReplayJudge:
    """Replies in order, records requests (as the official run's stand-in client did)."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []

    def describe(self):
        return {"kind": "replay"}

    def complete(self, request):
        self.requests.append(request)
        return JudgeReply(self.replies.pop(0))


def _run(suite, answers_file=FIX / "answers.jsonl"):
    answers = suite.read_predictions(answers_file)
    samples = score_pairs(suite, [(it, answers[it.id]) for it in suite.items()])
    return samples, suite.metric_values([sum(c) for c in zip(*[s.stats for s in samples])])


def test_official_folder():
    suite = LlavaWildSuite(FIX, judge=ReplayJudge([]))
    items = suite.items()
    assert [it.id for it in items] == ["0", "1", "2", "3", "4", "5"]
    assert items[0].messages[0].parts[1].text == "What color is the cat?"
    assert items[0].messages[0].parts[0].path == str(FIX / "images" / "001.jpg") and items[0].unit == "001.jpg"
    assert suite.config_dict() == {"variant": "llava", "judge": {"kind": "replay"}}


def test_requests_and_summary_match_llava():
    judge = ReplayJudge(REPLIES)
    samples, values = _run(LlavaWildSuite(FIX, judge=judge))
    official = json.loads((FIX / "expected_llava_requests.json").read_text())
    assert [r.to_dict()["messages"] for r in judge.requests] == [r["messages"] for r in official]
    assert all(r.max_tokens == o["max_tokens"] for r, o in zip(judge.requests, official))
    # summarize_gpt_review.py prints: category, 100 x model/reference, reference mean x 10, model mean x 10.
    printed = {m[2]: tuple(map(float, m.groups()[2:])) for m in re.finditer(
        r"^(llava_bench_)?(\w+) ([\d.]+) ([\d.]+) ([\d.]+)$", (FIX / "expected_llava_summarize.txt").read_text(), re.M)}
    assert (round(values["score"], 1), round(values["reference_mean"], 1), round(values["model_mean"], 1)) == printed["all"]
    for c in ("conv", "detail", "complex"):
        assert round(values[f"score_{c}"], 1) == printed[c][0]
    assert values["judge_missing"] == 0
    reviews = [json.loads(line) for line in (FIX / "expected_llava_reviews.jsonl").read_text().splitlines()]
    assert [[s.scores["reference_score"], s.scores["model_score"]] for s in samples] == [r["tuple"] for r in reviews]


def test_review_parsers_match_official():
    for case in json.loads((FIX / "expected_parse_scores.json").read_text()):
        for parse, key in ((parse_scores_llava, "llava"), (parse_scores_lmms, "lmms")):
            got = parse(case["review"])
            expected = [float(x) for x in case[key]]
            if expected == [-1.0, -1.0]:
                assert got is None, (key, case["review"])
            else:
                assert got is not None and [str(x) for x in got] == [str(x) for x in expected], (key, case["review"])


def test_lmms_variant_sends_only_the_user_message():
    judge = ReplayJudge(REPLIES)
    _run(LlavaWildSuite(FIX, variant="lmms", judge=judge))
    assert all([m[0] for m in r.messages] == ["user"] for r in judge.requests)


def _behaviour(fail: dict[str, object]):
    def reply(body):
        content = body["messages"][-1]["content"]
        for question, behaviour in fail.items():
            if f"[Question]\n{question}\n" in content:
                return behaviour
        i = next(i for i, q in enumerate(QUESTIONS) if f"[Question]\n{q}\n" in content)
        return REPLIES[i]
    return reply


QUESTIONS = [json.loads(line)["text"] for line in (FIX / "questions.jsonl").read_text().splitlines()]


def test_judge_failures_are_missing_counted_and_retried_on_rerun(tmp_path):
    fail = {QUESTIONS[1]: ("status", 500), QUESTIONS[3]: ("raw", b"garbage"), QUESTIONS[4]: ("sleep", 1.0),
            QUESTIONS[5]: "I cannot rate these."}
    with ChatServer(_behaviour(fail)) as server:
        def judge():
            return OpenAIJudge("gpt-4-0314", base_url=server.base_url, cache_dir=tmp_path, timeout=0.3,
                               max_retries=1, backoff=0.0)
        samples, values = _run(LlavaWildSuite(FIX, judge=judge()))
        assert values["judge_missing"] == 4
        assert [s.scores["judge_missing"] for s in samples] == [0, 1, 0, 1, 1, 1]
        # Only items 0 (conv: 9, 8) and 2 (complex: 7, 6.5) count.
        assert values["score"] == pytest.approx(100 * (8 + 6.5) / (9 + 7))
        assert values["score_conv"] == pytest.approx(100 * 8 / 9) and values["score_detail"] is None
        first_run = len(server.requests)
        assert first_run == 2 + 3 * 2 + 1  # 2 fine, 3 failing twice each, 1 unparsable reply (cached)
        # Rerun with the cache: the two judged items and the unparsable reply are not asked again.
        _run(LlavaWildSuite(FIX, judge=judge()))
        assert len(server.requests) - first_run == 3 * 2


def test_rerun_with_cache_makes_no_new_calls(tmp_path):
    with ChatServer(_behaviour({})) as server:
        def suite():
            return LlavaWildSuite(FIX, judge=OpenAIJudge("gpt-4-0314", base_url=server.base_url,
                                                         cache_dir=tmp_path, backoff=0.0))
        _, first = _run(suite())
        assert len(server.requests) == 6 and first["judge_missing"] == 0
        _, second = _run(suite())
        assert len(server.requests) == 6 and second == first


def test_default_judge_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CSR_BENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("CSR_BENCH_JUDGE_MODEL", raising=False)
    assert LlavaWildSuite(FIX).config_dict()["judge"]["model"] == "gpt-4-0314"
    assert LlavaWildSuite(FIX, variant="lmms").config_dict()["judge"]["model"] == "gpt-4o-2024-11-20"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    return buf.getvalue()


def test_parquet_schema_and_missing_column(tmp_path):
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"question_id": ["a", "b"], "question": ["q1", "q2"],
                             "image": [{"bytes": _png(), "path": None}] * 2, "caption": ["c1", "c2"],
                             "gpt_answer": ["r1", "r2"], "category": ["conv", "detail"], "image_id": ["i1", "i1"]}),
                   path)
    suite = LlavaWildSuite(path, judge=ReplayJudge(["10 5", "4 4"]), image_cache=tmp_path / "c")
    answers = tmp_path / "a.jsonl"
    answers.write_text('{"question_id": "a", "text": "m1"}\n{"question_id": "b", "text": "m2"}\n')
    _, values = _run(suite, answers)
    assert values["score"] == pytest.approx(100 * 9 / 14)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question_id": ["a"], "question": ["q"], "image": [None], "caption": ["c"],
                             "category": ["conv"]}), bad)
    with pytest.raises(UserError, match=r"bad.parquet: missing column 'gpt_answer'"):
        LlavaWildSuite(bad, judge=ReplayJudge([]))


def test_answers_with_other_ids(tmp_path):
    bad = tmp_path / "a.jsonl"
    bad.write_text('{"question_id": 0, "text": "x"}\n')
    with pytest.raises(UserError, match=r"has 1 answers but .*questions.jsonl has 6 questions"):
        LlavaWildSuite(FIX, judge=ReplayJudge([])).read_predictions(bad)


def test_judge_url_that_does_not_answer_stops_the_run(tmp_path):
    from tests.judges.chat_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    suite = LlavaWildSuite(FIX, judge=OpenAIJudge("m", base_url=url, cache_dir=tmp_path, max_retries=0))
    with pytest.raises(UserError, match=rf"judge at {re.escape(url)}/chat/completions cannot be reached"):
        _run(suite)


def test_world_judge_covers_the_judge_path(tmp_path):
    """A judge-style world suite: the context lists the scene's objects; WorldJudge grades from it."""
    from csr_bench.judges import WorldJudge

    (tmp_path / "questions.jsonl").write_text(
        '{"question_id": 0, "image": "a.png", "text": "Describe this image in detail.", "category": "detail"}\n'
        '{"question_id": 1, "image": "b.png", "text": "What is in the picture?", "category": "conv"}\n')
    (tmp_path / "context.jsonl").write_text('{"image": "a.png", "caption": "A cat and a dog."}\n'
                                            '{"image": "b.png", "caption": "A cup."}\n')
    (tmp_path / "answers_gpt4.jsonl").write_text('{"question_id": 0, "text": "A cat next to a dog."}\n'
                                                 '{"question_id": 1, "text": "A cup."}\n')
    suite = LlavaWildSuite(tmp_path, judge=WorldJudge())
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": 0, "text": "A cat and a knife."}\n{"question_id": 1, "text": "A cup."}\n')
    samples, values = _run(suite, answers)
    assert [(s.scores["reference_score"], s.scores["model_score"]) for s in samples] == [(10.0, 4.0), (10.0, 10.0)]
    assert values["score"] == pytest.approx(100 * 14 / 20) and values["judge_missing"] == 0
    assert suite.config_dict()["judge"] == {"kind": "world"}
