"""Body-size limits at the gateway (issue 9, defect 6): refused with 413 problem+json from
``Content-Length`` before a byte is read, or counted while streaming; uploads have their own
limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.security.conftest import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")
MiB = 1024 * 1024


def assert_413(r: Any) -> None:
    assert r.status_code == 413, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 413


async def test_an_oversized_login_body_is_refused_unread(platform: Platform) -> None:
    body = b'{"username": "operator", "password": "' + b"x" * (2 * MiB) + b'"}'
    r = await platform.client.post(
        "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert_413(r)


async def test_a_declared_length_is_refused_before_reading(platform: Platform) -> None:
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1  # the client would send 200 MiB; 40 × 64 KiB stand in for them
        return {"type": "http.request", "body": b"x" * 65536, "more_body": reads < 40}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login",
        "raw_path": b"/api/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(200 * MiB).encode()),
        ],
        "client": ("198.51.100.9", 1234),
        "server": ("gateway", 80),
    }
    await platform.app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert reads == 0


async def test_a_streamed_body_is_counted_and_cut_off(platform: Platform) -> None:
    produced = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(200):
            produced += 1
            yield b"x" * (256 * 1024)

    r = await platform.call(
        "operator",
        "POST",
        "/api/v1/intake/tickets",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert_413(r)
    assert produced < 10  # 1 MiB and a little: the other 49 MiB were never read


async def test_uploads_have_their_own_limit(platform: Platform) -> None:
    limit = platform.settings.max_upload_bytes
    assert limit > platform.settings.max_body_bytes
    small = await platform.call(
        "unit_water",
        "POST",
        "/api/v1/evaluation/exemptions",
        files={"files": ("证明.pdf", b"%PDF-1.4 " + b"0" * (2 * MiB), "application/pdf")},
        data={"ticket_id": "TJ20260101000001", "kind": "force_majeure", "reason": "暴雨"},
    )
    assert small.status_code != 413, small.text  # 2 MiB upload passes the gateway
    big = await platform.call(
        "unit_water",
        "POST",
        "/api/v1/evaluation/exemptions",
        files={"files": ("证明.pdf", b"0" * (limit + 1), "application/pdf")},
        data={"ticket_id": "TJ20260101000001", "kind": "force_majeure", "reason": "暴雨"},
    )
    assert_413(big)
