"""Which handler answers which request: the route table, protocol tagging and the small metadata endpoints
(model lists, Ollama tags/show/version, models.dev, the device-activation page, 404s).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from modelforge.testing import _anthropic, _gemini, _ollama, _openai, _responses
from modelforge.testing._batches import BatchService, Handler
from modelforge.testing._batches_anthropic import AnthropicBatches
from modelforge.testing._batches_openai import OpenAIBatches
from modelforge.testing._chat import ChatHost, ChatProtocol, serve_chat
from modelforge.testing._common import dumps
from modelforge.testing._gemini import GeminiCacheEndpoints
from modelforge.testing._github import GitHubService
from modelforge.testing._http import Exchange, PatternRoute
from modelforge.testing.script import ProtocolName

if TYPE_CHECKING:
    from modelforge.testing.server import ProviderServer

__all__ = ["Route", "Router", "classify"]

Route = Callable[[Exchange], Awaitable[None]]

_GEMINI_CALL = re.compile(
    r"^/(?:v1beta|v1|v1alpha)/models/([^/]+:(?:generateContent|streamGenerateContent))$"
)
_GEMINI_LIST = re.compile(r"^/(?:v1beta|v1|v1alpha)/models/?$")


def _from_gemini_client(headers: dict[str, str]) -> bool:
    """A Gemini client: google-genai sends its key as ``x-goog-api-key`` and names itself in
    ``x-goog-api-client``. Needed on ``/v1/``, where Gemini (the default version since google-genai 3)
    and OpenAI share paths such as ``/v1/models``."""
    return "x-goog-api-key" in headers or "x-goog-api-client" in headers


def classify(path: str, headers: dict[str, str]) -> ProtocolName:
    """Which protocol a request path belongs to."""
    if path == "/api.json":
        return "modelsdev"
    if path.startswith("/api/"):
        return "ollama"
    if path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in headers):
        return "anthropic"
    if path.startswith(("/v1beta/", "/v1alpha/")) or _GEMINI_CALL.match(path):
        return "gemini"
    if path.startswith("/v1/") and _from_gemini_client(headers):
        return "gemini"
    if path.startswith("/v1/"):
        return "openai"
    if path.startswith("/copilot/"):
        return "copilot"
    if path.startswith(("/login/", "/copilot_internal/")) or path == "/user":
        return "github"
    return "other"


async def _json(ex: Exchange, body: bytes, status: int = 200) -> None:
    await ex.respond(status, body)


class Router:
    """Owns the protocol renderers of one server and sends each request to its handler."""

    def __init__(self, server: ProviderServer, host: ChatHost, github: GitHubService) -> None:
        self._server = server
        self._host = host
        self._github = github
        self.openai = _openai.OpenAIProtocol(lambda: server.require_api_key)
        self.responses = _responses.ResponsesProtocol(lambda: server.require_api_key)
        self.copilot = _openai.CopilotProtocol(github.copilot_token_valid)
        self.anthropic = _anthropic.AnthropicProtocol(lambda: server.require_api_key, server.caches)
        self.gemini = _gemini.GeminiProtocol(lambda: server.require_api_key, server.caches)
        self.ollama = _ollama.OllamaProtocol(lambda: server.ollama_models)
        self._routes: dict[tuple[str, str], Route] = {
            ("POST", "/v1/chat/completions"): self._chat(self.openai),
            ("POST", "/v1/responses"): self._chat(self.responses),
            ("GET", "/v1/models"): self._v1_models,
            ("POST", "/v1/messages"): self._chat(self.anthropic),
            ("POST", "/api/chat"): self._chat(self.ollama),
            ("GET", "/api/tags"): self._ollama_tags,
            ("GET", "/api/version"): self._ollama_version,
            ("POST", "/api/show"): self._ollama_show,
            ("POST", "/copilot/chat/completions"): self._chat(self.copilot),
            ("GET", "/copilot/models"): self._copilot_models,
            ("POST", "/login/device/code"): github.device_code,
            ("POST", "/login/oauth/access_token"): github.access_token,
            ("GET", "/login/device"): self._device_page,
            ("GET", "/copilot_internal/v2/token"): github.copilot_token,
            ("GET", "/user"): github.user,
            ("GET", "/api.json"): self._modelsdev,
        }
        # Paths with ids in them (batch jobs, files, cached contents), tried in order.
        self._patterns = [*batch_routes(server), *cache_routes(server)]

    async def dispatch(self, ex: Exchange, protocol: ProtocolName) -> None:
        route = self._routes.get((ex.method, ex.path))
        if route is not None:
            await route(ex)
            return
        for method, pattern, handler in self._patterns:
            match = pattern.fullmatch(ex.path)
            if match is not None and method == ex.method:
                await handler(ex, match)
                return
        gemini = _GEMINI_CALL.match(ex.path)
        if gemini is not None and ex.method == "POST":
            await serve_chat(self._host, self.gemini, ex, gemini.group(1))
        elif _GEMINI_LIST.match(ex.path) and ex.method == "GET":
            await _json(ex, _gemini.models_list(self._server.gemini_models))
        else:
            message = f"Not found: {ex.method} {ex.path}"
            if protocol == "gemini":  # google.rpc.Status, as the Gemini API answers
                error = {"code": 404, "message": message, "status": "NOT_FOUND"}
            else:
                error = {"message": message, "type": "not_found", "code": 404}
            await _json(ex, dumps({"error": error}), 404)

    def _chat(self, proto: ChatProtocol) -> Route:
        async def route(ex: Exchange) -> None:
            await serve_chat(self._host, proto, ex)

        return route

    async def _v1_models(self, ex: Exchange) -> None:
        if _from_gemini_client(ex.headers):
            await _json(ex, _gemini.models_list(self._server.gemini_models))
        elif "anthropic-version" in ex.headers:
            await _json(ex, _anthropic.models_list(self._server.anthropic_models))
        else:
            await _json(ex, _openai.models_list(self._server.openai_models))

    async def _ollama_tags(self, ex: Exchange) -> None:
        await _json(ex, _ollama.tags_body(self._server.ollama_models))

    async def _ollama_version(self, ex: Exchange) -> None:
        await _json(ex, dumps({"version": _ollama.OLLAMA_VERSION}))

    async def _ollama_show(self, ex: Exchange) -> None:
        try:
            data = json.loads(ex.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await _json(ex, dumps({"error": "invalid request body"}), 400)
            return
        name = str(data.get("model") or data.get("name") or "")
        known = {_ollama.normalize_model(m) for m in self._server.ollama_models}
        if name and _ollama.normalize_model(name) in known:
            await _json(ex, _ollama.show_body(name))
        else:
            await _json(ex, dumps({"error": f"model '{name}' not found"}), 404)

    async def _copilot_models(self, ex: Exchange) -> None:
        if self.copilot.authorize(ex) is not None:
            await _json(ex, self.copilot.error_body(401, "Unauthorized"), 401)
            return
        await _json(ex, _openai.models_list(self._server.copilot_models))

    async def _modelsdev(self, ex: Exchange) -> None:
        await _json(ex, dumps(self._server.modelsdev_catalog))

    async def _device_page(self, ex: Exchange) -> None:
        page = b"<html><body><h1>Device activation</h1><p>Enter the code the app shows.</p></body></html>"
        await ex.respond(200, page, content_type="text/html; charset=utf-8")


def batch_routes(server: ProviderServer) -> list[PatternRoute]:
    """``(method, path regex, handler)`` for the batch endpoints."""
    openai = OpenAIBatches(server, server.batches)
    anthropic = AnthropicBatches(server, server.batches)
    routes: list[PatternRoute] = [
        ("POST", re.compile(r"/v1/files"), openai.upload),
        ("GET", re.compile(r"/v1/files/(?P<id>[^/]+)(?P<content>/content)?"), openai.file),
        ("POST", re.compile(r"/v1/batches"), openai.create),
        ("GET", re.compile(r"/v1/batches"), openai.list_jobs),
        ("GET", re.compile(r"/v1/batches/(?P<id>[^/]+)"), openai.retrieve),
        ("POST", re.compile(r"/v1/batches/(?P<id>[^/]+)/cancel"), openai.cancel),
        ("POST", re.compile(r"/v1/messages/batches"), anthropic.create),
        ("GET", re.compile(r"/v1/messages/batches"), anthropic.list_jobs),
        ("GET", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)"), anthropic.retrieve),
        ("GET", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/results"), anthropic.results),
        ("POST", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/cancel"), anthropic.cancel),
    ]
    return [
        (method, pattern, _unless_disabled(server.batches, handler)) for method, pattern, handler in routes
    ]


def _unless_disabled(service: BatchService, handler: Handler) -> Handler:
    """``handler``, answering 404 while the service is disabled (a server without a batch API)."""

    async def route(ex: Exchange, match: re.Match[str]) -> None:
        if service.enabled:
            await handler(ex, match)
            return
        message = f"Not found: {ex.method} {ex.path}"
        body = {"error": {"message": message, "type": "not_found", "code": 404}}
        await ex.respond(404, dumps(body))

    return route


# The Gemini API serves cachedContents on v1beta (and v1alpha), not on v1: google-genai's own test suite
# says so (google/genai/tests/conftest.py in the google-genai 3.6.1 wheel: "The Gemini API only serves
# cachedContents on v1beta", forcing v1beta for its caches replays). /v1/cachedContents is a 404 here too.
_CACHED_CONTENTS = re.compile(r"/(?:v1beta|v1alpha)/cachedContents/?")
_CACHED_CONTENT = re.compile(r"/(?:v1beta|v1alpha)/(cachedContents/[A-Za-z0-9_-]+)")


def cache_routes(server: ProviderServer) -> list[PatternRoute]:
    """``(method, path regex, handler)`` for the cached-content endpoints."""
    endpoints = GeminiCacheEndpoints(server.caches, lambda: server.require_api_key)
    return [
        ("POST", _CACHED_CONTENTS, endpoints.create),
        ("GET", _CACHED_CONTENTS, endpoints.list),
        ("GET", _CACHED_CONTENT, endpoints.get),
        ("PATCH", _CACHED_CONTENT, endpoints.update),
        ("DELETE", _CACHED_CONTENT, endpoints.delete),
    ]
