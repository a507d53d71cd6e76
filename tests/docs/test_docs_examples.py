"""Every code example of the guides (``docs/**/*.md``) and of the README runs here, so a broken one fails CI.

The examples run as a reader would run them, against this suite's wire-protocol test server standing in for
the providers:

* ``python`` blocks run in order, one namespace per file (a later block uses what an earlier one defined),
  with top-level ``await`` allowed; one event loop per file runs the awaits;
* shell blocks (``bash``, ``sh``, ``console``, ``shell``) run line by line through bash, ``modelforge`` being
  the installed console script: a line must exit 0, or the code its trailing ``# exits N`` comment names;
  ``export NAME=value`` lines set the environment of the lines after them. Installation commands (``make``,
  ``pip``, ``uv``, ``pip-audit``, ``git``, ``python``, ``cd``) set up or check a machine and are not run
  here: the README's two commands are what CI itself runs;
* ``json`` and ``yaml`` blocks that are config files (``providers``, ``current_model`` or ``settings`` at
  the top) are validated as ModelForge validates a config file, policy sections included.

The reader's machine is simulated: a config file with the openai, anthropic, ollama, google, github_copilot
and local providers pointed at the test server (``gpt-4o-mini`` current), keys in the
``MODELFORGE_<PROVIDER>_API_KEY`` variables, ``MODELFORGE_<PROVIDER>_BASE_URL`` for models described in
code, and ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` for plain LangChain. A hidden ``docs-setup`` comment
right above a block may tell the server what to answer (see ``tests/docs/_markdown.py``).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelforge import config
from modelforge.config_schema import validate_config
from modelforge.testing import Disconnect, Fault, ProviderServer, Reply, ToolCall, Usage
from tests.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, GOOGLE_KEY, OPENAI_KEY
from tests.docs._markdown import Example, examples
from tests.providers.conftest import provider_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# docs/api/ is the generated reference (signatures, not examples): tests/docs/test_api_reference.py checks it.
DOC_FILES = sorted(p for p in DOCS.rglob("*.md") if "api" not in p.relative_to(DOCS).parts)
PAGES = [*DOC_FILES, ROOT / "README.md"]

PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "console", "shell"}
CONFIG = {"json", "yaml", "yml"}
# Commands that set up a machine (the README's two commands, installs): not run by the docs tests.
SETUP_COMMANDS = {"make", "pip", "pip3", "git", "python", "python3", "cd", "uv", "pipx", "pip-audit"}
CONFIG_KEYS = {"providers", "current_model", "settings"}
_EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")


def docs_config(server: ProviderServer) -> dict[str, Any]:
    """The reader's config file: every provider family pointed at ``server``, with the default policies."""
    data = provider_config(server)
    for section in data["providers"].values():
        section.pop("retry", None)  # the suite's own config turns retries off; a reader's does not
    data["providers"]["openai"]["models"]["gpt-4o"] = {}
    data["providers"]["anthropic"]["models"]["claude-haiku-4-5"] = {}
    return data


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """A reader's machine: the config file, keys and endpoints in the environment, the server running."""
    with ProviderServer() as server:
        config.GLOBAL_CONFIG_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.GLOBAL_CONFIG_FILE.write_text(json.dumps(docs_config(server), indent=4))
        env = {
            "MODELFORGE_OPENAI_API_KEY": OPENAI_KEY,
            "MODELFORGE_ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "MODELFORGE_GOOGLE_API_KEY": GOOGLE_KEY,
            "MODELFORGE_GITHUB_COPILOT_ACCESS_TOKEN": GITHUB_TOKEN,
            "MODELFORGE_OPENAI_BASE_URL": server.openai_base_url,
            "MODELFORGE_ANTHROPIC_BASE_URL": server.anthropic_base_url,
            "MODELFORGE_OLLAMA_BASE_URL": server.ollama_base_url,
            "MODELFORGE_GOOGLE_BASE_URL": server.gemini_base_url,
            "MODELFORGE_LOCAL_BASE_URL": server.openai_base_url,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": server.openai_base_url,
            "OLLAMA_HOST": server.ollama_base_url,
            "MODELFORGE_OFFLINE": "1",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_of_the_page_runs(page: Path, reader: ProviderServer) -> None:
    namespace: dict[str, Any] = {
        "__name__": "__docs__",
        "server": reader,
        "Reply": Reply,
        "Fault": Fault,
        "Disconnect": Disconnect,
        "ToolCall": ToolCall,
        "Usage": Usage,
    }
    shell_env = dict(os.environ)
    shell_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{shell_env.get('PATH', '')}"
    loop = asyncio.new_event_loop()
    try:
        for example in examples(page):
            if example.setup:
                _run_python(example, example.setup, namespace, loop, what="docs-setup")
            if example.language in PYTHON:
                _run_python(example, example.source, namespace, loop, what="example")
            elif example.language in SHELL:
                _run_shell(example, shell_env)
            elif example.language in CONFIG:
                _check_config(example)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def test_the_guides_exist() -> None:
    names = {p.name for p in DOC_FILES}
    assert DOC_FILES, "docs/ has no guides"
    assert "index.md" in names or "README.md" in names, names


def _run_python(
    example: Example, source: str, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop, *, what: str
) -> None:
    filename = f"<{example.where} {what}>"
    try:
        code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as err:
        pytest.fail(f"{example.where}: the {what} is not valid Python: {err}")
    try:
        result = eval(code, namespace)  # the docs' own examples, run on purpose
        if asyncio.iscoroutine(result):
            loop.run_until_complete(result)
    except Exception:
        pytest.fail(f"{example.where}: the {what} failed:\n{_excerpt(source)}\n{traceback.format_exc()}")


def _run_shell(example: Example, env: dict[str, str]) -> None:
    for command in _commands(example.source):
        expected = 0
        match = _EXITS.search(command)
        if match:
            expected = int(match[1])
        words = shlex.split(command, comments=True)
        if not words:
            continue
        if words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                env[name] = os.path.expandvars(value)
            continue
        if words[0] in SETUP_COMMANDS:
            continue
        done = subprocess.run(
            ["bash", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == expected, (
            f"{example.where}: `{command}` exited {done.returncode}, not {expected}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )


def _commands(source: str) -> list[str]:
    """The block's command lines: ``$ `` prompts removed, ``\\`` continuations joined, output dropped."""
    lines = source.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    commands: list[str] = []
    pending = ""
    for line in lines:
        if prompted and not pending:
            if not line.startswith("$ "):
                continue  # the output shown after a prompt line
            line = line[2:]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append((pending + line).strip())
        pending = ""
    return [c for c in commands if c and not c.startswith("#")]


def _check_config(example: Example) -> None:
    try:
        data = json.loads(example.source) if example.language == "json" else yaml.safe_load(example.source)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        pytest.fail(f"{example.where}: the {example.language} block does not parse: {err}")
    if isinstance(data, dict) and set(data) & CONFIG_KEYS:  # a config file: a misspelt key fails too
        try:
            validate_config(data)
        except Exception as err:
            pytest.fail(f"{example.where}: the config example is not valid: {err}")


def _excerpt(source: str) -> str:
    return "\n".join(f"    {n:>3} | {line}" for n, line in enumerate(source.splitlines(), 1))
