"""The models.dev client under its 2.3.0 name: ``ModelsDevClient`` lives in ``modelforge.catalog.modelsdev``,
with the rest of the catalogue and the prices (``modelforge.catalog``). Every name of that module reads
through from here."""

from __future__ import annotations

from typing import Any

from modelforge.catalog import modelsdev as _modelsdev
from modelforge.catalog.modelsdev import ModelInfoNotFoundError, ModelsDevClient, ProviderInfoNotFoundError

__all__ = ["ModelInfoNotFoundError", "ModelsDevClient", "ProviderInfoNotFoundError"]


def __getattr__(name: str) -> Any:
    return getattr(_modelsdev, name)
