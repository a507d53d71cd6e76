"""The suite-wide secret scan (tests/conftest.py) really catches leaks, and masking hides secrets."""

from __future__ import annotations

from modelforge._secrets import mask, mask_secrets, register_secret
from modelforge.exceptions import RateLimitError
from tests import conftest


def test_scan_catches_a_secret_in_output() -> None:
    before = len(conftest._leaks)
    conftest._scan("probe", f"oops {conftest.OPENAI_KEY} leaked")
    assert len(conftest._leaks) == before + 1
    del conftest._leaks[before:]  # the probe itself is not a leak


def test_registered_secrets_are_masked_everywhere() -> None:
    secret = "an-unusual-secret-value-0123456789"
    register_secret(secret)
    err = RateLimitError("openai", message=f"server echoed {secret}")
    assert secret not in str(err) and secret not in repr(err) and secret not in repr(err.to_dict())
    assert mask(secret) == "****6789"


def test_key_shapes_are_masked_even_unregistered() -> None:
    for key in (
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz0123",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "Bearer abcdefghijklmnop",
    ):
        assert key.split()[-1] not in mask_secrets(f"header: {key}")


def test_details_are_masked_too() -> None:
    secret = "another-unusual-secret-value-987654"
    register_secret(secret)
    err = RateLimitError("openai", details={"provider_message": f"bad key {secret}", "nested": [secret]})
    assert secret not in repr(err.to_dict())
