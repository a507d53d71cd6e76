"""A plain OpenAI-compatible ``ProviderServer`` in a child process, shared by every arm of a benchmark.

The server runs in its own interpreter (so its work never shares the client's CPU) and answers every chat
request with the same short reply and usage. ``serve()`` yields its OpenAI base URL (``.../v1``) and stops
it on exit; ``requests()`` on the handle asks how many chat requests it has seen. ``temp_home`` makes a
temporary ``$HOME`` whose config file selects a model on that server, and ``env_for`` the environment a
child (a CLI run, a worker) gets with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPLY = "Paris is the capital of France."

_SERVER = """
import sys
from modelforge.testing import ProviderServer, Reply, Usage
server = ProviderServer().start()
server.default_reply = Reply(text=sys.argv[1], usage=Usage(14, 7))
print(server.openai_base_url, flush=True)
for line in sys.stdin:
    print(len(server.requests), flush=True)
server.stop()
"""


class Server:
    """The child's base URL and a way to ask it how many requests it saw."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None and child.stdin is not None
        self._child = child
        self.base_url = child.stdout.readline().strip()
        if not self.base_url:
            raise RuntimeError("the ProviderServer child did not start (see its stderr above)")

    def requests(self) -> int:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write("count\n")
        self._child.stdin.flush()
        return int(self._child.stdout.readline())


@contextmanager
def serve(reply: str = REPLY) -> Iterator[Server]:
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER, reply], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield Server(child)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


API_KEY = "sk-bench-not-a-secret"


@contextmanager
def temp_home(base_url: str) -> Iterator[Path]:
    """A fresh ``$HOME`` (removed on exit) whose ``~/.config/model-forge/config.json`` (the file both
    ModelForge and 2.3.0 read) selects ``openai/gpt-4o-mini`` on ``base_url``; the key is in ``env_for``'s
    environment."""
    with tempfile.TemporaryDirectory(prefix="mf-bench-home-") as name:
        home = Path(name)
        write_config(home, base_url)
        yield home


def write_config(home: Path, base_url: str) -> None:
    folder = home / ".config" / "model-forge"
    folder.mkdir(parents=True)
    config = {
        "providers": {
            "openai": {
                "llm_type": "openai_compatible",
                "base_url": base_url,
                "auth_strategy": "api_key",
                "models": {"gpt-4o-mini": {"api_model_name": "gpt-4o-mini"}},
            }
        },
        "current_model": {"provider": "openai", "model": "gpt-4o-mini"},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=4))


def env_for(home: Path) -> dict[str, str]:
    """The environment of a child that uses ``home``: no models.dev fetch (ours), no LiteLLM cost-map fetch,
    the API key, no performance stats saved, and the same network for every library: loopback goes
    direct, and anything else (2.3.0's models.dev lookup, say) fails at once through a closed proxy port,
    as it does on a machine without internet, so no side pays for a download the other skips."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        HOME=str(home),
        MODELFORGE_OFFLINE="1",
        MODELFORGE_STATS="0",
        MODELFORGE_OPENAI_API_KEY=API_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env
