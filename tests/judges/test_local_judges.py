"""The local `hf` judge (through the Adapter protocol; a recording adapter stands in for a model here) and the
deterministic WorldJudge."""

from __future__ import annotations

from csr_bench.judges import HFJudge, JudgeRequest, WorldJudge, make_judge
from csr_bench.suites.llava_wild import parse_scores_llava, review_content
from csr_bench.suites.mmvet import grading_prompt, parse_grade


class RecordingAdapter:
    name = "recording"

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def generate(self, requests, *, max_new_tokens, do_sample=False, **kw):
        self.calls.append((requests, max_new_tokens, do_sample))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return [reply]

    def fingerprint(self):
        return "fp1"


def test_hf_judge_converts_messages_decodes_greedily_and_caches(tmp_path):
    adapter = RecordingAdapter(["7 8", RuntimeError("prompt too long")])
    judge = HFJudge("hf:some-model", adapter=adapter, cache_dir=tmp_path)
    request = JudgeRequest.user("grade", system="sys", max_tokens=12)
    assert judge.complete(request).text == "7 8"
    (gen_requests, max_new_tokens, do_sample) = adapter.calls[0]
    messages = gen_requests[0].messages
    assert [(m.role, m.parts[0].text) for m in messages] == [("system", "sys"), ("user", "grade")]
    assert max_new_tokens == 12 and do_sample is False
    assert judge.complete(request).cached and len(adapter.calls) == 1
    failed = judge.complete(JudgeRequest.user("other"))
    assert failed.text is None and "prompt too long" in failed.error
    assert make_judge("hf:tiny", cache_dir=tmp_path).describe() == {"kind": "hf", "model": "tiny"}


def test_world_judge_grades_llava_bench_reviews_from_the_context():
    judge = WorldJudge({"cat": "cat", "cats": "cat", "dog": "dog", "cup": "cup"})
    content = review_content("Objects: a cat and a dog.", "Describe.", "A cat and a dog.", "A cat and a cup.")
    reply = judge.complete(JudgeRequest.user(content, system="x"))
    assert parse_scores_llava(reply.text) == (10.0, 4.0)  # the model names half the objects and one absent cup
    assert judge.complete(JudgeRequest.user(content)).text == reply.text  # deterministic


def test_world_judge_grades_mmvet_rows_with_and_or():
    judge = WorldJudge({})
    for variant in ("official", "lmms"):
        def grade(answer, prediction):
            return parse_grade(judge.complete(JudgeRequest.user(grading_prompt(variant, "q?", answer, prediction))).text)
        assert grade("red<AND>blue", "it is red") == 0.5
        assert grade("red<AND>blue", "Red and BLUE.") == 1.0
        assert grade("cat<OR>kitten", "a kitten") == 1.0
        assert grade("2", "there are two cups") == 1.0
        assert grade("France", "it is spain\non two lines") == 0.0
    assert WorldJudge({}).complete(JudgeRequest.user("hello")).text is None


def test_world_judge_default_vocabulary_is_the_worlds():
    names = WorldJudge().object_names
    assert names["knives"] == "knife" and names["ball"] == "sports ball"
