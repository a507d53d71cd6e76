"""Who gets which event: on_<kind> objects and functions, plain callables, mappings; bad callbacks rejected
up front; a failing or async callback never breaks the call; the logger's lines (levels, no secrets)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from modelforge.exceptions import InvalidInputError
from modelforge.observability import EVENT_KINDS, ProviderCallbacks, ProviderEvent, observe
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import Fault, ProviderServer, Reply, Usage
from tests.conftest import OPENAI_KEY


def model(registry: ModelForgeRegistry, **settings: Any) -> Any:
    return observe(
        registry.get_llm("openai", "gpt-4o-mini"),
        provider="openai",
        model="gpt-4o-mini",
        tracing=False,
        **settings,
    )


def test_functions_named_on_kind_get_only_their_kind(registry: ModelForgeRegistry) -> None:
    seen: list[tuple[str, str]] = []

    def on_request(event: ProviderEvent) -> None:
        seen.append(("on_request", event.kind))

    def on_response(event: ProviderEvent) -> None:
        seen.append(("on_response", event.kind))

    def on_error(event: ProviderEvent) -> None:
        seen.append(("on_error", event.kind))

    def everything(event: ProviderEvent) -> None:
        seen.append(("everything", event.kind))

    model(registry, callbacks=[on_request, on_response, on_error, everything]).invoke("hi")
    assert seen == [
        ("on_request", "request"),
        ("everything", "request"),
        ("on_response", "response"),
        ("everything", "response"),
    ]


def test_objects_with_on_kind_methods_and_mappings(
    server: ProviderServer, registry: ModelForgeRegistry
) -> None:
    class Mine(ProviderCallbacks):
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def on_retry(self, event: ProviderEvent) -> None:
            self.kinds.append(event.kind)

        def on_response(self, event: ProviderEvent) -> None:
            self.kinds.append(event.kind)

    class OnlyErrors:  # any object with on_<kind> methods, no base class needed
        def __init__(self) -> None:
            self.count = 0

        def on_error(self, event: ProviderEvent) -> None:
            self.count += 1

    mine, errors = Mine(), OnlyErrors()
    mapped: list[ProviderEvent] = []
    llm = model(registry, callbacks=[mine, errors, {"request": mapped.append}])
    server.script(Fault(status=503), Reply(text="ok"))
    llm.invoke("hi")
    assert mine.kinds == ["retry", "response"]
    assert errors.count == 0
    assert [event.kind for event in mapped] == ["request"]


def test_a_single_mapping_is_accepted(registry: ModelForgeRegistry) -> None:
    got: list[ProviderEvent] = []
    model(registry, callbacks={"response": got.append}).invoke("hi")
    assert [event.kind for event in got] == ["response"]


@pytest.mark.parametrize(
    ("callbacks", "named"),
    [
        ({"responses": print}, "'responses'"),
        ({"error": "not callable"}, "'error'"),
        (["not callable"], "str"),
        ([42], "int"),
        ([ProviderCallbacks], "ProviderCallbacks"),
    ],
)
def test_bad_callbacks_are_refused_naming_the_kinds(
    registry: ModelForgeRegistry, callbacks: Any, named: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        model(registry, callbacks=callbacks)
    assert named in str(raised.value)
    assert raised.value.suggestion is not None
    assert all(kind in raised.value.suggestion for kind in EVENT_KINDS)


def test_a_failing_callback_is_logged_and_the_call_goes_on(
    registry: ModelForgeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    later: list[str] = []

    def on_request(event: ProviderEvent) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.WARNING, logger="modelforge.observability"):
        answer = model(registry, callbacks=[on_request, lambda event: later.append(event.kind)]).invoke("hi")
    assert answer.content
    assert later == ["request", "response"]
    warning = next(record for record in caplog.records if "callback bug" in record.getMessage())
    assert "on_request" in warning.getMessage() and warning.levelno == logging.WARNING


async def test_async_callbacks_are_awaited_on_the_running_loop(registry: ModelForgeRegistry) -> None:
    got: list[str] = []
    done = asyncio.Event()

    async def on_response(event: ProviderEvent) -> None:
        await asyncio.sleep(0)
        got.append(event.kind)
        done.set()

    async def broken(event: ProviderEvent) -> None:
        raise ValueError("async callback bug")

    await model(registry, callbacks=[on_response, broken]).ainvoke("hi")
    await asyncio.wait_for(done.wait(), timeout=5)
    assert got == ["response"]


def test_async_callbacks_run_to_completion_in_sync_calls(registry: ModelForgeRegistry) -> None:
    got: list[str] = []

    async def on_request(event: ProviderEvent) -> None:
        await asyncio.sleep(0)
        got.append(event.kind)

    model(registry, callbacks=[on_request]).invoke("hi")
    assert got == ["request"]


def test_logger_gets_one_line_per_event_without_secrets_or_prompts(
    server: ProviderServer, registry: ModelForgeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    user_logger = logging.getLogger("my_app.llm")
    llm = model(registry, logger=user_logger)
    server.script(Fault(status=503), Reply(text="ok", usage=Usage(10, 5)))
    server.script(Fault(status=401, message=f"Incorrect API key provided: {OPENAI_KEY}"))
    with caplog.at_level(logging.DEBUG, logger="my_app.llm"):
        llm.invoke("my secret prompt")
        with pytest.raises(Exception):  # noqa: B017 - the 401 error itself is not what is tested
            llm.invoke("another prompt")
    lines = [
        (record.levelname, record.getMessage()) for record in caplog.records if record.name == "my_app.llm"
    ]
    assert [level for level, _ in lines] == ["DEBUG", "WARNING", "INFO", "DEBUG", "ERROR"]
    text = "\n".join(message for _, message in lines)
    assert OPENAI_KEY not in text and "prompt" not in text
    assert (
        "openai/gpt-4o-mini" in lines[2][1] and "10 in / 5 out tokens" in lines[2][1] and "$" in lines[2][1]
    )
    assert "HTTP 503" in lines[1][1]


def test_a_logger_adapter_adds_its_context_and_a_quiet_logger_gets_nothing(
    server: ProviderServer, registry: ModelForgeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Events are logged without logging's stack search (a plain Logger), but an adapter still runs its
    process() and a logger set above a level gets no record of it."""
    adapter = logging.LoggerAdapter(logging.getLogger("my_app.adapted"), {"tenant": "acme"})
    quiet = logging.getLogger("my_app.quiet")
    quiet.setLevel(logging.WARNING)
    server.script(Reply(text="ok", usage=Usage(10, 5)), Reply(text="ok", usage=Usage(10, 5)))
    with caplog.at_level(logging.DEBUG, logger="my_app.adapted"):
        model(registry, logger=adapter).invoke("hi")
        model(registry, logger=quiet).invoke("hi")
    adapted = [record for record in caplog.records if record.name == "my_app.adapted"]
    assert [record.levelname for record in adapted] == ["DEBUG", "INFO"]
    assert all(getattr(record, "tenant", None) == "acme" for record in adapted)
    assert not [record for record in caplog.records if record.name == "my_app.quiet"]
    plain = logging.getLogger("my_app.plain")
    with caplog.at_level(logging.INFO, logger="my_app.plain"):
        server.script(Reply(text="ok", usage=Usage(10, 5)))
        model(registry, logger=plain).invoke("hi")
    (record,) = [record for record in caplog.records if record.name == "my_app.plain"]
    assert record.levelname == "INFO" and "10 in / 5 out tokens" in record.getMessage()
    assert record.pathname.endswith("_events.py") and record.funcName == "_log_event"


def test_a_logger_subclass_logs_through_its_own_log_method(
    server: ProviderServer, registry: ModelForgeRegistry
) -> None:
    """A Logger subclass may add context in _log; the fast path must not bypass it."""

    class TenantLogger(logging.Logger):
        def _log(self, level: int, msg: object, args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            kwargs["extra"] = {"tenant": "acme"}
            super()._log(level, msg, args, **kwargs)

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    tenant_logger = TenantLogger("my_app.tenant", logging.INFO)
    tenant_logger.addHandler(Keep())
    server.script(Reply(text="ok", usage=Usage(10, 5)))
    model(registry, logger=tenant_logger).invoke("hi")
    assert [record.levelname for record in records] == ["INFO"]
    assert getattr(records[0], "tenant", None) == "acme"
