"""The gateway's signature on a request to a service (issue 9, defect 11): it covers method,
path, query, a digest of the body, the time and a nonce, and a replay is refused."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from gateway.proxy import Upstream, Upstreams
from tests.unit.security.conftest import WATER_OUTAGE, Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.method, str(request.url), dict(request.headers), body))
        return await self.inner.handle_async_request(request)


async def captured(platform: Platform, method: str, path: str, **kw: object) -> tuple:  # type: ignore[type-arg]
    """What the gateway sent to intake for one call, and the transport to resend it on."""
    upstreams: Upstreams = platform.app.state.upstreams
    original = upstreams.services["intake"]
    recording = Recording(original.transport)
    upstreams.services["intake"] = dataclasses.replace(original, transport=recording)
    try:
        r = await platform.call("operator", method, path, **kw)  # type: ignore[arg-type]
        assert r.status_code < 300, r.text
    finally:
        upstreams.services["intake"] = original
    [(m, url, headers, body)] = recording.sent
    return m, url, headers, body, original


async def resend(
    upstream: Upstream, method: str, url: str, headers: dict[str, str], body: bytes
) -> httpx.Response:
    headers = {k: v for k, v in headers.items() if k not in ("content-length",)}
    async with httpx.AsyncClient(transport=upstream.transport) as raw:
        return await raw.request(method, url, headers=headers, content=body)


async def test_a_signed_request_cannot_be_replayed(platform: Platform) -> None:
    method, url, headers, body, upstream = await captured(
        platform, "GET", "/api/v1/intake/tickets?limit=1"
    )
    again = await resend(upstream, method, url, headers, body)
    assert again.status_code == 401, again.text
    assert "replay" in again.json()["detail"]


async def test_the_query_string_is_signed(platform: Platform) -> None:
    method, url, headers, body, upstream = await captured(
        platform, "GET", "/api/v1/intake/tickets?limit=1"
    )
    changed = await resend(upstream, method, url.replace("limit=1", "limit=200"), headers, body)
    assert changed.status_code == 401, changed.text


async def test_the_body_is_signed(platform: Platform) -> None:
    method, url, headers, body, upstream = await captured(
        platform, "POST", "/api/v1/intake/tickets", json=WATER_OUTAGE
    )
    forged = body.replace("刘芳".encode(), "张伟".encode())
    assert forged != body
    changed = await resend(upstream, method, url, headers, forged)
    assert changed.status_code == 401, changed.text


async def test_the_signature_is_the_hmac_sha256_of_the_request_lines() -> None:
    # a known answer: the gateway and the services of another version still agree
    from shared.auth import _signature

    signature = _signature(
        "secret",
        timestamp="1767225600",
        nonce="n1",
        method="post",
        path="/tickets",
        query=b"",
        digest="d" * 64,
        caller="Y2FsbGVy",
    )
    assert signature == "9bb3812138f7660de3563c29d7aab9ea220184906b54760afc2075ce4b92e9d0"
