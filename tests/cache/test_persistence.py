"""Where answers live: the SQLite file (owner-only, under ``~/.cache/model-forge/``, surviving registries and
processes), Redis shared by two processes, and no secret or prompt in either (keys are hashes, values are
answers)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from modelforge.cache import cache_of, close_caches, default_sqlite_path
from modelforge.registry import ModelForgeRegistry
from modelforge.testing import ProviderServer, Reply
from tests.cache.conftest import (
    REDIS_URL,
    ask,
    marker,
    redis_values,
    requests_to,
    stream_chunks,
    write_config,
)
from tests.conftest import TEST_SECRETS

PROMPT = "What is the secret ingredient of the soup of the day?"

# A second process: builds the model from the same global config (same HOME, same environment), answers
# each prompt given on the command line, and prints what it saw.
_CHILD = textwrap.dedent(
    """
    import json, sys
    from modelforge.registry import ModelForgeRegistry

    llm = ModelForgeRegistry().get_llm()
    seen = []
    for prompt in sys.argv[1:]:
        answer = llm.invoke(prompt)
        seen.append({"content": answer.content, "cache": answer.response_metadata.get("modelforge_cache")})
    stats = llm.cache_stats
    print(json.dumps({"answers": seen, "hits": stats.hits, "stores": stats.stores}))
    """
)


def run_child(*prompts: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *prompts],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def files_of(path: Path) -> bytes:
    """The bytes of an SQLite database and its -wal / -shm files."""
    return b"".join(file.read_bytes() for file in path.parent.iterdir() if file.name.startswith(path.name))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_sqlite_default_file_is_private_and_outlives_registries(
    server: ProviderServer, keys: None
) -> None:
    write_config(server, {"backend": "sqlite"})
    server.script(Reply(text="Basil."), Reply(text="Something else"))
    llm = ModelForgeRegistry().get_llm()
    assert cache_of(llm) is not None
    await ask(llm, PROMPT, "async")
    path = default_sqlite_path()
    assert path.is_relative_to(Path.home() / ".cache" / "model-forge")
    assert mode_of(path.parent) == 0o700
    for file in path.parent.iterdir():  # the database and SQLite's -wal / -shm files
        assert mode_of(file) == 0o600, file.name
    close_caches()  # nothing of this process's cache objects is left: the file alone answers

    again = ModelForgeRegistry().get_llm()
    answer = await ask(again, PROMPT, "sync")
    assert (answer.content, marker(answer)) == ("Basil.", "hit")
    assert requests_to(server) == 1
    # A new process reads the same file.
    assert run_child(PROMPT)["answers"] == [{"content": "Basil.", "cache": "hit"}]
    assert requests_to(server) == 1


async def test_sqlite_directory_is_made_private_when_it_exists_open(
    server: ProviderServer, keys: None
) -> None:
    path = default_sqlite_path()
    path.parent.mkdir(parents=True, mode=0o755)
    os.chmod(path.parent, 0o755)
    write_config(server, {"backend": "sqlite"})
    await ask(ModelForgeRegistry().get_llm(), PROMPT, "async")
    assert mode_of(path.parent) == 0o700
    assert mode_of(path) == 0o600


async def test_no_secret_or_prompt_in_the_sqlite_file(
    server: ProviderServer, keys: None, tmp_path: Path
) -> None:
    path = tmp_path / "answers.sqlite3"
    write_config(server, {"backend": "sqlite", "path": str(path)})
    llm = ModelForgeRegistry().get_llm()
    await ask(llm, PROMPT, "async")
    await stream_chunks(llm, PROMPT + " (streamed)", "async")
    close_caches()
    stored = files_of(path)
    assert b"Hello from the ModelForge test server." in stored  # the answers are there...
    for secret in TEST_SECRETS:
        assert secret.encode() not in stored  # ...no credential...
    assert PROMPT.encode() not in stored  # ...and no prompt (keys are hashes)
    assert b"127.0.0.1" not in stored  # nor where the provider is


async def test_two_processes_share_the_redis_cache(
    server: ProviderServer, keys: None, redis_namespace: str
) -> None:
    write_config(server, {"backend": "redis", "url": REDIS_URL, "namespace": redis_namespace, "ttl": 300})
    server.default_reply = Reply(text="Answered once, for everyone.")
    llm = ModelForgeRegistry().get_llm()
    await ask(llm, PROMPT, "async")
    # The other process finds this process's answer, and stores one of its own ...
    child = await asyncio.to_thread(run_child, PROMPT, "A question first asked elsewhere")
    assert child["answers"] == [
        {"content": "Answered once, for everyone.", "cache": "hit"},
        {"content": "Answered once, for everyone.", "cache": None},
    ]
    assert (child["hits"], child["stores"]) == (1, 1)
    assert requests_to(server) == 2
    # ... which this process then reads.
    answer = await ask(llm, "A question first asked elsewhere", "sync")
    assert marker(answer) == "hit"
    assert requests_to(server) == 2

    values = redis_values(redis_namespace)
    assert len(values) == 2
    for value in values:
        for secret in TEST_SECRETS:
            assert secret.encode() not in value
        assert PROMPT.encode() not in value


async def test_redis_entries_expire_on_the_server(
    server: ProviderServer, keys: None, redis_namespace: str
) -> None:
    from tests.cache.conftest import redis_client

    write_config(
        server,
        {
            "backend": "redis",
            "url": REDIS_URL,
            "namespace": redis_namespace,
            "ttl": 300,
            "serve_stale": True,
            "stale_ttl": 600,
        },
    )
    await ask(ModelForgeRegistry().get_llm(), PROMPT, "async")
    client = redis_client()
    try:
        (name,) = list(client.scan_iter(match=f"{redis_namespace}:*"))
        assert 890_000 < client.pttl(name) <= 900_000  # ttl + stale_ttl, in milliseconds
    finally:
        client.close()
