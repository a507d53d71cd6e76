"""GitHub Copilot token exchange: caching, renewal before expiry, errors, and use as ChatOpenAI's api_key."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from modelforge.auth import COPILOT_HEADERS, CopilotTokenSource, StaticTokenSource
from modelforge.auth._http import HttpResponse
from modelforge.auth.copilot import interpret_exchange
from modelforge.exceptions import AuthenticationError, NetworkError, RateLimitError

OAUTH = "gho_copilotoauthtoken000000000000000000"


def source(server: Any, clock: Any, oauth: Any = OAUTH) -> CopilotTokenSource:
    return CopilotTokenSource(oauth, server.github_base_url + "/copilot_internal/v2/token", clock=clock)


def exchanges(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path == "/copilot_internal/v2/token"]


def test_exchange_sends_the_oauth_token_and_editor_headers(server: Any, clock: Any) -> None:
    src = source(server, clock)
    assert src.api_base is None
    token = src()
    assert token.startswith("tid=")
    assert token in server.copilot_tokens
    assert src.api_base == server.copilot_base_url
    sent = exchanges(server)[0]
    assert sent.method == "GET"
    assert sent.headers["authorization"] == f"token {OAUTH}"
    assert sent.headers["editor-version"] == COPILOT_HEADERS["Editor-Version"]
    assert token not in repr(src) and OAUTH not in repr(src)


def test_cached_until_refresh_in_then_exchanged_again(server: Any, clock: Any) -> None:
    server.copilot_token_ttl = 1500  # the server says refresh_in = 1200
    src = source(server, clock)
    first = src.get_token()
    clock.advance(1199)
    assert src.get_token() == first
    assert server.copilot_token_exchanges == 1
    clock.advance(2)
    second = src.get_token()
    assert second != first
    assert server.copilot_token_exchanges == 2


def test_renews_a_minute_before_expiry_when_refresh_in_is_late(server: Any, clock: Any) -> None:
    server.copilot_token_ttl = 600
    server.copilot_token_refresh_in = 10_000
    src = source(server, clock)
    src.get_token()
    clock.advance(600 - 61)
    src.get_token()
    assert server.copilot_token_exchanges == 1
    clock.advance(2)
    src.get_token()
    assert server.copilot_token_exchanges == 2


def test_rejected_oauth_token_is_an_authentication_error(server: Any, clock: Any) -> None:
    server.valid_oauth_tokens = {"gho_someoneelse000000000000000000"}
    with pytest.raises(AuthenticationError) as info:
        source(server, clock).get_token()
    assert info.value.status_code == 401
    assert "modelforge auth login --provider github_copilot" in (info.value.suggestion or "")
    assert OAUTH not in str(info.value)


async def test_async_exchange_and_401(server: Any, clock: Any) -> None:
    src = source(server, clock, StaticTokenSource(OAUTH))
    token = await src.acall()
    assert token in server.copilot_tokens
    assert await src.async_callable()() == token
    server.valid_oauth_tokens = set()
    src.invalidate()
    with pytest.raises(AuthenticationError):
        await src.aget_token()


def test_threads_at_expiry_share_one_exchange(server: Any, clock: Any) -> None:
    src = source(server, clock)
    src.get_token()
    clock.advance(5000)
    barrier = threading.Barrier(8)

    def call() -> str:
        barrier.wait(5)
        return src()

    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: call(), range(8)))
    assert len(tokens) == 1
    assert server.copilot_token_exchanges == 2


async def test_tasks_at_expiry_share_one_exchange(server: Any, clock: Any) -> None:
    src = source(server, clock)
    await src.aget_token()
    clock.advance(5000)
    tokens = set(await asyncio.gather(*(src.acall() for _ in range(8))))
    assert len(tokens) == 1
    assert server.copilot_token_exchanges == 2


def test_oauth_provider_forms(server: Any, clock: Any) -> None:
    assert source(server, clock, lambda: OAUTH).get_token()
    assert source(server, clock, StaticTokenSource(OAUTH)).get_token()
    assert all(r.headers["authorization"] == f"token {OAUTH}" for r in exchanges(server))


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, AuthenticationError), (404, AuthenticationError), (429, RateLimitError), (500, NetworkError)],
)
def test_exchange_errors(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        interpret_exchange("github_copilot", HttpResponse(status, {"message": "no"}), now=0)


def test_works_as_chat_openai_api_key(server: Any, clock: Any) -> None:
    from langchain_openai import ChatOpenAI

    from modelforge.testing import Reply

    src = source(server, clock)
    server.script(Reply(text="sync answer"), Reply(text="async answer"))
    llm = ChatOpenAI(
        model="gpt-4o",
        base_url=server.copilot_base_url,
        api_key=src,
        default_headers=dict(COPILOT_HEADERS),
        max_retries=0,
    )
    assert llm.invoke("hi").content == "sync answer"
    assert asyncio.run(llm.ainvoke("hi")).content == "async answer"
    chats = [r for r in server.requests if r.path == "/copilot/chat/completions"]
    assert chats and all(r.headers["authorization"] == f"Bearer {src.get_token()}" for r in chats)
    assert server.copilot_token_exchanges == 1
