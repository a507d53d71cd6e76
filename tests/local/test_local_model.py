"""The real local model: SmolLM2-135M-Instruct served by llama.cpp, with no key and no network.

These tests start the real model server once for the module (about a second) and generate real tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelforge.local_model import LocalModelServer, default_model_path
from modelforge.registry import ModelForgeRegistry

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def local_server() -> Iterator[LocalModelServer]:
    server = LocalModelServer()
    yield server
    server.stop()


def test_the_model_file_ships_with_the_wheel() -> None:
    path = default_model_path()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000


def test_default_model_with_no_config_streams_real_tokens() -> None:
    registry = ModelForgeRegistry()
    llm = registry.get_llm()
    assert llm.provider_name == "local"  # type: ignore[attr-defined]
    pieces = [chunk.text for chunk in llm.stream("Name one colour.", max_tokens=24)]
    text = "".join(pieces)
    assert len([p for p in pieces if p]) >= 2, "the answer arrives in several pieces"
    assert text.strip(), "the model said something"


def test_invoke_reports_usage(local_server: LocalModelServer) -> None:
    from modelforge.config_schema import ModelConfig, ProviderConfig
    from modelforge.providers import ModelRequest
    from modelforge.providers.local import LocalFamily

    request = ModelRequest(
        provider_name="local",
        model_alias="smollm2",
        provider=ProviderConfig(llm_type="local", base_url=local_server.url() + "/v1"),
        model=ModelConfig(max_tokens=16),
    )
    message = LocalFamily().build(request).invoke("Say hello.")
    assert message.text.strip()
    assert message.usage_metadata is not None
    assert 0 < message.usage_metadata["output_tokens"] <= 16
    assert message.response_metadata["model_name"] == "smollm2"


def test_server_stops_and_its_port_closes(local_server: LocalModelServer) -> None:
    url = local_server.url()
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    local_server.stop()
    assert not local_server.running
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    # A parent killed without cleanup must not leave the model server running.
    script = (
        "import os, sys\n"
        "from modelforge.local_model import LocalModelServer\n"
        "s = LocalModelServer()\n"
        "print(s.url(), flush=True)\n"
        "print(s._process.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    url, pid = result.stdout.split()
    deadline = time.monotonic() + 30  # generous: CI machines can be loaded
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(int(pid), 9)
        pytest.fail("the model server outlived its parent")
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)


def test_first_run_cli_streams_from_the_local_model(isolated_home: Path) -> None:
    # What `make run` does on a fresh machine: no config, no key, no network.
    cli = Path(sys.executable).with_name("modelforge")
    result = subprocess.run(
        [str(cli), "test", "--stream", "--no-telemetry", "--prompt", "Name a fruit."],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": str(isolated_home)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an answer was printed"
    assert "Traceback" not in result.stderr
