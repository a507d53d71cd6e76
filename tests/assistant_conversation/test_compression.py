"""Context compression: truncation and summaries written by a scripted model, with reported token counts."""

from __future__ import annotations

import logging

import pytest
from langchain_core.language_models import BaseChatModel

from modelforge.assistant import CompressionConfig, Conversation
from modelforge.assistant.compression import SUMMARY_HEADER, SUMMARY_INSTRUCTIONS, compress_messages
from modelforge.exceptions import InvalidInputError
from modelforge.testing import ProviderServer, RecordedRequest, Reply
from tests.assistant_conversation.conftest import chat_requests

TEXT = "the quick brown fox jumps over the lazy dog " * 8


def _summaries_and_echo(request: RecordedRequest) -> Reply:
    messages = request.json["messages"]
    if messages[0]["content"] == SUMMARY_INSTRUCTIONS:
        return Reply(text=f"SUMMARY-{request.json['messages'][-1]['content'].count('User:')}")
    return Reply(text="ok")


def _summary_requests(server: ProviderServer) -> list[str]:
    return [
        body["messages"][-1]["content"]
        for body in chat_requests(server)
        if body["messages"][0]["content"] == SUMMARY_INSTRUCTIONS
    ]


async def test_truncate_drops_the_oldest_turns_and_reports_counts(
    llm: BaseChatModel, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.responder = _summaries_and_echo
    compression = CompressionConfig(strategy="truncate", target_tokens=300)
    conversation = Conversation(max_tokens=800, provider=llm, system_prompt="Short.", compression=compression)
    caplog.set_level(logging.INFO, logger="modelforge.assistant.compression")
    for turn in range(12):
        await conversation.add_user_message(f"{turn}: {TEXT}")
        await conversation.continue_chat()
    report = conversation.last_compression
    assert report is not None and report.strategy == "truncate"
    assert report.before_tokens > 800 >= 300 >= report.after_tokens
    assert report.dropped_messages > 0 and report.summary is None
    assert conversation.token_count <= 800
    assert conversation.messages[0].content == "Short."
    assert "Compressed the conversation (truncate)" in caplog.text
    assert not _summary_requests(server)


async def test_summarize_keeps_one_summary_in_front_and_resummarizes(
    llm: BaseChatModel, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.responder = _summaries_and_echo
    compression = CompressionConfig(strategy="summarize", target_tokens=400)
    conversation = Conversation(
        max_tokens=900, provider=llm, system_prompt="Be brief.", compression=compression
    )
    caplog.set_level(logging.INFO, logger="modelforge.assistant.compression")
    reports = []
    for turn in range(20):
        await conversation.add_user_message(f"{turn}: {TEXT}")
        await conversation.continue_chat()
        if conversation.last_compression not in reports:
            reports.append(conversation.last_compression)
    reports = [r for r in reports if r is not None]
    assert len(reports) >= 2  # it grew past the trigger again and was summarized again
    for report in reports:
        assert report.before_tokens > 900 and report.after_tokens < report.before_tokens
        assert report.summary and report.summary.startswith("SUMMARY-")
    asks = _summary_requests(server)
    assert "Previous summary:" not in asks[0]
    assert f"Previous summary:\n{reports[0].summary}" in asks[1]
    summary_messages = [m for m in conversation.messages if m.name == "summary"]
    assert len(summary_messages) == 1 and conversation.messages[1] is not None
    assert conversation.messages[1].content == f"{SUMMARY_HEADER}\n{conversation.summary}"
    last = chat_requests(server)[-1]["messages"]
    assert last[0]["role"] == "system" and last[0]["content"].startswith("Be brief.\n\n" + SUMMARY_HEADER)
    assert sum(1 for m in last if m["role"] == "system") == 1
    assert "Compressed the conversation (summarize)" in caplog.text


async def test_summary_model_is_used_when_given(
    llm: BaseChatModel, configured: dict, server: ProviderServer
) -> None:
    server.responder = _summaries_and_echo
    compression = CompressionConfig(strategy="summarize", target_tokens=200, summary_model="local/smollm2")
    conversation = Conversation(max_tokens=500, provider=llm, compression=compression)
    for turn in range(6):
        await conversation.add_user_message(f"{turn}: {TEXT}")
        await conversation.continue_chat()
    assert conversation.summary and conversation.summary.startswith("SUMMARY-")
    models = {
        b["model"] for b in chat_requests(server) if b["messages"][0]["content"] == SUMMARY_INSTRUCTIONS
    }
    assert models == {"smollm2"}


async def test_compress_messages_for_one_shot_prompts(llm: BaseChatModel, server: ProviderServer) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    server.responder = _summaries_and_echo
    messages = [SystemMessage("S"), *(HumanMessage(f"{i}: {TEXT}") for i in range(10))]
    compressed, report = await compress_messages(
        messages, CompressionConfig(strategy="summarize", target_tokens=300), llm=llm, max_tokens=600
    )
    assert report is not None and report.after_tokens < report.before_tokens
    assert compressed[0].content.startswith("S\n\n" + SUMMARY_HEADER)
    assert compressed[-1] is messages[-1]


def test_bad_settings_are_clear_errors(llm: BaseChatModel) -> None:
    with pytest.raises(InvalidInputError, match="Unknown compression strategy 'shrink'"):
        CompressionConfig(strategy="shrink")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be an integer above target_tokens"):
        CompressionConfig(target_tokens=2000, trigger_tokens=1000)
    with pytest.raises(InvalidInputError, match="must be below the trigger"):
        Conversation(max_tokens=1000, provider=llm, compression=CompressionConfig(target_tokens=2000))
