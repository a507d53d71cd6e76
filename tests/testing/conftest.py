"""Fixtures for the provider test server's own tests.

* ``server``: a started ``ProviderServer`` per test.
* ``_one_tls_context`` (autouse): every SDK and httpx client builds an SSL context and loads the whole CA
  bundle (~50 ms each, the bulk of this suite's time) although these tests only speak plain HTTP to
  127.0.0.1. Within these tests ``ssl.create_default_context`` hands out one cached context per argument set.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from modelforge.testing import ProviderServer

_real_create_default_context = ssl.create_default_context
_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def _cached_default_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
    key = (args, tuple(sorted(kwargs.items())))
    if key not in _contexts:
        _contexts[key] = _real_create_default_context(*args, **kwargs)
    return _contexts[key]


@pytest.fixture(autouse=True)
def _one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssl, "create_default_context", _cached_default_context)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as srv:
        yield srv
