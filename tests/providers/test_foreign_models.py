"""The stream helpers on models ModelForge did not build (``ChatOpenAI(...)``, ``ChatAnthropic(...)``,
under ``bind_tools`` too) check streams and translate errors as on a ``get_llm()`` model: a truncated stream
raises ``StreamInterruptedError`` with its text, an SDK error becomes the ModelForge error, and nothing is
retried or counted in ModelForge's metrics (the user asked for neither).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

import modelforge
from modelforge.exceptions import ProviderOverloadedError, StreamInterruptedError
from modelforge.streaming import StreamEnd, StreamError, stream_events, stream_to_file
from modelforge.telemetry import metrics
from modelforge.testing import Fault, ProviderServer, Reply
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

TEXT = "one two three four"


def foreign(server: ProviderServer, family: str) -> Any:
    if family == "anthropic":
        return ChatAnthropic(  # type: ignore[call-arg]
            model="claude-haiku-4-5", base_url=server.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0
        )
    return ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key=OPENAI_KEY, max_retries=0)


FAMILIES = ["openai", "anthropic"]


async def collect(llm: Any) -> str:
    return "".join([piece async for piece in modelforge.stream(llm, "count")])


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_truncated_stream_raises_with_its_text(server: ProviderServer, family: str) -> None:
    server.script(Reply(text=TEXT, cut_after=2))
    with pytest.raises(StreamInterruptedError) as info:
        await collect(foreign(server, family))
    assert info.value.partial_text == "one two "


@pytest.mark.parametrize("family", FAMILIES)
async def test_sdk_errors_become_modelforge_errors_and_are_not_retried(
    server: ProviderServer, family: str
) -> None:
    server.script(Fault(status=529 if family == "anthropic" else 503, message="busy"), Reply(text="unused"))
    with pytest.raises(ProviderOverloadedError) as info:
        await collect(foreign(server, family))
    sdk_error = info.value.__cause__
    assert sdk_error is not None and type(sdk_error).__module__.split(".")[0].endswith(
        ("openai", "anthropic")
    )
    assert server.script_remaining == 1  # no retry


@pytest.mark.parametrize("family", FAMILIES)
async def test_an_error_event_after_text_keeps_the_text(server: ProviderServer, family: str) -> None:
    server.script(Reply(text=TEXT, error_after=2, error=Fault(529 if family == "anthropic" else 503)))
    with pytest.raises(StreamInterruptedError) as info:
        await collect(foreign(server, family))
    assert info.value.partial_text == "one two " and info.value.retryable


async def test_stream_events_under_bind_tools_report_the_cut(server: ProviderServer) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    llm = foreign(server, "openai").bind_tools([tool])
    server.script(Reply(text=TEXT, cut_after=2))
    events = [event async for event in stream_events(llm, "count")]
    (failure,) = [event for event in events if isinstance(event, StreamError)]
    assert isinstance(failure.error, StreamInterruptedError) and failure.partial_text == "one two "
    assert not [event for event in events if isinstance(event, StreamEnd)]


async def test_stream_to_file_keeps_nothing_of_a_cut_stream(server: ProviderServer, tmp_path: Path) -> None:
    server.script(Reply(text=TEXT, cut_after=2))
    target = tmp_path / "answer.txt"
    with pytest.raises(StreamInterruptedError):
        await stream_to_file(foreign(server, "openai"), "count", target)
    assert not target.exists()


async def test_a_whole_stream_is_unchanged_and_not_counted(server: ProviderServer) -> None:
    before = metrics.performance_metrics()
    server.script(Reply(text=TEXT))
    assert await collect(foreign(server, "openai")) == TEXT
    assert metrics.performance_metrics() == before


async def test_the_models_own_callbacks_and_settings_still_apply() -> None:
    """The checks read the model's public stream: its callbacks fire, disable_streaming is honoured, and a
    model that cannot stream answers in one piece, as LangChain's astream does."""
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel

    class Runs(BaseCallbackHandler):
        def __init__(self) -> None:
            self.events: list[str] = []

        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            self.events.append("start")

        def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
            self.events.append("end")

    runs = Runs()
    streaming = GenericFakeChatModel(messages=iter(["one two"]), callbacks=[runs])
    assert await collect(streaming) == "one two"
    assert runs.events == ["start", "end"]
    whole = FakeListChatModel(responses=["in one piece"], disable_streaming=True)
    assert await collect(whole) == "in one piece"
