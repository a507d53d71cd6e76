"""Conversation history, answers, streaming, images and saving, against the test server."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from modelforge.assistant import Conversation
from modelforge.exceptions import FileValidationError, InvalidInputError, JsonDecodeError, ModelForgeError
from modelforge.testing import ProviderServer, Reply
from tests.assistant_conversation.conftest import chat_requests

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


class _Provider:
    """A provider object as ``create_provider`` returns it: the chat model is its ``.llm``."""

    def __init__(self, llm: BaseChatModel) -> None:
        self.llm = llm


async def test_the_issue_snippet(llm: BaseChatModel, server: ProviderServer) -> None:
    server.script(Reply(text="Hi! How can I help?"))
    conversation = Conversation(max_tokens=4000, provider=_Provider(llm))
    await conversation.add_user_message("Hello!")
    response = await conversation.continue_chat()
    assert response.text == "Hi! How can I help?"
    assert [type(m) for m in conversation.messages] == [HumanMessage, AIMessage]
    assert chat_requests(server)[0]["messages"] == [{"role": "user", "content": "Hello!"}]


async def test_tool_calls_and_results_reach_the_model(llm: BaseChatModel, server: ProviderServer) -> None:
    conversation = Conversation(provider=llm, system_prompt="Use tools.")
    await conversation.add_user_message("Weather in Oslo?")
    call = await conversation.add_assistant_message(
        tool_calls=[{"name": "weather", "args": {"city": "Oslo"}}]
    )
    with pytest.raises(InvalidInputError, match="have no result yet"):
        await conversation.continue_chat()
    with pytest.raises(InvalidInputError, match="answers no open tool call"):
        await conversation.add_tool_result("call_unknown", "rain")
    await conversation.add_tool_result(call.tool_calls[0]["id"] or "", "sunny, 20C")
    server.script(Reply(text="It is sunny."))
    assert (await conversation.continue_chat()).text == "It is sunny."
    sent = chat_requests(server)[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"][0]["function"]["name"] == "weather"
    assert sent[3]["tool_call_id"] == call.tool_calls[0]["id"]


async def test_images_are_sent_as_image_blocks(
    llm: BaseChatModel, server: ProviderServer, tmp_path: Path
) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    conversation = Conversation(provider=llm)
    await conversation.add_user_message(
        "What is this?", images=[f"data:image/png;base64,{PNG}", "https://example.com/dog.jpg", picture]
    )
    await conversation.continue_chat()
    content = chat_requests(server)[0]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    urls = [block["image_url"]["url"] for block in content[1:]]
    assert urls == [
        f"data:image/png;base64,{PNG}",
        "https://example.com/dog.jpg",
        f"data:image/png;base64,{PNG}",
    ]
    with pytest.raises(InvalidInputError, match="not an image URL"):
        await conversation.add_user_message("x", images=["notes.txt"])


async def test_stream_appends_the_whole_answer_at_the_end(llm: BaseChatModel, server: ProviderServer) -> None:
    server.script(Reply(text="one two three"))
    conversation = Conversation(provider=llm)
    await conversation.add_user_message("Count")
    pieces = []
    async for chunk in conversation.stream_continue():
        pieces.append(chunk.text)
        assert len(conversation.messages) == 1  # nothing appended while streaming
    assert "".join(pieces) == "one two three"
    last = conversation.messages[-1]
    assert type(last) is AIMessage and last.text == "one two three" and not last.tool_calls


async def test_an_interrupted_stream_appends_nothing(llm: BaseChatModel, server: ProviderServer) -> None:
    conversation = Conversation(provider=llm)
    await conversation.add_user_message("Count")
    server.script(Reply(text="one two three four", disconnect_after=2))
    with pytest.raises(ModelForgeError):
        async for _ in conversation.stream_continue():
            pass
    assert len(conversation.messages) == 1
    server.script(Reply(text="one two three four"))
    stream = conversation.stream_continue()
    async for _ in stream:
        break  # the caller stops reading
    await stream.aclose()
    assert len(conversation.messages) == 1


async def test_save_and_load_round_trip(llm: BaseChatModel, server: ProviderServer, tmp_path: Path) -> None:
    conversation = Conversation(max_tokens=3000, provider=llm, system_prompt="Be kind.")
    await conversation.add_user_message("Look", images=[f"data:image/png;base64,{PNG}"])
    call = await conversation.add_assistant_message(tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1"}])
    await conversation.add_tool_result("c1", "ok")
    server.script(Reply(text="Done."))
    await conversation.continue_chat()
    path = tmp_path / "chats" / "one.json"
    conversation.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = Conversation.load(path, provider=llm)
    assert loaded.max_tokens == 3000 and loaded.system_prompt == "Be kind."
    assert [m.model_dump() for m in loaded.messages] == [m.model_dump() for m in conversation.messages]
    assert isinstance(loaded.messages[0], SystemMessage)
    assert isinstance(loaded.messages[-2], ToolMessage) and loaded.messages[2].tool_calls == call.tool_calls
    await loaded.add_user_message("And now?")
    server.script(Reply(text="Still fine."))
    assert (await loaded.continue_chat()).text == "Still fine."


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(JsonDecodeError, match=r"broken\.json at line 1"):
        Conversation.load(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(FileValidationError, match="is not a saved conversation"):
        Conversation.load(other)
    with pytest.raises(FileValidationError, match="cannot be read"):
        Conversation.load(tmp_path / "missing.json")


async def test_reset_and_misuse(llm: BaseChatModel, server: ProviderServer) -> None:
    conversation = Conversation(provider=llm, system_prompt="S")
    with pytest.raises(InvalidInputError, match="no user message or tool result to answer"):
        await conversation.continue_chat()
    await conversation.add_user_message("hi")
    server.script(Reply(text="hello"))
    await conversation.continue_chat()
    conversation.reset()
    assert [m.content for m in conversation.messages] == ["S"]
    with pytest.raises(InvalidInputError, match="one system prompt"):
        conversation.append(SystemMessage("another"))
    with pytest.raises(InvalidInputError, match="no model to talk to"):
        no_model = Conversation()
        await no_model.add_user_message("hi")
        await no_model.continue_chat()
    with pytest.raises(InvalidInputError, match="max_tokens must be a positive integer"):
        Conversation(max_tokens=0)
