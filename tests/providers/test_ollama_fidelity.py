"""Ollama as it really behaves: its client's errors carry no headers, and langchain-ollama answers
``invoke`` by reading a stream. A 429's ``Retry-After`` is still honoured (read from ModelForge's transport),
and an answer whose stream was cut before Ollama's ``done: true`` line raises instead of coming back short.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelforge.exceptions import RateLimitError, StreamInterruptedError
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import provider_config


def ollama(server: ProviderServer, **retry: Any) -> Any:
    data = provider_config(server)
    data["providers"]["ollama"]["retry"] = {"max_attempts": 1, **retry}
    return ModelForgeRegistry.from_config(data).get_llm("ollama", "qwen3:1.7b")


def chat_times(server: ProviderServer) -> list[float]:
    return [request.received_at for request in server.requests if request.path == "/api/chat"]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_429_waits_for_its_retry_after(server: ProviderServer, streamed: bool) -> None:
    server.script(Fault(status=429, message="slow down", retry_after="1"), Reply(text="now then"))
    llm = ollama(server, max_attempts=2, initial_wait=0.01, max_wait=5)
    text = "".join(chunk.text for chunk in llm.stream("hi")) if streamed else llm.invoke("hi").text
    assert text == "now then"
    first, second = chat_times(server)
    assert second - first >= 1.0


def test_an_invoke_whose_stream_was_cut_raises_with_its_text(server: ProviderServer) -> None:
    server.script(Reply(text="one two three four", cut_after=2))
    with pytest.raises(StreamInterruptedError) as info:
        ollama(server).invoke("count")
    assert info.value.partial_text == "one two "
    assert "done" in str(info.value)


async def test_a_cut_invoke_is_retried_as_nothing_reached_the_caller(server: ProviderServer) -> None:
    server.script(Reply(text="one two three four", cut_after=2), Reply(text="one two three four"))
    llm = ollama(server, max_attempts=2, initial_wait=0.01, max_wait=0.01)
    assert (await llm.ainvoke("count")).text == "one two three four"
    assert len(chat_times(server)) == 2


def test_an_earlier_requests_retry_after_is_never_borrowed(server: ProviderServer) -> None:
    """Headers noted for another provider's 429 (in this thread) do not become an Ollama error's own."""
    data = provider_config(server)
    data["providers"]["openai"]["retry"] = {"max_attempts": 1}
    data["providers"]["ollama"]["retry"] = {"max_attempts": 1}
    data["providers"]["ollama"]["connection_pool"] = {"enabled": False}
    registry = ModelForgeRegistry.from_config(data, api_keys={"openai": OPENAI_KEY})
    server.script(Fault(status=429, message="slow down", retry_after="3600"))
    with pytest.raises(RateLimitError) as openai_error:
        registry.get_llm("openai", "gpt-4o-mini").invoke("hi")
    assert openai_error.value.retry_after == 3600
    server.script(Fault(status=429, message="busy"))
    with pytest.raises(RateLimitError) as ollama_error:
        registry.get_llm("ollama", "qwen3:1.7b").invoke("hi")
    assert ollama_error.value.retry_after is None


def test_retry_wrapper_lets_a_model_without_finish_reasons_end_quietly() -> None:
    """A model that never reports a finish reason (LangChain's fake) streams an empty answer without error."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from modelforge import RetryWrapper

    silent = AIMessage(content="", additional_kwargs={"note": "metadata only"})
    wrapped = RetryWrapper(wrapped_llm=GenericFakeChatModel(messages=iter([silent])))
    chunks = list(wrapped.stream("hi"))
    assert chunks and chunks[0].additional_kwargs == {"note": "metadata only"}
