"""An OpenAI-compatible chat-completions judge over plain HTTP (urllib), with a persistent cache and retries.

Configuration, from arguments or the environment:
- base URL: `base_url`, else `CSR_BENCH_JUDGE_URL`, else `OPENAI_BASE_URL`, else https://api.openai.com/v1;
  requests go to `{base_url}/chat/completions`;
- model: `model`, else `CSR_BENCH_JUDGE_MODEL`, else the suite's default (the official evaluator's model);
- key: `api_key`, else `CSR_BENCH_JUDGE_KEY`, else `OPENAI_API_KEY`; sent as a Bearer token and nowhere else:
  not in `describe()` (manifests), not in the cache, not in error messages or repr.

Failures: a connection error, a timeout, HTTP 429 or 5xx, or a reply that is not the expected JSON is retried
`max_retries` times with exponential backoff (capped); then the reply is a failure (text None) and the item is
counted as missing by the suite. If nothing at all has answered yet in this process and the server cannot be
reached (connection refused, unknown host), that is a UserError naming the URL: a wrong URL should stop a run,
not turn it into a column of missing scores. The same holds for HTTP 401/403/404 before any success (a wrong key,
model or path).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from csr_bench.errors import UserError
from csr_bench.judges.base import JudgeCounters, JudgeReply, JudgeRequest, request_key
from csr_bench.judges.cache import JudgeCache

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class _Retryable(Exception):
    pass


class _Unreachable(Exception):
    pass


class OpenAIJudge:
    """Chat-completions judge; `complete` never raises for a failed call except as described in the module."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 16.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = (base_url or os.environ.get("CSR_BENCH_JUDGE_URL") or os.environ.get("OPENAI_BASE_URL")
                         or DEFAULT_BASE_URL).rstrip("/")
        self.model = model or os.environ.get("CSR_BENCH_JUDGE_MODEL") or ""
        if not self.model:
            raise UserError("judge model not set: pass a model (e.g. 'openai:gpt-4-0613') or set CSR_BENCH_JUDGE_MODEL")
        self._api_key = api_key or os.environ.get("CSR_BENCH_JUDGE_KEY") or os.environ.get("OPENAI_API_KEY") or ""
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff, self.max_backoff = backoff, max_backoff
        self._sleep = sleep
        self.cache = JudgeCache(cache_dir) if cache_dir is not None else None
        self.counters = JudgeCounters()
        self._reached = False  # an HTTP response (any status) has arrived in this process

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def _shown_url(self) -> str:
        """The URL as repr, error messages and manifests show it: without a user:password@ part."""
        return url_without_credentials(self.url)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIJudge(model={self.model!r}, url={self._shown_url!r})"

    def describe(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.model, "url": url_without_credentials(self.base_url)}

    def complete(self, request: JudgeRequest) -> JudgeReply:
        key = request_key(self.describe(), request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.counters.cache_hits += 1
                return JudgeReply(hit["text"], cached=True, model=hit.get("model", ""))
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            try:
                text, model = self._post(request)
            except _Unreachable as e:
                error = str(e)
                continue
            except _Retryable as e:
                error = str(e)
                continue
            if self.cache is not None:
                self.cache.put(key, request.to_dict(), text, model)
            return JudgeReply(text, model=model)
        if not self._reached and error.startswith("cannot connect"):
            raise UserError(f"judge at {self._shown_url} cannot be reached ({error}); check CSR_BENCH_JUDGE_URL")
        self.counters.failures += 1
        self.counters.errors.append(error)
        return JudgeReply(None, error=error)

    def _post(self, request: JudgeRequest) -> tuple[str, str]:
        body = json.dumps({"model": self.model, **request.to_dict()}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        self.counters.network_calls += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
            self._reached = True
        except urllib.error.HTTPError as e:
            answered_before, self._reached = self._reached, True
            e.close()
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code}") from None
            if not answered_before and e.code in (401, 403, 404):
                raise UserError(f"judge at {self._shown_url} refused the request: HTTP {e.code} (check the key, model "
                                f"'{self.model}' and URL)") from None
            raise _Retryable(f"HTTP {e.code}") from None
        except (TimeoutError, socket.timeout):
            raise _Retryable("timed out") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise _Retryable("timed out") from None
            raise _Unreachable(f"cannot connect: {e.reason}") from None
        except (ConnectionError, OSError) as e:  # reset mid-response, etc.
            raise _Retryable(f"connection error: {e}") from None
        try:
            reply = json.loads(raw)
            text = reply["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            raise _Retryable("malformed reply (not a chat completion)") from None
        if not isinstance(text, str):
            raise _Retryable("malformed reply (content is not text)")
        return text, str(reply.get("model", self.model)) if isinstance(reply, dict) else self.model


def default_cache_dir() -> Path:
    return Path(os.environ.get("CSR_BENCH_CACHE", Path.home() / ".cache" / "csr_bench")) / "judge"


def url_without_credentials(url: str) -> str:
    """A URL as recorded in manifests and cache keys: any user:password@ part is dropped, so it never reaches disk."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
