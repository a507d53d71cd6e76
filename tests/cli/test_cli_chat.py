"""``modelforge chat``: the real console script in a pseudo-terminal, talking over HTTP to the test server.

Each pty test spawns ``<venv>/bin/modelforge chat`` with pexpect; HOME is the test's isolated home, whose
config points the ``openai`` provider at the in-process ``ProviderServer`` (it runs in a thread of this
process, the child reaches it over loopback HTTP). The server answers by content (``responder``) and
records every request (``requests``), which shows what the chat remembered. Piped stdin is driven
in-process with click's runner (stdin is then not a terminal).
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from modelforge.catalog import Catalog
from modelforge.cli._chat_session import INTERRUPTED_MARK
from modelforge.testing import Fault, ProviderServer, RecordedRequest, Reply, Usage
from tests.cli.conftest import Invoke, assert_clean_failure
from tests.conftest import OPENAI_KEY
from tests.providers.conftest import openai_section

WriteConfig = Callable[[dict[str, Any]], Path]
MODELFORGE = Path(sys.executable).parent / "modelforge"
PROMPT = "you> "
M = 1_000_000


def chat_config(server: ProviderServer) -> dict[str, Any]:
    """``openai`` with two priced models, and ``proxy`` with a model the catalogue does not know."""
    no_retry = {"max_attempts": 1}
    return {
        "providers": {
            "openai": openai_section(
                server,
                retry=no_retry,
                models={
                    "gpt-4o-mini": {"api_model_name": "gpt-4o-mini"},
                    "nano": {"api_model_name": "gpt-4.1-nano"},
                },
            ),
            "proxy": {
                "llm_type": "openai_compatible",
                "base_url": server.openai_base_url,
                "retry": no_retry,
                "models": {"house": {"api_model_name": "house-model-x"}},
            },
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }


def count_messages(request: RecordedRequest) -> Reply:
    """Answers with how many messages the request carried (proves the memory) and a fixed usage."""
    return Reply(text=f"I see {len(request.json['messages'])} messages.", usage=Usage(1200, 300))


@pytest.fixture
def chat_server(
    server: ProviderServer, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> ProviderServer:
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", OPENAI_KEY)
    write_config(chat_config(server))
    server.responder = count_messages
    return server


def _terminal_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture
def spawn(chat_server: ProviderServer) -> Iterator[Callable[..., pexpect.spawn]]:
    """Start ``modelforge chat ARGS...`` in a pseudo-terminal (wide, so rich tables do not wrap)."""
    children: list[pexpect.spawn] = []
    transcript = io.StringIO()

    def start(*args: str) -> pexpect.spawn:
        child = pexpect.spawn(
            str(MODELFORGE),
            ["chat", *args],
            env=dict(os.environ),
            encoding="utf-8",
            timeout=15,
            dimensions=(40, 200),
            # A test run started in the background (`nohup cmd &`) ignores SIGINT and SIGHUP, and so would
            # the chat: give it the dispositions a terminal user's shell gives it.
            preexec_fn=_terminal_signals,
        )
        child.logfile_read = transcript
        children.append(child)
        child.expect_exact(PROMPT)
        return child

    yield start
    for child in children:
        if child.isalive():
            child.terminate(force=True)
    assert OPENAI_KEY not in transcript.getvalue()  # the child's terminal output never shows the key


def say(child: pexpect.spawn, line: str) -> None:
    child.sendline(line)


def sent_messages(server: ProviderServer, index: int = -1) -> list[tuple[str, str]]:
    """``(role, content)`` of each message of a chat request."""
    body = server.requests_for("openai")[index].json
    return [(m["role"], m["content"]) for m in body["messages"]]


def finish(child: pexpect.spawn) -> None:
    """Ctrl-D; the chat ends with exit code 0 after its cost summary."""
    child.sendeof()
    child.expect("Session cost|No calls were made")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def price(model: str, input_tokens: int, output_tokens: int) -> str:
    info = Catalog.bundled().model("openai", model)
    assert info is not None and info.input_per_1m is not None and info.output_per_1m is not None
    return f"${(input_tokens * info.input_per_1m + output_tokens * info.output_per_1m) / M:.6f}"


# --- memory, cost, reset, model ------------------------------------------------------------------------


def test_each_turn_sends_the_whole_conversation(spawn: Any, chat_server: ProviderServer) -> None:
    child = spawn()
    say(child, "Hello there")
    child.expect_exact("I see 1 messages.")
    child.expect_exact(PROMPT)
    say(child, "")  # empty lines are ignored
    say(child, "And again")
    child.expect_exact("I see 3 messages.")
    child.expect_exact(PROMPT)

    assert sent_messages(chat_server) == [
        ("user", "Hello there"),
        ("assistant", "I see 1 messages."),
        ("user", "And again"),
    ]
    assert len(chat_server.requests_for("openai")) == 2
    assert chat_server.requests_for("openai")[-1].json["stream"] is True
    finish(child)


def test_cost_shows_the_catalogue_price_of_the_tokens_used(spawn: Any) -> None:
    child = spawn()
    for line in ("one", "two"):
        say(child, line)
        child.expect_exact("messages.")
        child.expect_exact(PROMPT)
    say(child, "/cost")
    child.expect_exact("openai/gpt-4o-mini")
    child.expect(r"2\s*\W\s*2,400\s*\W\s*600\s*\W\s*" + price("gpt-4o-mini", 2400, 600).replace("$", r"\$"))
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect_exact(f"Session cost: {price('gpt-4o-mini', 2400, 600)} over 2 call(s)")
    child.expect(pexpect.EOF)


def test_a_model_without_catalogue_price_shows_unknown_price(spawn: Any) -> None:
    child = spawn("--model", "house", "--provider", "proxy")
    say(child, "hi")
    child.expect_exact("I see 1 messages.")
    child.expect_exact(PROMPT)
    say(child, "/cost")
    child.expect_exact("proxy/house")
    child.expect_exact("unknown price")
    child.expect_exact(PROMPT)
    finish(child)


def test_reset_forgets_the_turns_but_keeps_the_system_prompt_and_the_cost(
    spawn: Any, chat_server: ProviderServer
) -> None:
    child = spawn("--system", "Be brief.")
    say(child, "first question")
    child.expect_exact("I see 2 messages.")
    child.expect_exact(PROMPT)
    say(child, "/reset")
    child.expect_exact("The cost so far stays: " + price("gpt-4o-mini", 1200, 300))
    child.expect_exact(PROMPT)
    say(child, "second question")
    child.expect_exact("I see 2 messages.")
    child.expect_exact(PROMPT)

    assert sent_messages(chat_server) == [("system", "Be brief."), ("user", "second question")]
    child.sendeof()
    child.expect_exact(f"Session cost: {price('gpt-4o-mini', 2400, 600)} over 2 call(s)")
    child.expect(pexpect.EOF)


def test_model_switch_keeps_the_conversation_and_an_unknown_model_changes_nothing(
    spawn: Any, chat_server: ProviderServer
) -> None:
    child = spawn()
    say(child, "/model")
    child.expect_exact("Current model: openai/gpt-4o-mini")
    say(child, "remember me")
    child.expect_exact("I see 1 messages.")
    child.expect_exact(PROMPT)

    say(child, "/model openai/nope")
    child.expect_exact("Model 'nope' not found for provider 'openai'")
    child.expect_exact("Still chatting with openai/gpt-4o-mini")
    child.expect_exact(PROMPT)
    say(child, "/model missing")
    child.expect_exact("Model 'missing' not found")
    child.expect_exact(PROMPT)
    say(child, "/frobnicate")
    child.expect_exact("Unknown command /frobnicate")
    child.expect_exact("/cost, /reset, /model, /help, /exit, /quit")
    child.expect_exact(PROMPT)

    say(child, "/model nano")
    child.expect_exact("Now chatting with openai/nano (gpt-4.1-nano)")
    child.expect_exact(PROMPT)
    say(child, "still there?")
    child.expect_exact("I see 3 messages.")
    child.expect_exact(PROMPT)

    requests = chat_server.requests_for("openai")
    assert len(requests) == 2  # the failed switches sent nothing
    assert [r.json["model"] for r in requests] == ["gpt-4o-mini", "gpt-4.1-nano"]
    assert sent_messages(chat_server)[0] == ("user", "remember me")

    say(child, "/cost")  # each model priced at its own catalogue price
    child.expect_exact(price("gpt-4o-mini", 1200, 300))
    child.expect_exact(price("gpt-4.1-nano", 1200, 300))
    child.expect_exact(PROMPT)
    say(child, "/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


# --- interruptions and failures -------------------------------------------------------------------------


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(spawn: Any, chat_server: ProviderServer) -> None:
    words = [f"word{i} " for i in range(40)]
    chat_server.script(Reply(text="".join(words), chunks=words, chunk_delay=0.25, usage=Usage(1200, 300)))
    child = spawn()
    say(child, "tell me a long story")
    child.expect_exact("word1 ")
    child.sendintr()
    child.expect_exact("Answer interrupted")
    child.expect_exact(PROMPT)
    say(child, "short one please")
    child.expect_exact("I see 3 messages.")
    child.expect_exact(PROMPT)

    (user, story), assistant, last = sent_messages(chat_server)
    assert (user, story) == ("user", "tell me a long story")
    assert assistant[0] == "assistant"
    assert assistant[1].startswith("word0 word1") and assistant[1].endswith(INTERRUPTED_MARK)
    assert "word39" not in assistant[1]
    assert last == ("user", "short one please")

    say(child, "/cost")  # the stopped answer is counted too
    child.expect(r"openai/gpt-4o-mini\s*\W\s*2\s")
    child.expect_exact(PROMPT)
    child.sendintr()  # Ctrl-C at the prompt leaves like /exit
    child.expect_exact("Session cost")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_provider_error_is_shown_and_the_failed_message_is_not_kept(
    spawn: Any, chat_server: ProviderServer
) -> None:
    child = spawn()
    say(child, "first")
    child.expect_exact("I see 1 messages.")
    child.expect_exact(PROMPT)
    chat_server.script(Fault(status=400, message="This request is malformed somehow"))
    say(child, "this one fails")
    child.expect_exact("Error")
    child.expect_exact("This request is malformed somehow")
    child.expect_exact(PROMPT)
    say(child, "after the error")
    child.expect_exact("I see 3 messages.")
    child.expect_exact(PROMPT)

    assert sent_messages(chat_server) == [
        ("user", "first"),
        ("assistant", "I see 1 messages."),
        ("user", "after the error"),
    ]
    finish(child)


def test_no_stream_prints_whole_answers(spawn: Any, chat_server: ProviderServer) -> None:
    child = spawn("--no-stream")
    say(child, "hi")
    child.expect_exact("I see 1 messages.")
    child.expect_exact(PROMPT)
    assert not chat_server.requests_for("openai")[-1].json.get("stream")
    finish(child)


# --- piped stdin and start-up errors --------------------------------------------------------------------


def test_piped_stdin_reads_lines_until_the_end(chat_server: ProviderServer, invoke: Invoke) -> None:
    result = invoke("chat", input="Hello\n\n/cost\nAgain\n")

    assert result.exit_code == 0, result.output
    assert PROMPT not in result.output
    assert result.stdout.startswith("I see 1 messages.\n")
    assert result.stdout.endswith("I see 3 messages.\n")
    assert "openai/gpt-4o-mini" in result.stdout and price("gpt-4o-mini", 1200, 300) in result.stdout
    assert f"Session cost: {price('gpt-4o-mini', 2400, 600)} over 2 call(s)" in result.stderr
    assert len(chat_server.requests_for("openai")) == 2


def test_piped_stdin_with_a_failed_line_exits_non_zero(chat_server: ProviderServer, invoke: Invoke) -> None:
    chat_server.script(Fault(status=400, message="Bad line"))
    result = invoke("chat", input="broken\nfine\n")

    assert result.exit_code == 1
    assert "Bad line" in result.stderr
    assert result.stdout == "I see 1 messages.\n"  # the failed line left nothing in the memory


def test_unknown_provider_at_start_is_a_one_line_error(chat_server: ProviderServer, invoke: Invoke) -> None:
    result = invoke("chat", "--provider", "nowhere", input="hi\n")
    assert_clean_failure(result, "nowhere", "not configured")
    assert not chat_server.requests


def test_no_model_selected_at_start_is_a_one_line_error(
    chat_server: ProviderServer, invoke: Invoke, write_config: WriteConfig
) -> None:
    config = chat_config(chat_server)
    del config["current_model"]
    write_config(config)
    result = invoke("chat", input="hi\n")
    assert_clean_failure(result, "No model selected")
