"""ModelForge: LLM providers, credentials and model choice, handed back as ready LangChain chat models."""

from __future__ import annotations

__version__ = "3.0.0"

__all__ = ["__version__"]
