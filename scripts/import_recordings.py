"""Extract real provider responses from the HTTP cassettes in a LangChain partner package's sdist.

Run: ``.venv/bin/python scripts/import_recordings.py langchain-openai==1.8.1 langchain-anthropic==1.7.10``
(downloads each source distribution from PyPI with pip, then reads its ``tests/cassettes/*.yaml.gz``).

The cassettes are VCR recordings of the packages' integration tests against the real OpenAI and Anthropic
APIs (YAML, bodies as base64, headers and URLs redacted). For every recorded chat answer (a Chat
Completions, Responses API or Anthropic Messages body, JSON or a server-sent event stream) this writes
one JSON line to ``tests/recordings/<package>-<version>.jsonl.gz``::

    {"cassette": "test_codex_stream.yaml.gz", "index": 0, "kind": "responses-sse", "model": "gpt-5.5",
     "stream": true, "request_keys": ["input", "model", ...], "status": 200, "body": "event: ..."}

``model``, ``stream`` and ``request_keys`` (the request body's top-level field names, e.g.
``context_management`` for an Anthropic beta feature) come from the recorded request (the rest of it,
prompts and images, is left out); ``body`` is the response body exactly as recorded. Other interactions
(embeddings, file downloads, LangSmith) are skipped. The files are written reproducibly (no gzip
timestamp), so importing the same release again changes nothing. ``tests/README.md`` says where each
file came from; the packages are MIT-licensed (``tests/recordings/LICENSE-langchain``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "tests" / "recordings"


def kind_of(body: str) -> str | None:
    """Which wire format a recorded response body is, or None for one that is not a chat answer."""
    head = body.lstrip()[:400]
    if head.startswith("event: response.") or head.startswith('data: {"type":"response.'):
        return "responses-sse"
    if head.startswith("event: message_start") or head.startswith("event: ping"):
        return "anthropic-sse"
    if head.startswith("data: {") and '"chat.completion.chunk"' in head:
        return "chat-sse"
    if not head.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("object") == "response":
        return "responses-json"
    if data.get("object") == "chat.completion":
        return "chat-json"
    if data.get("type") == "message" and data.get("role") == "assistant":
        return "anthropic-json"
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")  # binary bodies (images, PDFs) are skipped anyway
    return str(value or "")


def _interactions(data: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    if isinstance(data, dict) and "interactions" in data:
        for item in data["interactions"]:
            yield item["request"], item["response"]
    elif isinstance(data, dict):
        yield from zip(data.get("requests") or [], data.get("responses") or [], strict=False)


def _request_fields(request: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(_text(request.get("body")))
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return {"model": body.get("model"), "stream": bool(body.get("stream")), "request_keys": sorted(body)}


def recordings(sdist: Path) -> Iterator[dict[str, Any]]:
    with tarfile.open(sdist) as archive:
        members = sorted(
            (
                m
                for m in archive.getmembers()
                if "/tests/cassettes/" in m.name and m.name.endswith(".yaml.gz")
            ),
            key=lambda m: m.name,
        )
        for member in members:
            handle = archive.extractfile(member)
            assert handle is not None
            data = yaml.safe_load(io.TextIOWrapper(gzip.GzipFile(fileobj=handle), encoding="utf-8"))
            for index, (request, response) in enumerate(_interactions(data)):
                body = _text((response.get("body") or {}).get("string"))
                kind = kind_of(body)
                if kind is None:
                    continue
                yield {
                    "cassette": member.name.rsplit("/", 1)[-1],
                    "index": index,
                    "kind": kind,
                    **_request_fields(request),
                    "status": int((response.get("status") or {}).get("code") or 200),
                    "body": body,
                }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", help="name==version of each LangChain partner package")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for spec in args.packages:
            name, _, version = spec.partition("==")
            download = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
            ]
            subprocess.run([*download, "--dest", folder, spec], check=True)
            (sdist,) = Path(folder).glob(f"{name.replace('-', '_')}-{version}.tar.gz")
            found = list(recordings(sdist))
            target = OUT / f"{name}-{version}.jsonl.gz"
            with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                for item in found:
                    out.write((json.dumps(item, ensure_ascii=False) + "\n").encode("utf-8"))
            counts = dict(sorted(Counter(item["kind"] for item in found).items()))
            print(f"{target.relative_to(OUT.parent.parent)}: {len(found)} answers ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
