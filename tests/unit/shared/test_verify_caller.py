"""``VerifyCaller`` (every service's check of the gateway's signature) reads the signed
identity's headers as ``verify_headers`` does: all four or refused, a repeated name's last
value, the body read once and given to the app as sent."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest

from shared import entropy
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
    signed_headers,
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


async def test_the_proxys_encoded_headers_are_sign_headers_as_they_go_on_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway's proxy sends ``signed_headers`` (bytes made as bytes): the same names,
    values and order as ``sign_headers``, the signature over the parts the services check
    (a line each: time, nonce, method, decoded path, query as sent, the body's SHA-256,
    the caller), and VerifyCaller takes them."""
    monkeypatch.setattr(time, "time", lambda: 1765000000.75)
    monkeypatch.setattr(entropy, "nonce", lambda: "bm9uY2Utb2YtMjItbGV0")
    pairs = signed_headers(SECRET, ALICE, "post", "/tickets/路", query=b"a=%E8%B7%AF", body=BODY)

    as_text = sign_headers(SECRET, ALICE, "post", "/tickets/路", query=b"a=%E8%B7%AF", body=BODY)
    assert pairs == [(name.encode(), value.encode()) for name, value in as_text.items()]
    values = dict(pairs)
    digest = hashlib.sha256(BODY).hexdigest().encode()
    message = b"\n".join(
        (b"1765000000", b"bm9uY2Utb2YtMjItbGV0", b"POST", "/tickets/路".encode(), b"a=%E8%B7%AF")
        + (digest, values[CALLER_HEADER.encode()])
    )
    assert [name for name, _ in pairs] == [
        CALLER_HEADER.encode(),
        TIMESTAMP_HEADER.encode(),
        NONCE_HEADER.encode(),
        b"x-hotline-body-sha256",
        SIGNATURE_HEADER.encode(),
    ]
    assert values[b"x-hotline-body-sha256"] == digest
    assert (
        values[SIGNATURE_HEADER.encode()]
        == hmac.new(SECRET.encode(), message, "sha256").hexdigest().encode()
    )
    sent = signed_headers(SECRET, ALICE, "POST", "/tickets", body=BODY)
    caller, _ = await verified([(name.decode(), value.decode()) for name, value in sent])
    assert caller == ALICE
