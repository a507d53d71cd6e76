"""Provider families: one module each, found by ``llm_type`` through one table, imported lazily.

Adding a provider family is one new module here and one line in ``FAMILIES``. ``KNOWN_PROVIDERS`` holds the
defaults ``modelforge config add`` writes for well-known provider names.
"""

from __future__ import annotations

import importlib
from typing import Any

from modelforge.auth.copilot import GITHUB_COPILOT_AUTH_DETAILS
from modelforge.exceptions import ProviderError, ProviderNotAvailableError
from modelforge.providers.base import ModelRequest, ProviderFamily

__all__ = [
    "FAMILIES",
    "KNOWN_PROVIDERS",
    "LLM_TYPE_ALIASES",
    "ModelRequest",
    "ProviderFamily",
    "get_family",
    "normalize_llm_type",
]

# llm_type -> (module, class)
FAMILIES: dict[str, tuple[str, str]] = {
    "openai_compatible": ("modelforge.providers.openai_compatible", "OpenAICompatibleFamily"),
    "anthropic": ("modelforge.providers.anthropic", "AnthropicFamily"),
    "ollama": ("modelforge.providers.ollama", "OllamaFamily"),
    "google_genai": ("modelforge.providers.google_genai", "GoogleGenAIFamily"),
    "github_copilot": ("modelforge.providers.github_copilot", "GitHubCopilotFamily"),
    "local": ("modelforge.providers.local", "LocalFamily"),
}

# The package each family's module needs (what to install when it is missing).
_PIP_PACKAGES = {
    "openai_compatible": "langchain-openai",
    "anthropic": "langchain-anthropic",
    "ollama": "langchain-ollama",
    "google_genai": "langchain-google-genai",
    "github_copilot": "langchain-openai",
    "local": "langchain-openai",
}

# Other spellings found in existing configs (2.3.0 wrote "openrouter", which it then could not load).
LLM_TYPE_ALIASES = {
    "openai": "openai_compatible",
    "openrouter": "openai_compatible",
    "google": "google_genai",
    "gemini": "google_genai",
    "llamacpp": "local",
}

KNOWN_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "llm_type": "openai_compatible",
        "base_url": "https://api.openai.com/v1",
        "auth_strategy": "api_key",
    },
    "openrouter": {
        "llm_type": "openai_compatible",
        "base_url": "https://openrouter.ai/api/v1",
        "auth_strategy": "api_key",
    },
    "anthropic": {
        "llm_type": "anthropic",
        "base_url": "https://api.anthropic.com",
        "auth_strategy": "api_key",
    },
    "google": {"llm_type": "google_genai", "auth_strategy": "api_key"},
    "github_copilot": {
        "llm_type": "github_copilot",
        "base_url": "https://api.githubcopilot.com",
        "auth_strategy": "device_flow",
        "auth_details": dict(GITHUB_COPILOT_AUTH_DETAILS),
    },
    "ollama": {"llm_type": "ollama", "base_url": "http://localhost:11434"},
    "local": {"llm_type": "local"},
}

_instances: dict[str, ProviderFamily] = {}


def normalize_llm_type(llm_type: str) -> str:
    """The canonical family name for an ``llm_type`` as written in a config."""
    cleaned = llm_type.strip().lower().replace("-", "_")
    return LLM_TYPE_ALIASES.get(cleaned, cleaned)


def get_family(llm_type: str, *, provider: str | None = None) -> ProviderFamily:
    """The family for ``llm_type``; ``ProviderError`` (UNSUPPORTED_LLM_TYPE) when there is none."""
    name = normalize_llm_type(llm_type)
    if name not in FAMILIES:
        raise ProviderError(
            f"Unsupported llm_type '{llm_type}'" + (f" for provider '{provider}'" if provider else ""),
            error_code="UNSUPPORTED_LLM_TYPE",
            provider=provider,
            suggestion="Use one of: " + ", ".join(sorted(FAMILIES)),
        )
    if name not in _instances:
        module_name, class_name = FAMILIES[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ProviderNotAvailableError(
                provider or name,
                f"its package could not be imported ({err.name})",
                suggestion=f"Install it with: pip install {_PIP_PACKAGES[name]}",
            ) from err
        _instances[name] = getattr(module, class_name)()
    return _instances[name]
