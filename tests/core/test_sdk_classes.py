"""``get_llm()`` hands back the provider's own LangChain class, as 2.3.0 did, with ModelForge inside it.

For each of the four SDK families, over real HTTP against the wire-protocol server: ``isinstance`` with the
SDK's class holds; assigning a setting (``llm.temperature = 0.25``) reaches the next request body; the model
pickles without its key and comes back as the same class with the setting; LangChain's serialization names
the SDK class. ModelForge's policies still run inside (a 503 is retried through ``bind_tools`` and
``with_structured_output``), and the calls LangChain 1.x removed but 2.3.0 code still makes work with a
``DeprecationWarning``.
"""

from __future__ import annotations

import json
import pickle
import warnings
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from modelforge import config
from modelforge.policies.fallback import FallbackChatModel
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply
from tests.conftest import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY, TEST_SECRETS
from tests.providers.conftest import provider_config

FAMILIES = {
    # provider name -> (the SDK's class, model alias, protocol the server records, path to temperature)
    "openai": (ChatOpenAI, "gpt-4o-mini", "openai", ("temperature",)),
    "anthropic": (ChatAnthropic, "claude-sonnet-4-6", "anthropic", ("temperature",)),
    "ollama": (ChatOllama, "qwen3:1.7b", "ollama", ("options", "temperature")),
    "google": (ChatGoogleGenerativeAI, "gemini-2.5-flash", "gemini", ("generationConfig", "temperature")),
}


@pytest.fixture
def server() -> Any:
    with ProviderServer() as running:
        yield running


@pytest.fixture(autouse=True)
def configured(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("MODELFORGE_ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("MODELFORGE_GOOGLE_API_KEY", GOOGLE_KEY)
    data = provider_config(server)
    for provider in data["providers"].values():
        provider["retry"] = {"max_attempts": 3, "initial_wait": 0.01, "max_wait": 0.02}
    config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(data))
    return data


def last_body(server: ProviderServer, protocol: str) -> dict[str, Any]:
    body = server.requests_for(protocol)[-1].json  # type: ignore[arg-type]
    assert isinstance(body, dict)
    return body


def dig(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for key in path:
        value = value[key]
    return value


@pytest.mark.parametrize("provider", list(FAMILIES))
def test_get_llm_is_the_sdk_class_and_an_assigned_setting_reaches_the_next_request(
    provider: str, server: ProviderServer
) -> None:
    sdk_class, alias, protocol, temperature_at = FAMILIES[provider]
    llm = ModelForgeRegistry().get_llm(provider, alias)
    assert isinstance(llm, sdk_class)
    llm.temperature = 0.25  # type: ignore[attr-defined]
    assert llm.invoke("hi").text
    assert dig(last_body(server, protocol), temperature_at) == 0.25
    llm.temperature = 0.75  # type: ignore[attr-defined]
    assert "".join(chunk.text for chunk in llm.stream("hi"))
    assert dig(last_body(server, protocol), temperature_at) == 0.75


@pytest.mark.parametrize("provider", list(FAMILIES))
def test_the_model_pickles_without_its_key_into_the_same_class(provider: str, server: ProviderServer) -> None:
    sdk_class, alias, protocol, temperature_at = FAMILIES[provider]
    llm = ModelForgeRegistry().get_llm(provider, alias)
    llm.temperature = 0.25  # type: ignore[attr-defined]
    data = pickle.dumps(llm)
    for secret in TEST_SECRETS:
        assert secret.encode() not in data
    restored = pickle.loads(data)
    assert type(restored) is type(llm) and isinstance(restored, sdk_class)
    assert restored.temperature == 0.25
    assert restored.invoke("hi").text  # rebuilt with this process's credentials
    assert dig(last_body(server, protocol), temperature_at) == 0.25


@pytest.mark.parametrize("provider", list(FAMILIES))
def test_langchain_serialization_is_that_of_the_sdk_class(provider: str) -> None:
    sdk_class, alias, _, _ = FAMILIES[provider]
    dumped = dumpd(ModelForgeRegistry().get_llm(provider, alias))
    assert dumped["id"] == sdk_class.lc_id()
    text = json.dumps(dumped)
    for secret in TEST_SECRETS:
        assert secret not in text


class Person(BaseModel):
    name: str


def test_policies_run_inside_bound_and_structured_models(server: ProviderServer) -> None:
    llm = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")

    def lookup(city: str) -> str:
        """Weather of a city."""
        return city

    server.script(Fault(status=503), Reply(text="after a retry"))
    assert llm.bind_tools([lookup]).invoke("hi").text == "after a retry"
    server.script(Fault(status=503), Reply(text='{"name": "Ada"}'))
    structured = llm.with_structured_output(Person, method="json_mode")
    assert structured.invoke("who?") == Person(name="Ada")
    server.script(Fault(status=503), Reply(text="configured"))
    assert llm.with_config(tags=["x"]).invoke("hi").text == "configured"
    server.script(Reply(text="a"), Reply(text="b"))
    assert sorted(answer.text for answer in llm.batch(["a", "b"])) == ["a", "b"]


async def test_astream_events_carry_the_stream(server: ProviderServer) -> None:
    llm = ModelForgeRegistry().get_llm("anthropic", "claude-sonnet-4-6")
    server.script(Reply(text="evented"))
    kinds = [event["event"] async for event in llm.astream_events("hi", version="v2")]
    assert "on_chat_model_stream" in kinds and kinds[-1] == "on_chat_model_end"


def test_calls_langchain_removed_still_work_with_a_deprecation_warning(server: ProviderServer) -> None:
    llm: Any = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    server.script(Reply(text="one"), Reply(text="two"), Reply(text="three"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert llm.predict("hi") == "one"
        assert llm.call_as_llm("hi") == "two"
        answer = llm("hi")
    assert isinstance(answer, AIMessage) and answer.text == "three"
    assert [w.category for w in caught] == [DeprecationWarning] * 3
    assert "invoke" in str(caught[0].message)


def test_a_fallback_chain_is_a_model_of_its_own(configured: dict[str, Any]) -> None:
    configured["providers"]["openai"]["fallbacks"] = ["anthropic"]
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(configured))
    chain = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    assert isinstance(chain, FallbackChatModel)  # it holds several models: docs/migrating.md says so
    assert isinstance(chain.models[0], ChatOpenAI) and isinstance(chain.models[1], ChatAnthropic)


@pytest.mark.parametrize("provider", list(FAMILIES))
def test_repr_shows_header_names_but_never_their_values(provider: str, configured: dict[str, Any]) -> None:
    configured["providers"][provider]["headers"] = {"X-Api-Key": "hdr-secret-123", "X-Team": "blue"}
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(configured))
    llm = ModelForgeRegistry().get_llm(provider, FAMILIES[provider][1])
    for text in (repr(llm), str(llm)):
        assert "hdr-secret-123" not in text and "blue" not in text
        assert "X-Api-Key" in text


def test_a_fallback_member_pickles_as_itself_and_the_chain_as_a_chain(
    configured: dict[str, Any], server: ProviderServer
) -> None:
    configured["providers"]["openai"]["fallbacks"] = ["anthropic"]
    config.GLOBAL_CONFIG_FILE.write_text(json.dumps(configured))
    chain = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    assert isinstance(chain, FallbackChatModel)
    primary = chain.models[0]
    primary.temperature = 0.5  # type: ignore[attr-defined]
    member = pickle.loads(pickle.dumps(primary))
    assert type(member) is type(primary) and member.temperature == 0.5
    copy = pickle.loads(pickle.dumps(chain))
    assert [type(model) for model in copy.models] == [type(model) for model in chain.models]


def test_models_of_other_registries_pickle_back_to_their_config(
    tmp_path: Any, configured: dict[str, Any], server: ProviderServer
) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps(configured))
    config.GLOBAL_CONFIG_FILE.unlink()  # only the file given to the registry knows the providers
    from_file = ModelForgeRegistry(config_path=path).get_llm("openai", "gpt-4o-mini")
    assert pickle.loads(pickle.dumps(from_file)).invoke("hi").text
    in_code = ModelForgeRegistry.from_config(
        {
            "providers": {
                "openai": {**configured["providers"]["openai"], "headers": {"X-Api-Key": "hdr-secret-9"}}
            }
        }
    ).get_llm("openai", "gpt-4o-mini")
    data = pickle.dumps(in_code)
    assert b"hdr-secret-9" not in data  # headers may hold keys: they stay behind
    assert pickle.loads(data).invoke("hi").text


def test_settings_changed_in_place_and_added_steps_survive_pickling(server: ProviderServer) -> None:
    from modelforge.cache import cache_of, with_cache

    llm: Any = with_cache(ModelForgeRegistry().get_llm("openai", "gpt-4o-mini"), "openai", True)
    llm.model_kwargs["seed"] = 7
    llm.stop = ["END"]
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.model_kwargs == {"seed": 7} and copy.stop == ["END"]
    assert cache_of(copy) is cache_of(llm)  # the same shared cache, rebuilt from its configuration
    copy.invoke("hi")
    assert last_body(server, "openai")["seed"] == 7


def test_the_calls_langchain_removed_take_callbacks_as_they_did(server: ProviderServer) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Ends(BaseCallbackHandler):
        count = 0

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            Ends.count += 1

    llm: Any = ModelForgeRegistry().get_llm("openai", "gpt-4o-mini")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        llm.predict("hi", callbacks=[Ends()])
        llm("hi", callbacks=[Ends()], tags=["old"])
        llm.call_as_llm("hi", callbacks=[Ends()])
    assert Ends.count == 3
