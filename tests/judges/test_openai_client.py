"""The OpenAI-compatible judge against a real HTTP server on loopback: replies, cache, retries, failures."""

from __future__ import annotations

import json

import pytest

from csr_bench.errors import UserError
from csr_bench.judges import JudgeRequest, OpenAIJudge, make_judge
from csr_bench.judges.cache import CACHE_FILE, JudgeCache
from tests.judges.chat_server import ChatServer, free_port

SECRET = "sk-test-secret-123"


def _judge(server, tmp_path, **kw):
    return OpenAIJudge("gpt-test", base_url=server.base_url, api_key=SECRET, cache_dir=tmp_path / "cache",
                       timeout=kw.pop("timeout", 2.0), max_retries=kw.pop("max_retries", 2), backoff=0.0, **kw)


def test_reply_cache_and_persistence(tmp_path):
    with ChatServer(lambda body: "8 9\nfine") as server:
        judge = _judge(server, tmp_path)
        request = JudgeRequest.user("grade this", system="be precise", max_tokens=7)
        reply = judge.complete(request)
        assert reply.text == "8 9\nfine" and not reply.cached
        sent = server.requests[0]
        assert sent == {"model": "gpt-test", "temperature": 0.0, "max_tokens": 7,
                        "messages": [{"role": "system", "content": "be precise"}, {"role": "user", "content": "grade this"}]}
        assert judge.complete(request).cached and len(server.requests) == 1
        # Another process (a new judge on the same cache folder) makes no call either.
        again = _judge(server, tmp_path)
        assert again.complete(request).text == "8 9\nfine" and len(server.requests) == 1
        # A different request is a different key.
        again.complete(JudgeRequest.user("grade this", system="be precise", max_tokens=8))
        assert len(server.requests) == 2


def test_key_is_sent_but_never_stored_or_shown(tmp_path):
    with ChatServer(lambda body: "1 2") as server:
        judge = _judge(server, tmp_path)
        judge.complete(JudgeRequest.user("x"))
        assert server.auth_headers == [f"Bearer {SECRET}"]
        assert SECRET not in json.dumps(judge.describe()) and SECRET not in repr(judge)
        assert SECRET not in (tmp_path / "cache" / CACHE_FILE).read_text()


@pytest.mark.parametrize("behaviour, error", [
    (("status", 500), "HTTP 500"),
    (("status", 429), "HTTP 429"),
    (("raw", b"<html>not json</html>"), "malformed"),
    (("raw", b'{"choices": []}'), "malformed"),
    (("sleep", 1.0), "timed out"),
])
def test_failures_are_retried_a_bounded_number_of_times_then_missing(tmp_path, behaviour, error):
    with ChatServer(lambda body: "5 5" if "ok" in body["messages"][-1]["content"] else behaviour) as server:
        judge = _judge(server, tmp_path, timeout=0.3, max_retries=2)
        assert judge.complete(JudgeRequest.user("ok")).text == "5 5"  # the server is reachable
        reply = judge.complete(JudgeRequest.user("bad"))
        assert reply.text is None and error in reply.error
        assert len(server.requests) == 1 + 3  # one success, then 1 try + 2 retries
        assert judge.counters.failures == 1
        # Failures are not cached: the next run asks again.
        assert _judge(server, tmp_path, timeout=0.3, max_retries=0).complete(JudgeRequest.user("bad")).text is None
        assert len(server.requests) == 5


def test_unreachable_url_is_one_clear_user_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    judge = OpenAIJudge("m", base_url=url, cache_dir=tmp_path, max_retries=1, backoff=0.0)
    with pytest.raises(UserError) as e:
        judge.complete(JudgeRequest.user("x"))
    assert f"{url}/chat/completions" in str(e.value) and "cannot be reached" in str(e.value)
    assert "\n" not in str(e.value)


def test_credentials_in_the_url_are_not_shown(tmp_path):
    """A user:password@ part of the judge URL stays out of repr and error messages, as out of describe()."""
    url = f"http://user:s3cret@127.0.0.1:{free_port()}/v1"
    judge = OpenAIJudge("m", base_url=url, cache_dir=tmp_path, max_retries=0, backoff=0.0)
    assert "s3cret" not in repr(judge) and "127.0.0.1" in repr(judge)
    with pytest.raises(UserError, match="cannot be reached") as e:
        judge.complete(JudgeRequest.user("x"))
    assert "s3cret" not in str(e.value) and "127.0.0.1" in str(e.value)


def test_refused_key_before_any_success_is_a_user_error(tmp_path):
    with ChatServer(lambda body: ("status", 401)) as server:
        with pytest.raises(UserError, match="HTTP 401"):
            _judge(server, tmp_path).complete(JudgeRequest.user("x"))


def test_environment_configuration(tmp_path, monkeypatch):
    with ChatServer(lambda body: "ok") as server:
        monkeypatch.setenv("CSR_BENCH_JUDGE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("CSR_BENCH_CACHE", str(tmp_path))
        judge = make_judge("openai", default_model="gpt-4-0613")
        assert judge.describe() == {"kind": "openai", "model": "gpt-4-0613", "url": server.base_url}
        assert judge.complete(JudgeRequest.user("x")).text == "ok"
        assert server.auth_headers == [f"Bearer {SECRET}"]
        assert (tmp_path / "judge" / CACHE_FILE).exists()
        assert make_judge("openai:other-model").describe()["model"] == "other-model"
    with pytest.raises(UserError, match="unknown judge 'bogus'"):
        make_judge("bogus")


def test_cache_skips_a_line_cut_short_and_appends_after_it(tmp_path):
    cache = JudgeCache(tmp_path)
    cache.put("k1", {"r": 1}, "one")
    with open(tmp_path / CACHE_FILE, "a") as f:
        f.write('{"key": "k2", "text": "tw')  # a writer died mid-line
    cache = JudgeCache(tmp_path)
    assert cache.get("k1")["text"] == "one" and cache.get("k2") is None
    cache.put("k3", {"r": 3}, "three")
    reread = JudgeCache(tmp_path)
    assert reread.get("k3")["text"] == "three" and len(reread) == 2
