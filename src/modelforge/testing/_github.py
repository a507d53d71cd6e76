"""GitHub's side of Copilot sign-in: the OAuth device flow and the Copilot token exchange.

* ``POST /login/device/code`` (form or JSON body: ``client_id``, ``scope``) -> ``device_code``,
  ``user_code``, ``verification_uri``, ``expires_in``, ``interval``.
* ``POST /login/oauth/access_token``: ``grant_type=urn:ietf:params:oauth:grant-type:device_code`` polls,
  answered with HTTP 200 ``{"error": "authorization_pending" | "slow_down" | "expired_token" |
  "access_denied"}`` or a token, as ``DeviceFlowScript`` says; ``grant_type=refresh_token`` refreshes.
  Both answer JSON when the request accepts ``application/json``, else form-encoded (as GitHub does).
* ``GET /copilot_internal/v2/token`` with ``Authorization: token <oauth>`` -> a short-lived Copilot token.
* ``GET /user`` -> a fixed user, for clients that look up who signed in.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from modelforge.testing._common import dumps
from modelforge.testing._http import Exchange
from modelforge.testing.script import DeviceFlowScript, DevicePoll

__all__ = ["DEVICE_GRANT", "GitHubService"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class _DeviceSession:
    device_code: str
    issued_at: float
    interval: float
    script: DeviceFlowScript
    polls: int = 0
    last_poll: float | None = None


@dataclass
class _CopilotToken:
    expires_at: float  # time.time()
    revoked: bool = False


def _params(ex: Exchange) -> dict[str, str]:
    """Query, form and JSON body parameters merged."""
    params = dict(ex.query)
    content_type = ex.headers.get("content-type", "")
    if "json" in content_type:
        try:
            data = json.loads(ex.body or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict):
            params.update({k: str(v) for k, v in data.items() if v is not None})
    elif ex.body:
        params.update(dict(parse_qsl(ex.body.decode("utf-8", "replace"), keep_blank_values=True)))
    return params


def _token_from(ex: Exchange) -> str:
    scheme, _, token = ex.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("token", "bearer"):
        return token.strip()
    return ""


class GitHubService:
    """State and handlers of the GitHub endpoints (one per server)."""

    def __init__(self, copilot_base_url: str, base_url: str) -> None:
        self._lock = threading.Lock()
        self.copilot_base_url = copilot_base_url
        self.base_url = base_url
        self.device_flow = DeviceFlowScript()
        self.client_id: str | None = None
        self.valid_oauth_tokens: set[str] | None = None
        self.copilot_token_ttl: float = 1800
        self.copilot_token_refresh_in: int | None = None
        self.copilot_token_exchanges = 0
        self.polls: list[DevicePoll] = []
        self._sessions: dict[str, _DeviceSession] = {}
        self._refresh_tokens: dict[str, int] = {}
        self._copilot_tokens: dict[str, _CopilotToken] = {}
        self._refreshes = 0

    def reset(self) -> None:
        with self._lock:
            self.copilot_token_exchanges = 0
            self.polls.clear()
            self._sessions.clear()
            self._refresh_tokens.clear()
            self._copilot_tokens.clear()
            self._refreshes = 0

    # -- Copilot tokens --------------------------------------------------------------------------------

    def copilot_token_valid(self, token: str) -> bool:
        entry = self._copilot_tokens.get(token)
        return entry is not None and not entry.revoked and time.time() < entry.expires_at

    def expire_copilot_tokens(self) -> None:
        with self._lock:
            for entry in self._copilot_tokens.values():
                entry.revoked = True

    def issued_copilot_tokens(self) -> list[str]:
        return list(self._copilot_tokens)

    async def copilot_token(self, ex: Exchange) -> None:
        oauth = _token_from(ex)
        allowed = self.valid_oauth_tokens
        if not oauth or (allowed is not None and oauth not in allowed):
            denied = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            await ex.respond(401, dumps(denied))
            return
        ttl = self.copilot_token_ttl
        now = time.time()
        expires_at = now + ttl
        token = f"tid={secrets.token_hex(16)};exp={int(expires_at)};sku=copilot_for_individuals;8kp=1:" + (
            secrets.token_hex(32)
        )
        refresh_in = self.copilot_token_refresh_in
        if refresh_in is None:
            refresh_in = int(ttl) - 300 if ttl > 600 else int(ttl) // 2
        with self._lock:
            self._copilot_tokens[token] = _CopilotToken(expires_at)
            self.copilot_token_exchanges += 1
        body: dict[str, Any] = {
            "token": token,
            "expires_at": int(expires_at),
            "refresh_in": refresh_in,
            "endpoints": {
                "api": self.copilot_base_url,
                "proxy": self.copilot_base_url,
                "telemetry": self.copilot_base_url,
            },
            "chat_enabled": True,
            "sku": "copilot_for_individuals",
        }
        await ex.respond(200, dumps(body))

    async def user(self, ex: Exchange) -> None:
        oauth = _token_from(ex)
        allowed = self.valid_oauth_tokens
        if not oauth or (allowed is not None and oauth not in allowed):
            await ex.respond(401, dumps({"message": "Bad credentials"}))
            return
        await ex.respond(200, dumps({"login": "modelforge-test", "id": 1, "name": "ModelForge Test"}))

    # -- device flow -----------------------------------------------------------------------------------

    async def device_code(self, ex: Exchange) -> None:
        params = _params(ex)
        if not params.get("client_id") or (
            self.client_id is not None and params["client_id"] != self.client_id
        ):
            await self._answer(ex, {"error": "Not Found"}, status=404)
            return
        script = self.device_flow
        with self._lock:
            code = script.device_code
            if code in self._sessions:
                code = f"{script.device_code}{len(self._sessions)}"
            self._sessions[code] = _DeviceSession(code, time.monotonic(), script.interval, script)
        await self._answer(
            ex,
            {
                "device_code": code,
                "user_code": script.user_code,
                "verification_uri": f"{self.base_url}/login/device",
                "expires_in": script.expires_in,
                "interval": script.interval,
            },
        )

    async def access_token(self, ex: Exchange) -> None:
        params = _params(ex)
        grant = params.get("grant_type", "")
        if self.client_id is not None and params.get("client_id") != self.client_id:
            await self._answer(ex, {"error": "incorrect_client_credentials"})
        elif grant == DEVICE_GRANT:
            await self._answer(ex, self._poll(params.get("device_code", "")))
        elif grant == "refresh_token":
            await self._answer(ex, self._refresh(params.get("refresh_token", "")))
        else:
            await self._answer(ex, {"error": "unsupported_grant_type"})

    def _poll(self, device_code: str) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(device_code)
            if session is None:
                return {
                    "error": "incorrect_device_code",
                    "error_description": "The device_code is not valid.",
                }
            script = session.script
            in_force = session.interval
            answer: dict[str, Any]
            if now - session.issued_at > script.expires_in:
                answer = {"error": "expired_token"}
            elif (
                script.enforce_interval
                and session.last_poll is not None
                and now - session.last_poll < in_force
            ):
                session.interval += 5
                answer = {"error": "slow_down", "interval": session.interval}
            else:
                session.polls += 1
                number = session.polls
                if number <= script.pending_polls and number in script.slow_down_on:
                    session.interval += 5
                    answer = {"error": "slow_down", "interval": session.interval}
                elif number <= script.pending_polls:
                    answer = {"error": "authorization_pending"}
                elif script.outcome == "denied":
                    answer = {"error": "access_denied"}
                elif script.outcome == "expired":
                    answer = {"error": "expired_token"}
                else:
                    answer = self._grant(script, script.access_token, script.refresh_token)
            session.last_poll = now
            label = str(answer.get("error", "granted"))
            self.polls.append(DevicePoll(at=now, answer=label, interval=in_force, device_code=device_code))
        if "error" in answer and answer["error"] != "slow_down":
            answer.setdefault("error_description", answer["error"].replace("_", " "))
        return answer

    def _grant(self, script: DeviceFlowScript, access: str, refresh: str | None) -> dict[str, Any]:
        if self.valid_oauth_tokens is not None:
            self.valid_oauth_tokens.add(access)
        answer: dict[str, Any] = {"access_token": access, "token_type": "bearer", "scope": script.scope}
        if refresh is not None:
            self._refresh_tokens[refresh] = 1
            answer["refresh_token"] = refresh
            if script.refresh_token_expires_in is not None:
                answer["refresh_token_expires_in"] = script.refresh_token_expires_in
        if script.token_expires_in is not None:
            answer["expires_in"] = script.token_expires_in
        return answer

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        with self._lock:
            if refresh_token not in self._refresh_tokens:
                return {"error": "bad_refresh_token", "error_description": "The refresh token is not valid."}
            del self._refresh_tokens[refresh_token]
            self._refreshes += 1
            script = self.device_flow
            base_refresh = script.refresh_token or "ghr_modelforgetest"
            return self._grant(
                script, f"{script.access_token}_r{self._refreshes}", f"{base_refresh}_r{self._refreshes}"
            )

    @staticmethod
    async def _answer(ex: Exchange, body: dict[str, Any], status: int = 200) -> None:
        if "application/json" in ex.headers.get("accept", ""):
            await ex.respond(status, dumps(body))
        else:
            form = urlencode({k: str(v) for k, v in body.items()})
            await ex.respond(status, form.encode(), content_type="application/x-www-form-urlencoded")
