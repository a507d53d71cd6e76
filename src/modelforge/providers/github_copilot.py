"""GitHub Copilot through its OpenAI-compatible endpoint and GitHub's token exchange.

``langchain-github-copilot`` cannot be used: it pins langchain-core<0.4.

The user logs in once with GitHub's device flow (``modelforge auth login --provider github_copilot``).
Each call then needs a short-lived Copilot token, obtained by exchanging the GitHub OAuth token at
``/copilot_internal/v2/token``; ``modelforge.auth.CopilotTokenSource`` does the exchange, caches the token
and exchanges again before it expires. The source is handed to ``ChatOpenAI`` as a callable ``api_key``, so
every request, sync or async, carries a fresh token, and one source is shared by every model built for the
same provider so concurrent callers trigger one exchange, not one each.

Requests go to the provider's ``base_url`` (GitHub's public ``https://api.githubcopilot.com`` by default).
Copilot Business and Enterprise accounts are served from the ``endpoints.api`` address that the token
exchange names; set ``base_url`` to it for such an account.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from langchain_core.language_models import BaseChatModel

from modelforge.auth.copilot import COPILOT_HEADERS, DEFAULT_EXCHANGE_URL
from modelforge.providers.base import ModelRequest, ProviderFamily
from modelforge.providers.errors import HttpFailure, read_stainless_failure
from modelforge.providers.openai_compatible import build_chat_openai, read_responses_stream_failure

if TYPE_CHECKING:
    from modelforge.auth import CopilotTokenSource

__all__ = ["GitHubCopilotFamily"]

COPILOT_BASE_URL = "https://api.githubcopilot.com"
_sources: dict[tuple[str, str], tuple[object, CopilotTokenSource]] = {}
_sources_lock = threading.Lock()


class GitHubCopilotFamily(ProviderFamily):
    """Copilot chat models, authenticated by GitHub OAuth and a refreshed Copilot token."""

    speaks_openai = True
    llm_type = "github_copilot"
    pip_package = "langchain-openai"
    default_base_url = COPILOT_BASE_URL

    def build(self, request: ModelRequest) -> BaseChatModel:
        return build_chat_openai(
            request,
            base_url=request.provider.base_url or self.default_base_url,
            api_key=self._token_source(request),
            default_headers=COPILOT_HEADERS,
        )

    def _token_source(self, request: ModelRequest) -> CopilotTokenSource:
        from modelforge.auth import copilot_token_source, credentials_version

        details = request.provider.auth_details
        exchange_url = (details.token_exchange_url if details else None) or DEFAULT_EXCHANGE_URL
        # A login, a logout or a changed token variable makes a new source; the stale one is dropped.
        version = credentials_version(request.provider_name)
        key = (request.provider_name, exchange_url)
        with _sources_lock:
            cached = _sources.get(key)
            if cached is None or cached[0] != version:
                cached = (version, copilot_token_source(request.provider_name, request.provider))
                _sources[key] = cached
        return cached[1]

    def recover(self, err: Exception, *, provider: str) -> bool:
        if getattr(err, "status_code", None) != 401:
            return False
        # The Copilot token was revoked or the service forgot it: exchange the OAuth token again, once.
        with _sources_lock:
            sources = [source for (name, _), (_, source) in _sources.items() if name == provider]
        for source in sources:
            source.invalidate()
        return bool(sources)

    def read_failure(self, err: BaseException) -> HttpFailure | None:
        return read_stainless_failure(err, "openai") or read_responses_stream_failure(err)
