"""Secrets never reach a log line, an exception message, a repr or a world-readable file."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from modelforge.auth import (
    ApiKeyAuth,
    CopilotTokenSource,
    DeviceFlowSettings,
    OAuthTokenSource,
    access_token_source,
    arun_device_flow,
    get_credentials,
    resolve_credentials,
)
from modelforge.config_schema import ProviderConfig
from modelforge.exceptions import ModelForgeError

# Deliberately not shaped like any known key format, so only registration can hide them.
API_KEY = "plainsecretvalue-0123456789-apikey"
ACCESS = "plainsecretvalue-0123456789-access"
REFRESH = "plainsecretvalue-0123456789-refresh"
SECRETS = (API_KEY, ACCESS, REFRESH)


def scan(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked into: {text[:200]}"


def test_full_lifecycle_leaks_nothing(
    server: Any, clock: Any, caplog: pytest.LogCaptureFixture, isolated_home: Path
) -> None:
    from modelforge.testing import DeviceFlowScript

    caplog.set_level(logging.DEBUG)
    base = server.github_base_url
    server.device_flow = DeviceFlowScript(
        pending_polls=1, access_token=ACCESS, refresh_token=REFRESH, token_expires_in=100
    )
    provider = ProviderConfig.model_validate(
        {
            "llm_type": "github_copilot",
            "auth_strategy": "device_flow",
            "auth_details": {
                "client_id": "cid",
                "device_code_url": base + "/login/device/code",
                "token_url": base + "/login/oauth/access_token",
                "token_exchange_url": base + "/copilot_internal/v2/token",
            },
        }
    )
    settings = DeviceFlowSettings.from_details("github_copilot", provider.auth_details)
    asyncio.run(arun_device_flow(settings, on_prompt=lambda c, u: None, sleep=clock.asleep, clock=clock))
    ApiKeyAuth("openai").store_api_key(API_KEY)

    texts: list[str] = []
    source = access_token_source("github_copilot", provider, clock=clock)
    assert isinstance(source, OAuthTokenSource)
    texts += [repr(source), repr(source.record), repr(resolve_credentials("github_copilot", provider))]
    texts += [repr(resolve_credentials("openai", {"auth_strategy": "api_key"}))]
    copilot = CopilotTokenSource(source, base + "/copilot_internal/v2/token", clock=clock)
    copilot_token = copilot()
    texts += [repr(copilot)]
    clock.advance(1000)  # the OAuth token expires; the refresh is logged
    source.get_token()

    server.reset()  # refresh token unknown now: the error must not echo it
    source.invalidate()
    with pytest.raises(ModelForgeError) as info:
        source.get_token()
    texts += [str(info.value), repr(info.value), str(info.value.to_dict())]
    server.valid_oauth_tokens = set()
    copilot.invalidate()
    with pytest.raises(ModelForgeError) as info2:
        CopilotTokenSource(ACCESS, base + "/copilot_internal/v2/token").get_token()
    texts += [str(info2.value), str(info2.value.to_dict())]
    with pytest.raises(ModelForgeError) as info3:
        get_credentials("missing", "m", {"auth_strategy": "api_key"})
    texts += [str(info3.value), str(info3.value.suggestion)]

    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    scan(*texts)
    assert copilot_token not in "\n".join(r.getMessage() for r in caplog.records)

    # on disk: secrets only in the owner-only credentials file
    for path in isolated_home.rglob("*"):
        if path.is_file():
            content = path.read_text(errors="replace")
            if any(s in content for s in SECRETS):
                assert path.name == "credentials.json", path
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
                assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            else:
                assert not (stat.S_IMODE(path.stat().st_mode) & 0o004) or path.suffix == ".lock"


def test_env_secret_is_masked_once_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    env_key = "plainsecretvalue-env-0000000000000"
    monkeypatch.setenv("MODELFORGE_OPENAI_API_KEY", env_key)
    creds = resolve_credentials("openai", {"auth_strategy": "api_key"})
    err = ModelForgeError(f"provider rejected {creds.api_key}")
    assert env_key not in str(err) and env_key not in repr(creds)
    assert os.environ["MODELFORGE_OPENAI_API_KEY"] == env_key  # the environment itself is untouched
