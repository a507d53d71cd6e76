"""Each snippet of the assistant-toolkit issue, run as written against the local test server.

The snippets' ``config`` objects get their key and endpoint from ``MODELFORGE_<PROVIDER>_API_KEY`` and
``MODELFORGE_<PROVIDER>_BASE_URL`` (see conftest), as a user's environment would give them.
"""

from __future__ import annotations

import json
import logging

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from modelforge import (
    CompressionConfig,
    Conversation,
    CostTracker,
    FallbackProvider,
    ModelConfig,
    PromptTemplate,
    Provider,
    RetryConfig,
    ValidationConfig,
    create_provider,
)
from modelforge.catalog import Catalog
from modelforge.testing import ProviderServer, Reply, Usage
from tests.assistant_providers.conftest import chat_bodies

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


class PersonInfo(BaseModel):
    name: str
    age: int


def snippet_config() -> ModelConfig:
    return ModelConfig(
        name="gpt-4o-mini",
        provider=Provider.OPENAI,
        retry_config=RetryConfig(max_attempts=3, backoff_factor=2.0),
    )


async def test_create_provider_with_cache_ttl_and_streaming(
    server: ProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ModelConfig(
        name="gpt-4o-mini",
        provider=Provider.OPENAI,
        retry_config=RetryConfig(max_attempts=3, backoff_factor=2.0),
    )
    provider = create_provider(config, cache_ttl=3600)
    messages = [HumanMessage("Tell me a story")]
    server.script(Reply(text="Once upon a time", chunks=["Once ", "upon ", "a time"]))

    async for chunk in provider.stream(messages):
        print(chunk.content, end="", flush=True)

    assert capsys.readouterr().out == "Once upon a time"
    first = await provider.chat([HumanMessage("Hi")])
    again = await provider.chat([HumanMessage("Hi")])  # cache_ttl=3600: the second answer is cached
    assert again.content == first.content
    assert len(chat_bodies(server)) == 2
    assert chat_bodies(server)[0]["model"] == "gpt-4o-mini"


async def test_fallback_provider_answers_with_the_primary_down(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFORGE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    openai_config = ModelConfig(
        name="gpt-4o-mini",
        provider=Provider.OPENAI,
        retry_config=RetryConfig(max_attempts=2, initial_wait=0.001, max_wait=0.001),
    )
    ollama_config = ModelConfig(name="qwen3:1.7b", provider=Provider.OLLAMA)
    server.script(Reply(text="Hello from ollama"))

    provider = FallbackProvider(
        primary=create_provider(openai_config), fallback=create_provider(ollama_config)
    )
    conversation = Conversation(max_tokens=4000, provider=provider)
    await conversation.add_user_message("Hello!")
    response = await conversation.continue_chat()

    assert response.content == "Hello from ollama"
    assert response.response_metadata["modelforge_fallback"]["failed"][0]["provider"] == "openai/gpt-4o-mini"
    assert chat_bodies(server, "ollama")[0]["messages"][-1]["content"] == "Hello!"


async def test_cost_tracker_over_a_provider(
    server: ProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = create_provider(snippet_config())
    messages = [HumanMessage("How much?")]
    server.script(Reply(text="This much", usage=Usage(100_000, 20_000)))

    tracker = CostTracker(provider)
    await tracker.chat(messages)
    print(f"Cost: ${tracker.total_cost:.4f}")

    info = Catalog.bundled().model("openai", "gpt-4o-mini")
    assert info is not None and info.input_per_1m is not None and info.output_per_1m is not None
    expected = (100_000 * info.input_per_1m + 20_000 * info.output_per_1m) / 1_000_000
    assert tracker.total_cost == pytest.approx(expected)
    assert capsys.readouterr().out == f"Cost: ${expected:.4f}\n"


async def test_template_messages_and_validated_output(server: ProviderServer) -> None:
    provider = create_provider(snippet_config())
    template = PromptTemplate("You are a {role}. Answer this: {question}")
    messages = template.render(role="chef", question="How to cook pasta?")
    server.script(
        Reply(text="I am a chef, not a JSON machine"),
        Reply(text='{"name": "Mario"}'),
        Reply(text='```json\n{"name": "Mario", "age": 41}\n```'),
    )

    response = await provider.chat(
        messages, response_format=PersonInfo, validation=ValidationConfig(max_retries=2)
    )

    assert response == PersonInfo(name="Mario", age=41)
    bodies = chat_bodies(server)
    assert len(bodies) == 3
    assert "You are a chef. Answer this: How to cook pasta?" in json.dumps(bodies[0]["messages"])
    assert "age" in json.dumps(bodies[2]["messages"][-1])  # the re-ask names the missing field


async def test_batch_chat_with_per_item_options(server: ProviderServer) -> None:
    provider = create_provider(snippet_config())
    messages1 = [HumanMessage("Give me JSON")]
    messages2 = [HumanMessage("Be short")]
    server.responder = lambda r: Reply(
        text='{"ok": true}' if "JSON" in json.dumps(r.json["messages"]) else "Short."
    )

    results = await provider.batch_chat(
        [(messages1, {"response_format": "json"}), (messages2, {"max_tokens": 100})]
    )

    assert [r.ok for r in results] == [True, True]
    assert results[0].output == {"ok": True}
    assert results[1].content == "Short."
    assert results[1].input == (messages2, {"max_tokens": 100})
    short = next(b for b in chat_bodies(server) if "Be short" in json.dumps(b["messages"]))
    assert short.get("max_tokens", short.get("max_completion_tokens")) == 100


async def test_compression_summarizes_a_long_prompt(server: ProviderServer) -> None:
    config = snippet_config()
    provider = create_provider(
        config, compression=CompressionConfig(strategy="summarize", target_tokens=2000)
    )
    messages = [SystemMessage("You are helpful.")]
    for turn in range(40):
        messages += [HumanMessage(f"Question {turn}: " + "tell me more " * 40), AIMessage("More. " * 40)]
    messages.append(HumanMessage("And finally?"))
    server.responder = lambda r: Reply(
        text="They asked many questions."
        if str(r.json["messages"][0]["content"]).startswith("You summarize")
        else "Finally, this."
    )

    response = await provider.chat(messages)

    assert response.content == "Finally, this."
    report = provider.last_compression
    assert report is not None and report.strategy == "summarize"
    assert report.before_tokens > 2000 >= report.after_tokens
    *summary_requests, answer_request = chat_bodies(server)
    assert summary_requests  # the older turns went to the model to be summarized (in parts, as they are long)
    sent = json.dumps(answer_request["messages"])
    assert "They asked many questions." in sent and "And finally?" in sent
    assert "Question 0:" not in sent


async def test_images_and_provider_options(server: ProviderServer) -> None:
    provider = create_provider(snippet_config())
    messages = [HumanMessage("What is in the picture?")]
    server.script(Reply(text="A pixel."))

    response = await provider.chat(messages, images=[f"data:image/png;base64,{PNG}"])

    assert response.content == "A pixel."
    content = chat_bodies(server)[0]["messages"][-1]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}

    provider = create_provider(ModelConfig(name="qwen3:1.7b", provider=Provider.OLLAMA))
    server.script(Reply(text="Big context."))
    response = await provider.chat(messages, num_ctx=8192)
    assert response.content == "Big context."
    assert chat_bodies(server, "ollama")[0]["options"]["num_ctx"] == 8192


async def test_logger_and_callbacks(server: ProviderServer, caplog: pytest.LogCaptureFixture) -> None:
    custom_logger = logging.getLogger("my_app.llm")
    seen: list[tuple[str, str]] = []

    def on_request(event: object) -> None:
        seen.append(("request", getattr(event, "kind", "")))

    def on_response(event: object) -> None:
        seen.append(("response", getattr(event, "kind", "")))

    def on_error(event: object) -> None:
        seen.append(("error", getattr(event, "kind", "")))

    provider = create_provider(
        snippet_config(), logger=custom_logger, callbacks=[on_request, on_response, on_error]
    )
    server.script(Reply(text="Logged.", usage=Usage(10, 3)))
    with caplog.at_level(logging.DEBUG, logger="my_app.llm"):
        await provider.chat([HumanMessage("Hi")])

    assert seen == [("request", "request"), ("response", "response")]
    assert any(
        record.name == "my_app.llm" and "gpt-4o-mini" in record.getMessage() for record in caplog.records
    )
