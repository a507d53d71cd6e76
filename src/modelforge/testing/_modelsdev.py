"""A tiny built-in models.dev catalog (``GET /api.json``), in models.dev's shape.

``{provider_id: {id, name, env, npm, api, doc, models: {model_id: {id, name, family, attachment, reasoning,
tool_call, temperature, cost: {input, output}, limit: {context, output}, modalities: {input, output}}}}}``.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["default_catalog"]


def _model(
    model_id: str,
    name: str,
    family: str,
    *,
    cost: tuple[float, float],
    context: int,
    output: int,
    reasoning: bool = False,
    attachment: bool = True,
    tool_call: bool = True,
    inputs: tuple[str, ...] = ("text", "image"),
) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": name,
        "family": family,
        "attachment": attachment,
        "reasoning": reasoning,
        "tool_call": tool_call,
        "temperature": True,
        "knowledge": "2024-10",
        "release_date": "2025-01-01",
        "last_updated": "2025-01-01",
        "open_weights": False,
        "cost": {"input": cost[0], "output": cost[1]},
        "limit": {"context": context, "output": output},
        "modalities": {"input": list(inputs), "output": ["text"]},
    }


_CATALOG: dict[str, Any] = {
    "openai": {
        "id": "openai",
        "name": "OpenAI",
        "env": ["OPENAI_API_KEY"],
        "npm": "@ai-sdk/openai",
        "doc": "https://platform.openai.com/docs/models",
        "models": {
            "gpt-4o-mini": _model(
                "gpt-4o-mini", "GPT-4o mini", "gpt-4o", cost=(0.15, 0.6), context=128_000, output=16_384
            ),
            "gpt-4o": _model("gpt-4o", "GPT-4o", "gpt-4o", cost=(2.5, 10.0), context=128_000, output=16_384),
        },
    },
    "anthropic": {
        "id": "anthropic",
        "name": "Anthropic",
        "env": ["ANTHROPIC_API_KEY"],
        "npm": "@ai-sdk/anthropic",
        "doc": "https://docs.anthropic.com/en/docs/about-claude/models",
        "models": {
            "claude-sonnet-4-5": _model(
                "claude-sonnet-4-5",
                "Claude Sonnet 4.5",
                "claude-sonnet",
                cost=(3.0, 15.0),
                context=200_000,
                output=64_000,
                reasoning=True,
            ),
        },
    },
    "google": {
        "id": "google",
        "name": "Google",
        "env": ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"],
        "npm": "@ai-sdk/google",
        "doc": "https://ai.google.dev/gemini-api/docs/pricing",
        "models": {
            "gemini-2.5-flash": _model(
                "gemini-2.5-flash",
                "Gemini 2.5 Flash",
                "gemini-flash",
                cost=(0.3, 2.5),
                context=1_048_576,
                output=65_536,
                reasoning=True,
            ),
        },
    },
    "github-copilot": {
        "id": "github-copilot",
        "name": "GitHub Copilot",
        "env": ["GITHUB_TOKEN"],
        "npm": "@ai-sdk/openai-compatible",
        "api": "https://api.githubcopilot.com",
        "doc": "https://docs.github.com/en/copilot",
        "models": {
            "gpt-4o": _model("gpt-4o", "GPT-4o", "gpt-4o", cost=(0.0, 0.0), context=64_000, output=16_384),
        },
    },
    "ollama": {
        "id": "ollama",
        "name": "Ollama",
        "env": [],
        "npm": "ollama-ai-provider",
        "api": "http://localhost:11434",
        "doc": "https://ollama.com/library",
        "models": {
            "qwen3:1.7b": _model(
                "qwen3:1.7b",
                "Qwen3 1.7B",
                "qwen",
                cost=(0.0, 0.0),
                context=40_960,
                output=8_192,
                attachment=False,
                inputs=("text",),
            ),
        },
    },
}


def default_catalog() -> dict[str, Any]:
    """A fresh copy of the built-in sample catalog."""
    return copy.deepcopy(_CATALOG)
