"""``get_llm`` builds the configured fallback chain; the text stream never hands out duplicated text."""

from __future__ import annotations

import pytest

import modelforge
from modelforge.exceptions import StreamInterruptedError
from modelforge.policies.fallback import FallbackChatModel
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply


def test_get_llm_follows_the_configured_fallbacks(
    registry: ModelForgeRegistry, server: ProviderServer, api_keys: None
) -> None:
    llm = registry.get_llm("openai", "gpt-4o-mini")
    assert isinstance(llm, FallbackChatModel)
    server.script(Fault(status=503), Reply(text="anthropic answered"))
    assert llm.invoke("hi").text == "anthropic answered"
    assert [r.protocol for r in server.requests] == ["openai", "anthropic"]


async def test_text_stream_refuses_to_repeat_delivered_text(
    registry: ModelForgeRegistry, server: ProviderServer, api_keys: None
) -> None:
    llm = registry.get_llm("openai", "gpt-4o-mini")
    server.script(Reply(text="one two three four", disconnect_after=2), Reply(text="a fresh answer"))
    pieces: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for piece in modelforge.stream(llm, "count", buffer_size=1):
            pieces.append(piece)
    assert "".join(pieces) == info.value.partial_text == "one two "
    assert "restarted" in info.value.message


async def test_text_stream_restarts_cleanly_when_nothing_was_shown(
    registry: ModelForgeRegistry, server: ProviderServer, api_keys: None
) -> None:
    llm = registry.get_llm("openai", "gpt-4o-mini")
    server.script(Reply(text="one two three four", disconnect_after=2), Reply(text="a fresh answer"))
    notices: list[object] = []
    pieces = [p async for p in modelforge.stream(llm, "count", buffer_size=100, on_restart=notices.append)]
    assert "".join(pieces) == "a fresh answer", "the discarded text never reached the caller"
    assert len(notices) == 1
