"""Anthropic prompt caching through the registry: breakpoints reach the server and a second call reads.

Every test goes through ``ModelForgeRegistry(enable_optimizations=True).get_llm(...)`` and
``ChatAnthropic`` over HTTP to the test server, which caches prefixes as the API does.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

from modelforge.testing import ProviderServer, Reply, ToolCall
from tests.optimizers.conftest import LlmFactory

LONG_SYSTEM = "You are a meticulous support agent for the ACME product line. " * 120  # ~1800 tokens
LONG_MANUAL = "Section 4.2: the widget must be calibrated before each use, twice. " * 120


def _body(server: ProviderServer, index: int = -1) -> dict[str, Any]:
    return server.requests_for("anthropic")[index].json  # type: ignore[no-any-return]


def _controls(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Where the ``cache_control`` blocks of a request are: (part, start of its text)."""
    found: list[tuple[str, str]] = []
    for tool_def in body.get("tools") or []:
        if "cache_control" in tool_def:
            found.append(("tool", tool_def["name"]))
    system = body.get("system")
    for block in system if isinstance(system, list) else []:
        if "cache_control" in block:
            found.append(("system", block["text"][:20]))
    for message in body["messages"]:
        content = message["content"]
        for block in content if isinstance(content, list) else []:
            if "cache_control" in block:
                found.append((message["role"], str(block.get("text", ""))[:20]))
    return found


def test_second_long_prompt_call_is_a_cache_read(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("anthropic")
    first = llm.invoke([SystemMessage(LONG_SYSTEM), HumanMessage("How do I reset the widget?")])
    second = llm.invoke([SystemMessage(LONG_SYSTEM), HumanMessage("And how do I calibrate it?")])

    assert first.usage_metadata is not None and second.usage_metadata is not None
    assert first.usage_metadata["input_token_details"]["cache_creation"] > 0
    assert first.usage_metadata["input_token_details"]["cache_read"] == 0
    assert second.usage_metadata["input_token_details"]["cache_read"] > 0
    assert second.usage_metadata["input_token_details"]["cache_creation"] == 0
    # What reached the server: the system prompt as one block with a breakpoint.
    assert _body(server)["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert _body(server)["system"][0]["text"] == LONG_SYSTEM
    uses = server.caches.anthropic_uses
    assert uses[0].cache_creation_input_tokens > 0 and uses[1].cache_read_input_tokens > 0


def test_static_dynamic_markers_split_a_message(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("anthropic")
    for question in ("What is step one?", "What is step two?"):
        answer = llm.invoke(f"<<STATIC>>{LONG_MANUAL}\n<<DYNAMIC>>\n{question}")
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_token_details"]["cache_read"] > 0
    content = _body(server)["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": LONG_MANUAL + "\n", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "What is step two?"},
    ]
    assert "<<" not in server.requests_for("anthropic")[-1].body.decode()


def test_short_prompts_get_no_breakpoint_but_lose_their_markers(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    make_llm("anthropic").invoke([SystemMessage("Be brief."), HumanMessage("<<STATIC>>Hi<<DYNAMIC>>there")])
    body = _body(server)
    assert _controls(body) == []
    assert body["system"] == "Be brief."
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Hi"},
        {"type": "text", "text": "there"},
    ]


def test_min_tokens_is_configurable(make_llm: LlmFactory, server: ProviderServer) -> None:
    system = "Answer in French. " * 60  # ~270 tokens: below Anthropic's minimum
    make_llm("anthropic").invoke([SystemMessage(system), HumanMessage("Hi")])
    assert _controls(_body(server)) == []
    llm = make_llm("anthropic", optimizations={"prompt_caching": {"min_tokens": 200}})
    llm.invoke([SystemMessage(system), HumanMessage("Hi")])
    assert _controls(_body(server)) == [("system", system[:20])]


def test_haiku_needs_2048_tokens(make_llm: LlmFactory, server: ProviderServer) -> None:
    models = {"claude-haiku-4-5": {}}
    make_llm("anthropic", model="claude-haiku-4-5", models=models).invoke(
        [SystemMessage(LONG_SYSTEM), HumanMessage("Hi")]
    )
    assert _controls(_body(server)) == []  # ~1800 tokens: enough for Sonnet, not for Haiku
    make_llm("anthropic", model="claude-haiku-4-5", models=models).invoke(
        [SystemMessage(LONG_SYSTEM * 2), HumanMessage("Hi")]
    )
    assert len(_controls(_body(server))) == 1


def test_switch_off(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("anthropic", optimizations={"prompt_caching": False})
    llm.invoke([SystemMessage(LONG_SYSTEM), HumanMessage("<<STATIC>>Hi<<DYNAMIC>>there")])
    body = _body(server)
    assert _controls(body) == []
    assert body["messages"][0]["content"] == "Hithere"  # markers still removed


def test_conversation_history_and_tools_are_marked(make_llm: LlmFactory, server: ProviderServer) -> None:
    @tool
    def lookup(part: str) -> str:
        """Look a part up in the ACME catalogue."""
        return part

    history = [
        SystemMessage(LONG_SYSTEM),
        HumanMessage(LONG_MANUAL),
        AIMessage("Understood, I have read the manual."),
        HumanMessage("Which part is the flange?"),
    ]
    server.script(Reply(tool_calls=[ToolCall("lookup", {"part": "flange"})]))
    make_llm("anthropic").bind_tools([lookup]).invoke(history)
    body = _body(server)
    # The tool alone is too short; the system prompt and the history before the last turn are marked.
    assert _controls(body) == [("system", LONG_SYSTEM[:20]), ("assistant", "Understood, I have r")]


def test_never_more_than_four_breakpoints(make_llm: LlmFactory, server: ProviderServer) -> None:
    marked = [HumanMessage(f"<<STATIC>>{LONG_MANUAL} part {i}<<DYNAMIC>>q{i}") for i in range(6)]
    messages: list[Any] = [SystemMessage(LONG_SYSTEM)]
    for message in marked:
        messages += [message, AIMessage("ok")]
    messages.append(HumanMessage("final question"))
    make_llm("anthropic").invoke(messages)
    assert server.requests_for("anthropic")[-1].json is not None
    assert len(_controls(_body(server))) == 4  # and the server (like the API) accepted it


def test_the_callers_own_breakpoints_count(make_llm: LlmFactory, server: ProviderServer) -> None:
    own = [
        {"type": "text", "text": f"fact {i} " * 400, "cache_control": {"type": "ephemeral"}} for i in range(3)
    ]
    make_llm("anthropic").invoke([SystemMessage(LONG_SYSTEM), HumanMessage(content=own)])  # type: ignore[arg-type]
    assert len(_controls(_body(server))) == 4


def test_streamed_call_reads_the_cache(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("anthropic")
    llm.invoke([SystemMessage(LONG_SYSTEM), HumanMessage("first")])
    merged: Any = None
    for chunk in llm.stream([SystemMessage(LONG_SYSTEM), HumanMessage("second")]):
        merged = chunk if merged is None else merged + chunk
    assert merged.usage_metadata["input_token_details"]["cache_read"] > 0


async def test_async_calls_read_the_cache(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("anthropic")
    await llm.ainvoke([SystemMessage(LONG_SYSTEM), HumanMessage("first")])
    second = await llm.ainvoke([SystemMessage(LONG_SYSTEM), HumanMessage("second")])
    assert second.usage_metadata is not None
    assert second.usage_metadata["input_token_details"]["cache_read"] > 0
    merged: Any = None
    async for chunk in llm.astream([SystemMessage(LONG_SYSTEM), HumanMessage("third")]):
        merged = chunk if merged is None else merged + chunk
    assert merged.usage_metadata["input_token_details"]["cache_read"] > 0


@pytest.mark.parametrize("enable", [False, True])
def test_disabled_sends_requests_untouched(
    make_llm: LlmFactory, server: ProviderServer, enable: bool
) -> None:
    optimizations = {"enabled": False} if enable else None
    llm = make_llm("anthropic", enable=enable, optimizations=optimizations)
    llm.invoke([SystemMessage(LONG_SYSTEM), HumanMessage("<<STATIC>>Hi<<DYNAMIC>>there")])
    body = _body(server)
    assert body["system"] == LONG_SYSTEM
    assert body["messages"][0]["content"] == "<<STATIC>>Hi<<DYNAMIC>>there"


def test_batch_body_gets_the_system_breakpoint_and_loses_markers(make_llm: LlmFactory) -> None:
    from modelforge.optimizers import prepare_batch_body

    llm = make_llm("anthropic")
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": LONG_SYSTEM,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "<<STATIC>>Hi<<DYNAMIC>> you"}]}],
    }
    shaped = prepare_batch_body(llm, body)
    assert shaped["system"] == [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    assert shaped["messages"][0]["content"] == [{"type": "text", "text": "Hi you"}]
    assert body["system"] == LONG_SYSTEM  # the input is not changed
    short = prepare_batch_body(llm, {**body, "system": "Be brief."})
    assert short["system"] == "Be brief."
    off = prepare_batch_body(make_llm("anthropic", optimizations={"prompt_caching": False}), body)
    assert off["system"] == LONG_SYSTEM
