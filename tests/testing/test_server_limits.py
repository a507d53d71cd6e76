"""Server-side rate limits: requests and tokens per sliding window, answered as each protocol's 429."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest

from modelforge.testing import ProviderServer, Reply, ServerLimits, Usage
from modelforge.testing._limits import RateLimiter

MESSAGES: list = [{"role": "user", "content": "one two three"}]  # 3 prompt tokens by the server's estimate


def _openai(server: ProviderServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)


def test_rpm_limit_answers_429_with_retry_after(server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=2)
    client = _openai(server)
    first = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES)
    headers = info.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert float(headers["retry-after-ms"]) <= 60_000
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests" in info.value.message


def test_refused_requests_do_not_use_the_script(server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=1)
    server.script(Reply(text="first"), Reply(text="second"))
    client = _openai(server)
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "first"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert server.script_remaining == 1


def test_tpm_counts_prompt_and_completion(server: ProviderServer) -> None:
    server.limits = ServerLimits(tpm=9)
    server.script(Reply(text="x", usage=Usage(3, 4)))
    client = _openai(server)
    client.chat.completions.create(model="m", messages=MESSAGES)  # 3 prompt (estimate) + 4 completion = 7
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES)  # 7 + 3 > 9
    assert "tokens" in info.value.message
    assert info.value.response.headers["x-ratelimit-limit-tokens"] == "9"


def test_window_slides(server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=1, window=0.2)
    client = _openai(server)
    client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    time.sleep(0.25)  # measured: the window must pass
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices


def test_limit_in_anthropic_format(server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=0)
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="m", max_tokens=1, messages=MESSAGES)
    assert info.value.response.headers["retry-after"]
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "rate_limit_error"


def test_limit_in_ollama_and_gemini_format(server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=0)
    with httpx.Client() as client:
        ollama = client.post(
            server.ollama_base_url + "/api/chat", json={"model": "qwen3:1.7b", "messages": []}
        )
        gemini = client.post(
            server.gemini_base_url + "/v1beta/models/g:generateContent", json={"contents": []}
        )
    assert ollama.status_code == 429 and "error" in ollama.json() and ollama.headers["retry-after"]
    assert gemini.status_code == 429 and gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_reset_clears_limits(server: ProviderServer) -> None:
    server.limits = ServerLimits(rpm=0)
    server.reset()
    assert server.limits is None
    assert _openai(server).chat.completions.create(model="m", messages=MESSAGES).choices


def test_limiter_retry_after_for_tokens() -> None:
    limiter = RateLimiter()
    limits = ServerLimits(tpm=10, window=60)
    assert limiter.admit(limits, 6, now=100.0).allowed
    limiter.add_tokens(2, now=110.0)
    refused = limiter.admit(limits, 5, now=120.0)  # 8 used; the 6 from t=100 must leave first
    assert not refused.allowed and refused.reason == "tokens"
    assert refused.retry_after == pytest.approx(40.0)
    assert limiter.admit(limits, 5, now=160.5).allowed
