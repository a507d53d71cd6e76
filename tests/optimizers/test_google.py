"""The Gemini optimizer through the registry: the cached-content lifecycle and safety settings.

Calls go through ``ChatGoogleGenerativeAI`` (google-genai) over HTTP to the test server, which keeps
cached contents as the API does. Time is a ``Clock`` the tests move, set on the optimizer's cache store.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool

from modelforge.exceptions import ConfigurationError
from modelforge.optimizers import aclose_context_caches, optimizer_of
from modelforge.optimizers._google import GoogleOptimizer
from modelforge.testing import Fault, ProviderServer, Reply
from tests.conftest import GOOGLE_KEY
from tests.optimizers.conftest import Clock, LlmFactory

MODEL = "gemini-2.5-flash"
LONG_SYSTEM = "You are the ACME support agent. Always cite the manual section you used. " * 80  # ~1500 tokens


@pytest.fixture(autouse=True, params=["v1", "v1beta"])
def api_version(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against both Gemini API versions: ``v1`` (google-genai >= 3's default) and ``v1beta``
    (google-genai 2's), chosen as users do, with ``GOOGLE_GENAI_API_VERSION``."""
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", request.param)
    return str(request.param)


def _optimizer(llm: Any, clock: Clock | None = None) -> GoogleOptimizer:
    optimizer = optimizer_of(llm)
    assert isinstance(optimizer, GoogleOptimizer)
    if clock is not None:
        optimizer.context_cache.clock = clock
    return optimizer


def _calls(server: ProviderServer, method: str, path_part: str) -> list[Any]:
    return [r for r in server.requests_for("gemini") if r.method == method and path_part in r.path]


def _generations(server: ProviderServer) -> list[dict[str, Any]]:
    return [r.json for r in server.requests_for("gemini") if "generatecontent" in r.path.lower()]


def _ask(llm: Any, question: str) -> Any:
    return llm.invoke([SystemMessage(LONG_SYSTEM), HumanMessage(question)])


def test_long_system_prompt_is_cached_and_reused_within_its_ttl(
    make_llm: LlmFactory, server: ProviderServer, clock: Clock
) -> None:
    llm = make_llm("google")
    _optimizer(llm, clock)
    first = _ask(llm, "How do I reset it?")
    clock.now += 300
    second = _ask(llm, "How do I clean it?")

    creations = _calls(server, "POST", "cachedContents")
    assert len(creations) == 1
    created = creations[0].json
    assert created["model"] == f"models/{MODEL}"
    assert created["systemInstruction"]["parts"][0]["text"] == LONG_SYSTEM
    assert created["ttl"] == "600s"
    name = server.caches.cached_contents[0].name
    for body, question in zip(
        _generations(server), ("How do I reset it?", "How do I clean it?"), strict=True
    ):
        assert body["cachedContent"] == name
        assert "systemInstruction" not in body  # the API refuses it next to a cached content
        assert body["contents"] == [{"parts": [{"text": question}], "role": "user"}]
    for answer in (first, second):
        assert answer.usage_metadata["input_token_details"]["cache_read"] > 0


def test_cached_contents_live_on_v1beta_and_other_calls_keep_the_chosen_version(
    make_llm: LlmFactory, server: ProviderServer, api_version: str
) -> None:
    # The Gemini API serves cachedContents on v1beta only (the test server answers 404 on /v1, as the API
    # does): a call naming one goes there too, and everything else stays on the version the user chose.
    llm = make_llm("google")
    _ask(llm, "cached")
    llm.invoke("short and uncached")
    llm.close()  # type: ignore[attr-defined]
    paths = [(r.method, r.path) for r in server.requests_for("gemini")]
    name = server.caches.deleted[0]
    assert paths == [
        ("POST", "/v1beta/cachedContents"),
        ("POST", f"/v1beta/models/{MODEL}:generateContent"),
        ("POST", f"/{api_version}/models/{MODEL}:generateContent"),
        ("DELETE", f"/v1beta/{name}"),
    ]


def test_beta_means_v1beta_and_a_version_gemini_has_not_is_refused_when_the_model_is_made(
    make_llm: LlmFactory, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "beta")
    make_llm("google").invoke("Hello")
    assert server.requests_for("gemini")[-1].path == f"/v1beta/models/{MODEL}:generateContent"

    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1-beta")
    with pytest.raises(ConfigurationError) as refused:
        make_llm("google")
    assert refused.value.error_code == "GEMINI_API_VERSION_INVALID"
    assert "GOOGLE_GENAI_API_VERSION is 'v1-beta'" in str(refused.value)
    assert "v1, v1beta, v1alpha or beta" in (refused.value.suggestion or "")
    assert len(server.requests_for("gemini")) == 1  # nothing sent with it


def test_the_sdk_default_version_is_kept_when_none_is_chosen(
    make_llm: LlmFactory, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.genai import _api_client

    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION")
    default = getattr(_api_client, "GOOGLE_AI_API_DEFAULT_VERSION", "v1beta")  # google-genai 2 had v1beta
    make_llm("google").invoke("Hello")
    assert server.requests_for("gemini")[-1].path == f"/{default}/models/{MODEL}:generateContent"


def test_a_new_cache_is_made_after_the_old_one_expired(
    make_llm: LlmFactory, server: ProviderServer, clock: Clock
) -> None:
    llm = make_llm("google", optimizations={"context_caching": {"ttl": "2m"}})
    _optimizer(llm, clock)
    _ask(llm, "one")
    clock.now += 125
    _ask(llm, "two")
    assert len(_calls(server, "POST", "cachedContents")) == 2
    first, second = (body["cachedContent"] for body in _generations(server))
    assert first != second
    assert [c.json["ttl"] for c in _calls(server, "POST", "cachedContents")] == ["120s", "120s"]


def test_a_cache_about_to_expire_is_not_used(
    make_llm: LlmFactory, server: ProviderServer, clock: Clock
) -> None:
    llm = make_llm("google")  # TTL 600 s: used until a minute before it ends
    _optimizer(llm, clock)
    _ask(llm, "one")
    clock.now += 545
    _ask(llm, "two")
    assert len(_calls(server, "POST", "cachedContents")) == 2


def test_close_deletes_the_live_caches(make_llm: LlmFactory, server: ProviderServer, clock: Clock) -> None:
    llm = make_llm("google")
    _optimizer(llm, clock)
    _ask(llm, "one")
    name = server.caches.cached_contents[0].name
    llm.close()  # type: ignore[attr-defined]
    assert server.caches.deleted == [name]
    assert _calls(server, "DELETE", name)
    assert server.caches.cached_contents == []
    llm.close()  # type: ignore[attr-defined]
    assert len(_calls(server, "DELETE", "cachedContents")) == 1  # nothing left to delete


def test_markers_put_the_static_part_of_a_message_in_the_cache(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    manual = "Section 1: unpack the widget carefully. " * 250
    llm = make_llm("google")
    llm.invoke([HumanMessage(f"<<STATIC>>{manual}<<DYNAMIC>>What is in section 1?")])
    llm.invoke([HumanMessage(f"<<STATIC>>{manual}<<DYNAMIC>>What is in section 2?")])
    (creation,) = _calls(server, "POST", "cachedContents")
    assert creation.json["contents"] == [{"parts": [{"text": manual}], "role": "user"}]
    bodies = _generations(server)
    assert bodies[1]["contents"] == [{"parts": [{"text": "What is in section 2?"}], "role": "user"}]
    assert bodies[0]["cachedContent"] == bodies[1]["cachedContent"]
    assert "<<" not in server.requests_for("gemini")[-1].body.decode()


def test_short_prompts_and_tool_calls_are_sent_as_they_are(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    @tool
    def lookup(part: str) -> str:
        """Look a part up."""
        return part

    llm = make_llm("google")
    llm.invoke([SystemMessage("Be brief."), HumanMessage("<<STATIC>>Hi<<DYNAMIC>> there")])
    llm.bind_tools([lookup]).invoke([SystemMessage(LONG_SYSTEM), HumanMessage("Find the flange")])
    assert _calls(server, "POST", "cachedContents") == []
    short, with_tools = _generations(server)
    assert "cachedContent" not in short and "cachedContent" not in with_tools
    assert short["contents"][0]["parts"][0]["text"] == "Hi there"
    assert with_tools["systemInstruction"]["parts"][0]["text"] == LONG_SYSTEM


def test_min_tokens_and_switch_off(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("google", optimizations={"context_caching": {"min_tokens": 5000}}).invoke(
        [SystemMessage(LONG_SYSTEM), HumanMessage("q")]
    )
    make_llm("google", optimizations={"context_caching": False}).invoke(
        [SystemMessage(LONG_SYSTEM), HumanMessage("q")]
    )
    assert _calls(server, "POST", "cachedContents") == []
    assert all("cachedContent" not in body for body in _generations(server))


def test_failed_cache_creation_falls_back_with_a_warning(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.caches.fail_next(Fault(status=500, message="Internal error encountered."))
    server.script(Reply(text="Answered anyway."))
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        answer = _ask(make_llm("google"), "Still there?")
    assert answer.content == "Answered anyway."
    (body,) = _generations(server)
    assert "cachedContent" not in body
    assert body["systemInstruction"]["parts"][0]["text"] == LONG_SYSTEM
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("context_caching failed" in w and "500" in w for w in warnings)
    assert not any(GOOGLE_KEY in w for w in warnings)


def test_a_cache_gone_early_is_replaced_by_a_plain_call(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm("google")
    _ask(llm, "one")
    server.caches.clear()  # the provider lost it (deleted elsewhere, expired early)
    server.script(Reply(text="Fine without it."))
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        answer = _ask(llm, "two")
    assert answer.content == "Fine without it."
    refused, plain = _generations(server)[1:]
    assert "cachedContent" in refused and "cachedContent" not in plain
    assert any("refused the optimized request" in r.getMessage() for r in caplog.records)
    _ask(llm, "three")  # the next call makes a new cache
    assert len(_calls(server, "POST", "cachedContents")) == 2


def test_safety_settings_from_the_config(make_llm: LlmFactory, server: ProviderServer) -> None:
    settings = {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH", "HARM_CATEGORY_HATE_SPEECH": "BLOCK_NONE"}
    make_llm("google", optimizations={"safety_settings": settings}).invoke("Hello")
    assert _generations(server)[-1]["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"},
    ]
    make_llm("google").invoke("Hello")
    assert not _generations(server)[-1].get("safetySettings")


def test_streamed_call_uses_the_cache(make_llm: LlmFactory, server: ProviderServer) -> None:
    llm = make_llm("google")
    merged: Any = None
    for chunk in llm.stream([SystemMessage(LONG_SYSTEM), HumanMessage("stream it")]):
        merged = chunk if merged is None else merged + chunk
    assert _generations(server)[-1]["cachedContent"]
    assert merged.usage_metadata["input_token_details"]["cache_read"] > 0


async def test_async_calls_create_reuse_and_delete(
    make_llm: LlmFactory, server: ProviderServer, clock: Clock
) -> None:
    llm = make_llm("google", optimizations={"safety_settings": {"HARM_CATEGORY_HARASSMENT": "BLOCK_NONE"}})
    _optimizer(llm, clock)
    await llm.ainvoke([SystemMessage(LONG_SYSTEM), HumanMessage("one")])
    _ = [c async for c in llm.astream([SystemMessage(LONG_SYSTEM), HumanMessage("two")])]
    assert len(_calls(server, "POST", "cachedContents")) == 1
    bodies = _generations(server)
    assert bodies[0]["cachedContent"] == bodies[1]["cachedContent"]
    assert bodies[1]["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]
    await aclose_context_caches()
    assert server.caches.deleted == [bodies[0]["cachedContent"]]


async def test_async_creation_failure_falls_back(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.caches.fail_next(Fault(status=503))
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        answer = await make_llm("google").ainvoke([SystemMessage(LONG_SYSTEM), HumanMessage("q")])
    assert answer.content
    assert "cachedContent" not in _generations(server)[-1]
    assert any("context_caching failed" in r.getMessage() for r in caplog.records)


def test_disabled_sends_requests_untouched(make_llm: LlmFactory, server: ProviderServer) -> None:
    make_llm("google", enable=False).invoke([SystemMessage(LONG_SYSTEM), HumanMessage("<<STATIC>>q")])
    assert _calls(server, "POST", "cachedContents") == []
    body = _generations(server)[-1]
    assert "cachedContent" not in body
    assert body["contents"][0]["parts"][0]["text"] == "<<STATIC>>q"


def test_caches_of_a_dropped_model_are_deleted_at_exit(make_llm: LlmFactory, server: ProviderServer) -> None:
    import gc

    from modelforge.optimizers import close_context_caches

    llm = make_llm("google")
    _ask(llm, "one")
    name = server.caches.cached_contents[0].name
    del llm
    gc.collect()
    close_context_caches()  # what runs at interpreter exit
    assert server.caches.deleted == [name]


async def test_concurrent_calls_with_one_prefix_create_one_cache(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    llm = make_llm("google")
    prompts = [[SystemMessage(LONG_SYSTEM), HumanMessage(f"question {i}")] for i in range(8)]
    answers = await llm.abatch(prompts)  # type: ignore[arg-type]
    assert len(answers) == 8 and all(a.content for a in answers)
    assert len(_calls(server, "POST", "cachedContents")) == 1
    assert len({body["cachedContent"] for body in _generations(server)}) == 1


def test_concurrent_threads_with_one_prefix_create_one_cache(
    make_llm: LlmFactory, server: ProviderServer
) -> None:
    llm = make_llm("google")
    prompts = [[SystemMessage(LONG_SYSTEM), HumanMessage(f"question {i}")] for i in range(8)]
    answers = llm.batch(prompts, config={"max_concurrency": 8})  # type: ignore[arg-type]
    assert len(answers) == 8
    assert len(_calls(server, "POST", "cachedContents")) == 1
    assert len({body["cachedContent"] for body in _generations(server)}) == 1


def test_models_from_two_get_llm_calls_share_the_cache(make_llm: LlmFactory, server: ProviderServer) -> None:
    import gc
    import weakref

    first = make_llm("google")
    _ask(first, "one")
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None  # the process-wide store does not keep models alive
    second = make_llm("google")
    _ask(second, "two")
    assert len(_calls(server, "POST", "cachedContents")) == 1
    first_body, second_body = _generations(server)
    assert first_body["cachedContent"] == second_body["cachedContent"]


def test_another_credential_gets_its_own_cache(
    make_llm: LlmFactory, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_llm("google")
    _ask(first, "one")
    monkeypatch.setenv("MODELFORGE_GOOGLE_API_KEY", GOOGLE_KEY + "-other")
    second = make_llm("google")
    _ask(second, "two")
    assert len(_calls(server, "POST", "cachedContents")) == 2
    first_body, second_body = _generations(server)
    assert first_body["cachedContent"] != second_body["cachedContent"]


def test_closing_one_model_keeps_the_cache_another_uses(make_llm: LlmFactory, server: ProviderServer) -> None:
    first, second = make_llm("google"), make_llm("google")
    _ask(first, "one")
    _ask(second, "two")
    first.close()  # type: ignore[attr-defined]
    assert server.caches.deleted == []
    second.close()  # type: ignore[attr-defined]
    assert len(server.caches.deleted) == 1


def test_a_prefix_the_provider_refused_is_not_offered_again(
    make_llm: LlmFactory, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    # ModelForge estimates tokens from text length; the provider counts them and refuses a cache below its
    # minimum with a 400. Asking again with the same prefix would be refused again, on every call.
    server.caches.gemini_min_tokens = 1_000_000
    llm = make_llm("google")
    with caplog.at_level(logging.WARNING, logger="modelforge.optimizers"):
        first = _ask(llm, "one")
        second = _ask(llm, "two")
    assert first.content and second.content
    assert len(_calls(server, "POST", "cachedContents")) == 1
    assert all("cachedContent" not in body for body in _generations(server))
    warnings = [r.getMessage() for r in caplog.records if "context_caching" in r.getMessage()]
    assert len(warnings) == 1 and "400" in warnings[0]
