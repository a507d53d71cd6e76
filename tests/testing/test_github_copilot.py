"""GitHub device flow, the Copilot token exchange and the Copilot chat endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from modelforge.testing import DeviceFlowScript, ProviderServer, Reply

CLIENT_ID = "Iv1.modelforgetest"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JSON = {"Accept": "application/json"}


def _start(client: httpx.Client, server: ProviderServer) -> dict[str, Any]:
    response = client.post(
        server.github_base_url + "/login/device/code",
        data={"client_id": CLIENT_ID, "scope": "read:user"},
        headers=JSON,
    )
    assert response.status_code == 200
    return dict(response.json())


def _poll(client: httpx.Client, server: ProviderServer, device_code: str) -> dict[str, Any]:
    response = client.post(
        server.github_base_url + "/login/oauth/access_token",
        data={"client_id": CLIENT_ID, "device_code": device_code, "grant_type": DEVICE_GRANT},
        headers=JSON,
    )
    assert response.status_code == 200  # GitHub answers every poll with 200
    return dict(response.json())


def test_device_code_answer(server: ProviderServer) -> None:
    server.device_flow = DeviceFlowScript(interval=5, expires_in=900, user_code="ABCD-1234")
    with httpx.Client() as client:
        answer = _start(client, server)
    assert answer["user_code"] == "ABCD-1234"
    assert answer["verification_uri"] == server.github_base_url + "/login/device"
    assert (answer["interval"], answer["expires_in"]) == (5, 900)
    assert answer["device_code"]
    assert server.requests[-1].protocol == "github"


def test_pending_slow_down_granted(server: ProviderServer) -> None:
    server.device_flow = DeviceFlowScript(
        pending_polls=2, slow_down_on=(2,), interval=1, access_token="gho_abc"
    )
    with httpx.Client() as client:
        code = _start(client, server)["device_code"]
        answers = [_poll(client, server, code) for _ in range(3)]
    assert answers[0]["error"] == "authorization_pending"
    assert answers[1]["error"] == "slow_down" and answers[1]["interval"] == 6
    assert answers[2] == {"access_token": "gho_abc", "token_type": "bearer", "scope": "read:user"}
    polls = server.device_polls
    assert [p.answer for p in polls] == ["authorization_pending", "slow_down", "granted"]
    assert [p.interval for p in polls] == [1, 1, 6]
    assert polls[0].at <= polls[1].at <= polls[2].at


def test_default_script(server: ProviderServer) -> None:
    with httpx.Client() as client:
        code = _start(client, server)["device_code"]
        answers = [_poll(client, server, code) for _ in range(3)]
    assert [a.get("error") for a in answers] == ["authorization_pending", "authorization_pending", None]
    assert answers[2]["access_token"] == DeviceFlowScript().access_token


@pytest.mark.parametrize(("outcome", "error"), [("denied", "access_denied"), ("expired", "expired_token")])
def test_denied_and_expired(server: ProviderServer, outcome: Any, error: str) -> None:
    server.device_flow = DeviceFlowScript(pending_polls=1, slow_down_on=(), outcome=outcome, interval=0)
    with httpx.Client() as client:
        code = _start(client, server)["device_code"]
        assert _poll(client, server, code)["error"] == "authorization_pending"
        assert _poll(client, server, code)["error"] == error


def test_code_expires_by_time(server: ProviderServer) -> None:
    server.device_flow = DeviceFlowScript(expires_in=0, interval=0)
    with httpx.Client() as client:
        code = _start(client, server)["device_code"]
        time.sleep(0.01)  # measured: the code must be older than expires_in
        assert _poll(client, server, code)["error"] == "expired_token"


def test_enforced_interval_answers_slow_down(server: ProviderServer) -> None:
    server.device_flow = DeviceFlowScript(
        pending_polls=5, slow_down_on=(), interval=30, enforce_interval=True
    )
    with httpx.Client() as client:
        code = _start(client, server)["device_code"]
        assert _poll(client, server, code)["error"] == "authorization_pending"
        too_soon = _poll(client, server, code)
    assert too_soon == {"error": "slow_down", "interval": 35}


def test_unknown_device_code_and_form_answers(server: ProviderServer) -> None:
    with httpx.Client() as client:
        assert _poll(client, server, "nope")["error"] == "incorrect_device_code"
        form = client.post(server.github_base_url + "/login/device/code", data={"client_id": CLIENT_ID})
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "device_code=" in form.text and "user_code=" in form.text


def test_json_request_body_is_accepted(server: ProviderServer) -> None:
    server.github_client_id = CLIENT_ID
    with httpx.Client() as client:
        ok = client.post(
            server.github_base_url + "/login/device/code", json={"client_id": CLIENT_ID}, headers=JSON
        )
        wrong = client.post(
            server.github_base_url + "/login/device/code", json={"client_id": "x"}, headers=JSON
        )
    assert ok.status_code == 200 and ok.json()["device_code"]
    assert wrong.status_code == 404


def test_refresh_token_grant(server: ProviderServer) -> None:
    server.device_flow = DeviceFlowScript(
        pending_polls=0, access_token="ghu_one", refresh_token="ghr_one", token_expires_in=28800
    )
    with httpx.Client() as client:
        granted = _poll(client, server, _start(client, server)["device_code"])
        assert (granted["refresh_token"], granted["expires_in"]) == ("ghr_one", 28800)
        url = server.github_base_url + "/login/oauth/access_token"
        refresh = {"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": "ghr_one"}
        renewed = client.post(url, data=refresh, headers=JSON).json()
        again = client.post(url, data=refresh, headers=JSON).json()
    assert renewed["access_token"] != "ghu_one" and renewed["refresh_token"] != "ghr_one"
    assert again["error"] == "bad_refresh_token"


def _exchange(client: httpx.Client, server: ProviderServer, oauth: str) -> httpx.Response:
    return client.get(
        server.github_base_url + "/copilot_internal/v2/token",
        headers={"Authorization": f"token {oauth}", **JSON},
    )


def test_copilot_token_exchange(server: ProviderServer) -> None:
    server.copilot_token_ttl = 1500
    with httpx.Client() as client:
        answer = _exchange(client, server, "gho_any").json()
    assert answer["token"].startswith("tid=")
    assert answer["endpoints"]["api"] == server.copilot_base_url
    assert abs(answer["expires_at"] - (time.time() + 1500)) < 5
    assert 0 < answer["refresh_in"] < 1500
    assert server.copilot_token_exchanges == 1
    assert server.copilot_tokens == [answer["token"]]


def test_copilot_exchange_refuses_unknown_oauth_tokens(server: ProviderServer) -> None:
    server.valid_oauth_tokens = {"gho_good"}
    with httpx.Client() as client:
        assert _exchange(client, server, "gho_bad").status_code == 401
        assert client.get(server.github_base_url + "/copilot_internal/v2/token").status_code == 401
        assert _exchange(client, server, "gho_good").status_code == 200
    assert server.copilot_token_exchanges == 1


def test_granted_token_joins_valid_set(server: ProviderServer) -> None:
    server.valid_oauth_tokens = set()
    server.device_flow = DeviceFlowScript(pending_polls=0, access_token="gho_new")
    with httpx.Client() as client:
        _poll(client, server, _start(client, server)["device_code"])
        assert _exchange(client, server, "gho_new").status_code == 200


def test_copilot_chat_requires_a_valid_copilot_token(server: ProviderServer) -> None:
    with httpx.Client() as client:
        token = _exchange(client, server, "gho_x").json()["token"]
    bad = openai.OpenAI(base_url=server.copilot_base_url, api_key="not-a-copilot-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    server.script(Reply(text="copilot says hi"))
    model = ChatOpenAI(model="gpt-4o", base_url=server.copilot_base_url, api_key=token, max_retries=0)
    assert model.invoke("hi").content == "copilot says hi"
    assert server.requests[-1].protocol == "copilot"
    assert server.requests[-1].path == "/copilot/chat/completions"
    server.expire_copilot_tokens()
    with pytest.raises(openai.AuthenticationError):
        model.invoke("hi")


def test_copilot_token_expires_by_ttl(server: ProviderServer) -> None:
    server.copilot_token_ttl = 0.2
    url = server.copilot_base_url + "/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client() as client:
        token = _exchange(client, server, "gho_x").json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post(url, json=body, headers=auth).status_code == 200
        time.sleep(0.25)  # measured: let the token's TTL pass
        expired = client.post(url, json=body, headers=auth)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "invalid_api_key"


def test_copilot_models_and_user(server: ProviderServer) -> None:
    with httpx.Client() as client:
        token = _exchange(client, server, "gho_x").json()["token"]
        models = client.get(server.copilot_base_url + "/models", headers={"Authorization": f"Bearer {token}"})
        anonymous = client.get(server.copilot_base_url + "/models")
        user = client.get(server.github_base_url + "/user", headers={"Authorization": "token gho_x"})
    assert [m["id"] for m in models.json()["data"]] == server.copilot_models
    assert anonymous.status_code == 401
    assert user.json()["login"] == "modelforge-test"
