"""A wire-protocol server that answers each prompt by its content, and a config pointing providers at it.

``echo`` answers ``"prompt N"`` with ``"echo: prompt N"`` and refuses every 20th prompt (N % 20 == 19)
with a 400, so 5% of any batch fails and a result's position can be checked against its text whatever
order the calls or the provider's result lines came in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from modelforge import config
from modelforge.testing import Fault, ProviderServer, RecordedRequest, Reply
from modelforge.testing.script import ScriptItem
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

PROMPT = re.compile(r"prompt (\d+)")


def prompts(n: int) -> list[str]:
    return [f"prompt {i}" for i in range(n)]


def fails(i: int) -> bool:
    """Whether ``echo`` refuses prompt ``i`` (every 20th: 5%)."""
    return i % 20 == 19


def prompt_text(request: RecordedRequest) -> str:
    """The text of the last message of a chat request (OpenAI, Anthropic or Ollama body)."""
    body = request.json if isinstance(request.json, dict) else {}
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content", "")
    if isinstance(content, list):
        content = " ".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content)


def echo(request: RecordedRequest) -> ScriptItem | None:
    text = prompt_text(request)
    found = PROMPT.search(text)
    if found and fails(int(found.group(1))):
        return Fault(400, f"refused {found.group(0)}")
    return Reply(text=f"echo: {text}")


def check_echoed(results: list[Any], n: int, error_type: type[Exception] | None = None) -> None:
    """Exactly ``n`` results, in order, the right 5% failed with the provider's 400 and the rest echoed.

    The failures are ModelForge's ``BadRequestError`` unless ``error_type`` says otherwise (a raw model's).
    """
    from modelforge.exceptions import BadRequestError

    error_type = error_type or BadRequestError
    assert len(results) == n
    assert [r.index for r in results] == list(range(n))
    for i, result in enumerate(results):
        if fails(i):
            assert not result.ok, i
            assert isinstance(result.error, error_type), (i, result.error)
            assert getattr(result.error, "status_code", None) == 400
            assert f"refused prompt {i}" in str(result.error)
        else:
            assert result.ok, (i, result.error)
            assert result.content == f"echo: prompt {i}"
    assert sum(1 for r in results if r.ok) == n - n // 20


def batch_config(server: ProviderServer, **batch: Any) -> dict[str, Any]:
    """OpenAI, Anthropic and Ollama against ``server``: no retries, polls without waiting."""
    section = {"poll_interval": 0, **batch}
    no_retry = {"max_attempts": 1}
    return {
        "providers": {
            "openai": {
                "llm_type": "openai_compatible",
                "base_url": server.openai_base_url,
                "auth_strategy": "api_key",
                "models": {"gpt-4o-mini": {"max_tokens": 64}},
                "retry": no_retry,
                "batch": section,
            },
            "anthropic": {
                "llm_type": "anthropic",
                "base_url": server.anthropic_base_url,
                "auth_strategy": "api_key",
                "models": {"claude-sonnet-4-6": {"max_tokens": 64}},
                "retry": no_retry,
                "batch": section,
            },
            "ollama": {
                "llm_type": "ollama",
                "base_url": server.ollama_base_url,
                "models": {"qwen3:1.7b": {}},
                "retry": no_retry,
                "batch": section,
            },
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


def write_config(data: dict[str, Any]) -> None:
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        running.responder = echo
        yield running


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)


@pytest.fixture
def configured(server: ProviderServer, keys: None) -> dict[str, Any]:
    data = batch_config(server)
    write_config(data)
    return data
