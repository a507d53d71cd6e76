"""Provider-specific options and images, checked on the wire of each provider family."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from modelforge import ModelConfig, Provider, config, create_provider
from modelforge.exceptions import InvalidInputError
from modelforge.testing import Fault, ProviderServer, Reply
from tests.assistant_providers.conftest import chat_bodies
from tests.assistant_providers.test_snippets import PNG
from tests.providers.conftest import provider_config

OPENAI = ModelConfig(name="gpt-4o-mini", provider=Provider.OPENAI)
ANTHROPIC = ModelConfig(name="claude-sonnet-4-6", provider=Provider.ANTHROPIC)
OLLAMA = ModelConfig(name="qwen3:1.7b", provider=Provider.OLLAMA, temperature=0.3)
GOOGLE = ModelConfig(name="gemini-2.5-flash", provider=Provider.GOOGLE)


def picture(tmp_path: Path) -> Path:
    path = tmp_path / "pixel.png"
    path.write_bytes(base64.b64decode(PNG))
    return path


async def test_openai_takes_seed_and_images_as_image_url_parts(
    server: ProviderServer, tmp_path: Path
) -> None:
    provider = create_provider(OPENAI)
    server.script(Reply(text="ok"))
    await provider.chat("Describe", images=[picture(tmp_path), "https://example.com/cat.jpg"], seed=42)
    body = chat_bodies(server)[0]
    assert body["seed"] == 42
    parts = body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "Describe"}
    assert [p["image_url"]["url"] for p in parts[1:]] == [
        f"data:image/png;base64,{PNG}",
        "https://example.com/cat.jpg",
    ]


async def test_anthropic_gets_image_source_blocks_and_top_k(server: ProviderServer) -> None:
    provider = create_provider(ANTHROPIC)
    server.script(Reply(text="ok"))
    await provider.chat("Describe", images=f"data:image/png;base64,{PNG}", top_k=5, max_tokens=50)
    body = chat_bodies(server, "anthropic")[0]
    assert body["top_k"] == 5 and body["max_tokens"] == 50
    image = body["messages"][-1]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


async def test_ollama_options_travel_in_options_with_the_models_own(server: ProviderServer) -> None:
    provider = create_provider(OLLAMA)
    server.script(Reply(text="ok"))
    await provider.chat(
        "Describe",
        images=[f"data:image/png;base64,{PNG}"],
        num_ctx=8192,
        keep_alive="30m",
        seed=7,
        max_tokens=64,
    )
    body = chat_bodies(server, "ollama")[0]
    assert body["keep_alive"] == "30m"
    assert body["options"]["num_ctx"] == 8192
    assert body["options"]["seed"] == 7
    assert body["options"]["num_predict"] == 64
    assert body["options"]["temperature"] == 0.3  # the model's own setting is kept
    assert body["messages"][-1]["images"] == [PNG]


async def test_gemini_gets_inline_data_and_max_output_tokens(server: ProviderServer) -> None:
    provider = create_provider(GOOGLE)
    server.script(Reply(text="ok"))
    await provider.chat("Describe", images=[f"data:image/png;base64,{PNG}"], max_tokens=80, top_k=3)
    body = chat_bodies(server, "gemini")[0]
    assert body["generationConfig"]["maxOutputTokens"] == 80
    assert body["generationConfig"]["topK"] == 3
    text, image = body["contents"][-1]["parts"]
    assert text == {"text": "Describe"}
    inline = image["inlineData"]  # google-genai sends bytes as URL-safe base64
    assert base64.urlsafe_b64decode(inline["data"]) == base64.b64decode(PNG)
    assert inline.get("mimeType", inline.get("mime_type")) == "image/png"


@pytest.mark.parametrize(
    ("config", "option", "named"),
    [
        (OPENAI, {"num_ctx": 8192}, "num_ctx is an option of ollama"),
        (OPENAI, {"temprature": 0.2}, "Unknown option 'temprature'"),
        (ANTHROPIC, {"seed": 1}, "Unknown option 'seed'"),
        (OLLAMA, {"logit_bias": {}}, "Unknown option 'logit_bias'"),
    ],
)
async def test_unknown_options_are_refused_with_the_accepted_ones(
    server: ProviderServer, config: ModelConfig, option: dict[str, Any], named: str
) -> None:
    provider = create_provider(config)
    with pytest.raises(InvalidInputError, match=named) as caught:
        await provider.chat("Hi", **option)
    assert "Accepted options:" in str(caught.value.suggestion)
    assert "max_tokens" in str(caught.value.suggestion)
    assert server.requests == []  # nothing was sent


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ({"num_ctx": 0}, "num_ctx must be a whole number > 0"),
        ({"temperature": 3}, "temperature must be a number from 0 to 2"),
        ({"stop": "END"}, "stop must be a list of strings"),
        ({"keep_alive": True}, "keep_alive must be a duration"),
    ],
)
async def test_bad_option_values_are_refused(
    server: ProviderServer, option: dict[str, Any], problem: str
) -> None:
    provider = create_provider(OLLAMA)
    with pytest.raises(InvalidInputError, match=problem):
        await provider.chat("Hi", **option)
    assert server.requests == []


async def test_images_need_a_user_message_and_a_readable_image(
    server: ProviderServer, tmp_path: Path
) -> None:
    provider = create_provider(OPENAI)
    with pytest.raises(InvalidInputError, match="not an image URL"):
        await provider.chat("Hi", images=[str(tmp_path / "notes.txt")])
    with pytest.raises(InvalidInputError, match="need a user message"):
        await provider.chat([("system", "Be brief")], images=[f"data:image/png;base64,{PNG}"])
    assert server.requests == []


def test_sync_twins(server: ProviderServer) -> None:
    provider = create_provider(OPENAI)
    server.script(Reply(text="sync"), Reply(text="one two", chunks=["one ", "two"]), Reply(text="batched"))
    assert provider.chat_sync([HumanMessage("Hi")], seed=1).content == "sync"
    assert "".join(str(c.content) for c in provider.stream_sync("Hi", seed=2)) == "one two"
    [result] = provider.batch_chat_sync(["Hi"])
    assert result.content == "batched"
    assert [b.get("seed") for b in chat_bodies(server)] == [1, 2, None]


async def test_options_reach_each_member_of_a_config_fallback_chain(server: ProviderServer) -> None:
    data = provider_config(server)
    data["providers"]["openai"]["fallbacks"] = [{"provider": "ollama", "model": "qwen3:1.7b"}]
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    provider = create_provider("openai/gpt-4o-mini")
    server.script(Fault(status=503), Reply(text="from ollama"))

    reply = await provider.chat("Hi", max_tokens=5, num_ctx=2048)

    assert reply.content == "from ollama"
    [openai_body] = chat_bodies(server)
    assert openai_body.get("max_tokens", openai_body.get("max_completion_tokens")) == 5
    assert "num_ctx" not in openai_body
    [ollama_body] = chat_bodies(server, "ollama")
    assert ollama_body["options"] == {"num_predict": 5, "num_ctx": 2048}


async def test_a_message_tuple_is_one_message_and_images_must_be_paths_or_urls(
    server: ProviderServer,
) -> None:
    provider = create_provider(OPENAI)
    server.script(Reply(text="ok"))
    await provider.chat(("user", "hello"))
    assert chat_bodies(server)[0]["messages"] == [{"role": "user", "content": "hello"}]
    with pytest.raises(InvalidInputError, match="must be a URL, a data URL or a file path, got bytes"):
        await provider.chat("Hi", images=[b"\x89PNG"])  # type: ignore[list-item]
