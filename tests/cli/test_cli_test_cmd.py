"""``modelforge test`` against the OpenAI-protocol test server: prompt sources, output, telemetry, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelforge.testing import ProviderServer, Reply, Usage
from tests.cli.conftest import Invoke, assert_clean_failure, server_config

WriteConfig = Callable[[dict[str, Any]], Path]
ANSWER = "Forged in fire, the answer arrives."


@pytest.fixture
def ready(server: ProviderServer, write_config: WriteConfig) -> ProviderServer:
    write_config(server_config(server.openai_base_url))
    server.script(Reply(text=ANSWER, usage=Usage(11, 7)))
    return server


def _prompt_sent(server: ProviderServer) -> str:
    body = server.requests_for("openai")[-1].json
    return str(body["messages"][-1]["content"])


def _stdout_lines(result: Any) -> list[str]:
    return str(result.stdout).splitlines()


def test_status_exchange_and_telemetry_on_stdout_as_in_2_3_0(ready: ProviderServer, invoke: Invoke) -> None:
    """2.3.0 printed everything on stdout, so `modelforge test -p ... > log` and `| grep` see it all."""
    result = invoke("test", "-p", "Say something")

    assert result.exit_code == 0, result.output
    lines = _stdout_lines(result)
    assert "testsrv/mini" in lines[0]
    assert lines[1:4] == ["", "Q: Say something", f"A: {ANSWER}"]
    assert "Telemetry" in result.stdout and "Total tokens: 18" in result.stdout
    assert result.stderr == ""
    assert _prompt_sent(ready) == "Say something"
    assert ready.requests_for("openai")[-1].json["model"] == "gpt-4o-mini"


def test_stream_prints_the_answer(ready: ProviderServer, invoke: Invoke) -> None:
    result = invoke("test", "--prompt", "Stream it", "--stream")

    assert result.exit_code == 0, result.output
    assert _stdout_lines(result)[1:4] == ["", "Q: Stream it", f"A: {ANSWER}"]
    assert ready.requests_for("openai")[-1].json.get("stream") is True
    assert "Total tokens: 18" in result.stdout

    ready.script(Reply(text=ANSWER))
    quiet = invoke("test", "--prompt", "Stream it", "--stream", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == ANSWER  # piped: the answer's bytes alone, as 2.3.0


def test_an_empty_prompt_option_reads_stdin_as_2_3_0_did(ready: ProviderServer, invoke: Invoke) -> None:
    result = invoke("test", "-p", "", "--no-telemetry", input="  From stdin  \n")
    assert result.exit_code == 0, result.output
    assert _prompt_sent(ready) == "From stdin"


def test_a_long_prompt_is_cut_in_the_exchange(ready: ProviderServer, invoke: Invoke) -> None:
    prompt = "word " * 40
    result = invoke("test", "-p", prompt, "--no-telemetry")

    assert result.exit_code == 0, result.output
    question = _stdout_lines(result)[2]
    assert question.startswith("Q: word word") and question.endswith("...") and len(question) == 3 + 80
    assert _prompt_sent(ready) == prompt  # the whole prompt is sent


def test_quiet_prints_only_the_answer(ready: ProviderServer, invoke: Invoke) -> None:
    result = invoke("test", "-q", "-p", "Hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == ANSWER + "\n"
    assert result.stderr == ""


def test_no_telemetry_flag_and_setting(
    ready: ProviderServer, invoke: Invoke, write_config: WriteConfig
) -> None:
    result = invoke("test", "-p", "Hi", "--no-telemetry")
    assert result.exit_code == 0 and "Telemetry" not in result.output

    write_config(server_config(ready.openai_base_url, settings={"show_telemetry": False}))
    ready.script(Reply(text=ANSWER))
    result = invoke("test", "-p", "Hi")
    assert result.exit_code == 0 and "Telemetry" not in result.output
    assert _stdout_lines(result)[-1] == f"A: {ANSWER}"


def test_prompt_from_stdin(ready: ProviderServer, invoke: Invoke) -> None:
    result = invoke("test", "--no-telemetry", input="Piped question\n")
    assert result.exit_code == 0, result.output
    assert _prompt_sent(ready) == "Piped question"  # stripped, as 2.3.0 sent it
    assert _stdout_lines(result)[2:] == ["Q: Piped question", f"A: {ANSWER}"]


def test_input_and_output_files(ready: ProviderServer, invoke: Invoke, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("From a file", encoding="utf-8")
    out = tmp_path / "out" / "answer.txt"

    result = invoke("test", "-i", str(prompt), "-o", str(out), "--no-telemetry")

    assert result.exit_code == 0, result.output
    assert _prompt_sent(ready) == "From a file"
    assert out.read_text(encoding="utf-8") == ANSWER  # exactly the answer, as 2.3.0 wrote it
    assert ANSWER not in result.stdout and str(out) in result.stdout
    assert [p.name for p in out.parent.iterdir()] == ["answer.txt"]  # no temporary file left behind


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_stream_to_output_file_leaves_stdout_empty(
    quiet: list[str], ready: ProviderServer, invoke: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "answer.txt"

    result = invoke("test", "-p", "Stream it", "--stream", "-o", str(out), *quiet)

    assert result.exit_code == 0, result.output
    assert ready.requests_for("openai")[-1].json.get("stream") is True
    assert out.read_text(encoding="utf-8") == ANSWER  # exactly the answer, as 2.3.0 wrote it
    assert ANSWER not in result.stdout  # the answer goes only to the file
    assert result.stderr == ""
    if quiet:
        assert result.stdout == f"Answer written to {out}\n"  # as 2.3.0, even with --quiet
    else:
        assert str(out) in result.stdout and "Total tokens: 18" in result.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "fragments"),
    [
        (["-p", "   "], None, ["empty", "EMPTY_PROMPT"]),
        ([], "", ["stdin is empty", "-p"]),
        (["-i", "missing.txt"], None, ["missing.txt", "does not exist"]),
    ],
)
def test_bad_prompts_fail_cleanly(
    args: list[str], stdin: str | None, fragments: list[str], ready: ProviderServer, invoke: Invoke
) -> None:
    assert_clean_failure(invoke("test", *args, input=stdin), *fragments)
    assert ready.requests == []


def test_prompt_and_input_file_together_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x")
    result = invoke("test", "-p", "x", "-i", str(tmp_path / "p.txt"))
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_server_down_is_a_clean_network_error(invoke: Invoke, write_config: WriteConfig) -> None:
    write_config(server_config("http://127.0.0.1:9/v1"))

    result = invoke("test", "-p", "Hello")

    assert_clean_failure(result, "Connection failed", "NETWORK_CONNECTION_ERROR", "server is running")
    assert "A:" not in result.stdout  # only the status line, as in 2.3.0; the error is on stderr

    verbose = invoke("test", "-p", "Hello", "--verbose")
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr


def test_missing_key_and_missing_selection_fail_cleanly(invoke: Invoke, write_config: WriteConfig) -> None:
    config = server_config("https://api.openai.com/v1")
    config["providers"]["testsrv"]["auth_strategy"] = "api_key"
    write_config(config)
    assert_clean_failure(invoke("test", "-p", "Hi"), "INVALID_API_KEY", "auth login")

    config.pop("current_model")
    write_config(config)
    assert_clean_failure(invoke("test", "-p", "Hi"), "No model selected", "config use")


def test_a_2_3_0_config_with_auth_data_answers_unchanged(
    invoke: Invoke, write_config: WriteConfig, config_file: Path
) -> None:
    from tests.conftest import OPENAI_KEY
    from tests.core.test_registry import legacy_config

    with ProviderServer() as server:
        server.script(Reply(text="answered from a 2.3.0 config"))
        write_config(legacy_config(server.openai_base_url))
        before = config_file.read_text()
        result = invoke("test", "--prompt", "hello", "--no-telemetry")
        assert result.exit_code == 0, result.output
        assert "answered from a 2.3.0 config" in result.stdout
        assert server.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert OPENAI_KEY not in result.output
    assert config_file.read_text() == before


@pytest.mark.parametrize("spec", ["testsrv:big", "testsrv/big"])
def test_model_option_takes_provider_colon_model(
    server: ProviderServer, write_config: WriteConfig, invoke: Invoke, spec: str
) -> None:
    """``--model provider:model`` (LangChain's init_chat_model convention) or ``provider/model``."""
    data = server_config(server.openai_base_url)
    data["providers"]["testsrv"]["models"]["big"] = {"api_model_name": "gpt-4o"}
    write_config(data)
    server.script(Reply(text=ANSWER, usage=Usage(11, 7)))
    result = invoke("test", "-q", "-p", "hi", "--model", spec)
    assert result.exit_code == 0, result.output
    assert server.requests_for("openai")[-1].json["model"] == "gpt-4o"


def test_provider_colon_model_in_python(server: ProviderServer, write_config: WriteConfig) -> None:
    from modelforge import create_provider
    from modelforge.registry import ModelForgeRegistry

    data = server_config(server.openai_base_url)
    data["providers"]["testsrv"]["models"]["qwen3:1.7b"] = {"api_model_name": "qwen3:1.7b"}
    write_config(data)
    registry = ModelForgeRegistry()
    assert registry.get_llm("testsrv:mini").model_name == "gpt-4o-mini"
    assert registry.get_llm("testsrv/mini").model_name == "gpt-4o-mini"
    assert registry.get_llm("testsrv:qwen3:1.7b").model_name == "qwen3:1.7b"  # the model keeps its colon
    server.script(Reply(text="from create_provider"))
    assert create_provider("testsrv:mini").chat_sync("hi").text == "from create_provider"
