"""The Gemini protocol, proved with the real ``google-genai`` SDK and ``ChatGoogleGenerativeAI``."""

from __future__ import annotations

import json

import httpx
import pytest
from google import genai
from google.genai import errors, types
from langchain_core.messages import AIMessageChunk
from langchain_google_genai import ChatGoogleGenerativeAI

from modelforge.testing import Fault, ProviderServer, Reply, ToolCall, Usage

KEY = "gemini-test-key-wire"
MODEL = "gemini-2.5-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


VERSION = "v1beta"


@pytest.fixture(autouse=True, params=["v1", "v1beta"])
def api_version(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against both Gemini API versions: ``v1`` (google-genai >= 3's default, where the API
    shares paths such as ``/v1/models`` with OpenAI's) and ``v1beta`` (google-genai 2's). Named to the
    clients explicitly: google-genai 2 does not read ``GOOGLE_GENAI_API_VERSION``."""
    monkeypatch.setitem(globals(), "VERSION", request.param)
    return str(request.param)


def _client(server: ProviderServer, key: str = KEY) -> genai.Client:
    """Keep the returned client in a variable: a garbage-collected ``genai.Client`` closes its HTTP client."""
    options = types.HttpOptions(base_url=server.gemini_base_url, api_version=VERSION)
    return genai.Client(api_key=key, http_options=options)


def _chat(server: ProviderServer) -> ChatGoogleGenerativeAI:
    # max_retries=1 means "one attempt" in langchain-google-genai (0 would mean the SDK's default retries).
    return ChatGoogleGenerativeAI(
        model=MODEL, google_api_key=KEY, base_url=server.gemini_base_url, max_retries=1, api_version=VERSION
    )


def test_generate_content(server: ProviderServer, api_version: str) -> None:
    server.script(Reply(text="Hi there", usage=Usage(6, 2)))
    client = _client(server)
    response = client.models.generate_content(model=MODEL, contents="hello")
    assert response.text == "Hi there"
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata is not None
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (6, 2, 8)
    recorded = server.requests[-1]
    assert recorded.protocol == "gemini"
    assert recorded.path == f"/{api_version}/models/{MODEL}:generateContent"
    assert recorded.headers["x-goog-api-key"] == KEY


def test_stream_generate_content(server: ProviderServer) -> None:
    server.script(Reply(text="one two three", usage=Usage(4, 3)))
    client = _client(server)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="count"))
    assert "".join(c.text or "" for c in chunks) == "one two three"
    last = chunks[-1]
    assert last.candidates is not None and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 7
    assert server.requests[-1].query == {"alt": "sse"}


def test_function_calls(server: ProviderServer) -> None:
    args = {"city": "Paris", "days": 3}
    server.script(Reply(text="", tool_calls=[ToolCall("get_weather", args)]))
    server.script(Reply(text="Looking.", tool_calls=[ToolCall("get_weather", args)]))
    client = _client(server)
    response = client.models.generate_content(model=MODEL, contents="weather?")
    assert response.function_calls is not None
    assert [(c.name, c.args) for c in response.function_calls] == [("get_weather", args)]
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="weather?"))
    calls = [c for chunk in chunks for c in (chunk.function_calls or [])]
    assert [(c.name, c.args) for c in calls] == [("get_weather", args)]


def test_chat_google_genai_invoke_stream_tools(server: ProviderServer) -> None:
    model = _chat(server)
    server.script(
        Reply(text="plain answer", usage=Usage(5, 2)),
        Reply(text="streamed answer here", usage=Usage(5, 3)),
        Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]),
    )
    result = model.invoke("hi")
    assert result.content == "plain answer"
    assert result.usage_metadata is not None and result.usage_metadata["input_tokens"] == 5
    full: AIMessageChunk | None = None
    for chunk in model.stream("hi"):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None and full.content == "streamed answer here"
    assert full.usage_metadata is not None
    assert (full.usage_metadata["input_tokens"], full.usage_metadata["output_tokens"]) == (5, 3)
    tool_result = model.bind_tools([WEATHER_TOOL]).invoke("weather?")
    assert [(c["name"], c["args"]) for c in tool_result.tool_calls] == [("get_weather", {"city": "Oslo"})]


async def test_async_chat_google_genai(server: ProviderServer) -> None:
    server.script(Reply(text="async gemini"), Reply(text="async stream"))
    model = _chat(server)
    assert (await model.ainvoke("hi")).content == "async gemini"
    assert "".join([str(c.content) async for c in model.astream("hi")]) == "async stream"


@pytest.mark.parametrize(
    ("status", "error", "grpc_status"),
    [
        (401, errors.ClientError, "UNAUTHENTICATED"),
        (404, errors.ClientError, "NOT_FOUND"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
    ],
)
def test_faults_surface_as_sdk_errors(
    server: ProviderServer, status: int, error: type[errors.APIError], grpc_status: str
) -> None:
    server.script(Fault(status, "nope", retry_after="2"))
    client = _client(server)
    with pytest.raises(error) as info:
        client.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == status
    assert info.value.status == grpc_status
    assert info.value.message == "nope"
    assert info.value.response is not None
    assert info.value.response.headers["retry-after"] == "2"


def test_langchain_rate_limit_error_keeps_the_response(server: ProviderServer) -> None:
    from langchain_google_genai.chat_models import GoogleRateLimitError

    server.script(Fault(429, "quota", retry_after="7"))
    with pytest.raises(GoogleRateLimitError) as info:
        _chat(server).invoke("hi")
    cause = info.value.__cause__
    assert isinstance(cause, errors.ClientError)
    assert cause.response.headers["retry-after"] == "7"


def test_require_api_key_header_or_query(server: ProviderServer) -> None:
    server.require_api_key = KEY
    wrong, right = _client(server, key="wrong"), _client(server)
    with pytest.raises(errors.ClientError) as info:
        wrong.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 401
    assert right.models.generate_content(model=MODEL, contents="x").text
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    url = f"{server.gemini_base_url}/v1beta/models/{MODEL}:generateContent"
    with httpx.Client() as client:
        assert client.post(url, params={"key": KEY}, json=body).status_code == 200
        assert client.post(url, params={"key": "bad"}, json=body).status_code == 401


def test_raw_sse_framing(server: ProviderServer) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    url = f"{server.gemini_base_url}/v1beta/models/{MODEL}:streamGenerateContent"
    with httpx.Client() as client:
        text = client.post(url, params={"alt": "sse"}, json=body).text
    events = [json.loads(block[6:]) for block in text.split("\r\n\r\n") if block]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["modelVersion"] == MODEL


def test_models_list(server: ProviderServer) -> None:
    server.gemini_models = ["gemini-a"]
    client = _client(server)
    names = [m.name for m in client.models.list()]
    assert names == ["models/gemini-a"]
