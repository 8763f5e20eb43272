"""``VerifyCaller`` (every service's check of the gateway's signature) reads the signed
identity's headers as ``verify_headers`` does: all four or refused, a repeated name's last
value, the body read once and given to the app as sent."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth import (
    CALLER_HEADER,
    CALLER_SCOPE_KEY,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Caller,
    Role,
    VerifyCaller,
    sign_headers,
    verify_headers,
)
from shared.errors import Unauthorized

SECRET = "a test secret"
BODY = '{"content": "楼道灯坏了"}'.encode()
ALICE = Caller(sub="alice", role=Role.OPERATOR)
MALLORY = Caller(sub="mallory", role=Role.ADMIN)


async def verified(headers: list[tuple[str, str]]) -> tuple[Any, bytes]:
    """What VerifyCaller leaves in the scope, and the body the app reads."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["caller"] = scope[CALLER_SCOPE_KEY]
        seen["body"] = (await receive())["body"]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/tickets",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
    await VerifyCaller(app, SECRET)(scope, receive, None)  # type: ignore[arg-type]
    return seen["caller"], seen["body"]


def signed(caller: Caller) -> list[tuple[str, str]]:
    return [
        ("host", "intake"),
        *sign_headers(SECRET, caller, "POST", "/tickets", body=BODY).items(),
    ]


async def test_a_signed_request_names_its_caller_and_keeps_its_body() -> None:
    caller, body = await verified(signed(ALICE))
    assert caller == ALICE
    assert body == BODY


@pytest.mark.parametrize(
    "missing", [CALLER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, NONCE_HEADER]
)
@pytest.mark.parametrize("empty", [False, True])
async def test_without_a_header_of_the_signed_identity_it_is_refused(
    missing: str, empty: bool
) -> None:
    headers = [(k, "" if k == missing else v) for k, v in signed(ALICE) if k != missing or empty]
    caller, _ = await verified(headers)
    assert isinstance(caller, Unauthorized)
    assert "missing caller identity" in caller.detail


@pytest.mark.parametrize("name", [CALLER_HEADER, NONCE_HEADER])
async def test_a_repeated_header_counts_by_its_last_value_as_verify_headers_reads_it(
    name: str,
) -> None:
    alice, mallory = dict(signed(ALICE)), dict(signed(MALLORY))
    # a second value after the signed one: the signature does not cover it
    forged_last = [*signed(ALICE), (name, mallory[name])]
    caller, _ = await verified(forged_last)
    assert isinstance(caller, Unauthorized)
    with pytest.raises(Unauthorized):
        verify_headers(SECRET, forged_last, "POST", "/tickets", body=BODY)
    # the signed value last: verified, as verify_headers verifies it
    signed_last = [(name, mallory[name]), *signed(ALICE)]
    caller, _ = await verified(signed_last)
    assert caller == ALICE
    assert alice[name] != mallory[name]
