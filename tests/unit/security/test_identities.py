"""Identities in the gateway's database (issue 9, defects 4 and 7): short access tokens with
rotating refresh tokens, logout, revocation and disabling within 30 s, argon2id with old
hashes upgraded, a CLI, and limits on failed sign-ins, lookups and registrations."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.unit.security.conftest import ROOT, WATER_OUTAGE, Platform, running_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with running_platform(
        tmp_path_factory.mktemp("identities"), limit_registrations_per_account="3/minute"
    ) as running:
        yield running


def gateway_db(platform: Platform) -> Path:
    base = platform.settings.db_url.removeprefix("sqlite+aiosqlite:///")
    return Path(base).with_name("hotline-gateway.db")


def audit_rows(platform: Platform, action: str, subject: str) -> int:
    with sqlite3.connect(gateway_db(platform), timeout=30) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = ? AND subject = ?",
                (action, subject),
            ).fetchone()[0]
        )


def from_address(platform: Platform, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=platform.app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def add_user(platform: Platform, username: str, **more: Any) -> str:
    password = "长城-Password-2026"
    body = {"username": username, "name": "测试 用户", "role": "operator", "password": password}
    r = await platform.call("admin", "POST", "/api/v1/admin/users", json={**body, **more})
    assert r.status_code == 201, r.text
    return password


async def signed_in(platform: Platform, username: str, password: str) -> dict[str, Any]:
    r = await platform.login(username, password)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens['access_token']}"}


async def me(platform: Platform, tokens: dict[str, Any]) -> int:
    r = await platform.client.get("/api/v1/auth/me", headers=bearer(tokens))
    return r.status_code


async def test_access_tokens_last_at_most_30_minutes(platform: Platform) -> None:
    tokens = await signed_in(platform, "operator", "demo12345")
    assert 0 < tokens["expires_in"] <= 30 * 60
    assert tokens["refresh_token"]


async def test_logout_ends_the_session_at_once(platform: Platform) -> None:
    tokens = await signed_in(platform, "agency", "demo12345")
    assert await me(platform, tokens) == 200
    r = await platform.client.post("/api/v1/auth/logout", headers=bearer(tokens))
    assert r.status_code == 204, r.text
    assert await me(platform, tokens) == 401
    again = await platform.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


async def test_refresh_tokens_rotate_and_a_reused_one_ends_the_session(
    platform: Platform,
) -> None:
    first = await signed_in(platform, "supervisor", "demo12345")
    r = await platform.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert await me(platform, second) == 200
    stolen = await platform.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert stolen.status_code == 401
    platform.app.state.sessions.clear()
    assert await me(platform, second) == 401  # the whole session is revoked
    with sqlite3.connect(gateway_db(platform), timeout=30) as conn:
        [reuses] = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'session.reuse_detected' "
            "AND actor = 'supervisor'"
        ).fetchone()
    assert reuses == 1


async def test_a_disabled_user_is_refused_within_30_seconds(platform: Platform) -> None:
    password = await add_user(platform, "temp_clerk")
    tokens = await signed_in(platform, "temp_clerk", password)
    guard = platform.app.state.sessions
    now = [1000.0]
    guard.clock = lambda: now[0]
    guard.clear()
    try:
        assert await me(platform, tokens) == 200
        # disabled through another gateway: this one has the session remembered as active
        await platform.app.state.identities.disable("temp_clerk", actor="admin")
        now[0] += 29
        assert await me(platform, tokens) == 200
        now[0] += 1
        assert await me(platform, tokens) == 401
    finally:
        guard.clock = __import__("time").monotonic
    assert (await platform.login("temp_clerk", password)).status_code == 401


async def test_disabling_through_this_gateway_is_immediate(platform: Platform) -> None:
    password = await add_user(platform, "temp_clerk2")
    tokens = await signed_in(platform, "temp_clerk2", password)
    assert await me(platform, tokens) == 200
    r = await platform.call("admin", "POST", "/api/v1/admin/users/temp_clerk2/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert await me(platform, tokens) == 401
    assert audit_rows(platform, "user.disabled", "temp_clerk2") == 1


async def test_only_the_admin_manages_users(platform: Platform) -> None:
    for user in ("operator", "agency", "unit_water"):
        r = await platform.call(user, "GET", "/api/v1/admin/users")
        assert r.status_code == 403


async def test_an_authority_is_bound_to_an_industry_by_the_admin(platform: Platform) -> None:
    body = {"role": "authority"}
    r = await platform.call(
        "admin",
        "POST",
        "/api/v1/admin/users",
        json={"username": "water_auth", "name": "市水务局", "password": "x" * 12, **body},
    )
    assert r.status_code == 422 and "industry" in r.text
    await add_user(platform, "water_auth", role="authority", industry="water")
    r = await platform.call(
        "admin", "PUT", "/api/v1/admin/users/water_auth/binding", json={"industry": "gas"}
    )
    assert r.status_code == 200 and r.json()["industry"] == "gas"


async def test_old_password_hashes_are_upgraded_to_argon2id_at_sign_in(
    platform: Platform,
) -> None:
    def stored(username: str) -> str:
        with sqlite3.connect(gateway_db(platform), timeout=30) as conn:
            [found] = conn.execute(
                "SELECT password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return str(found)

    assert stored("unit_heping_urban").startswith("pbkdf2_sha256$")  # seeded, not yet used
    await signed_in(platform, "unit_heping_urban", "demo12345")
    assert stored("unit_heping_urban").startswith("$argon2id$")
    await signed_in(platform, "unit_heping_urban", "demo12345")  # and still signs in


async def test_the_cli_adds_and_disables_users(platform: Platform) -> None:
    env = {**os.environ, "HOTLINE_DB_URL": platform.settings.db_url, "HOTLINE_ENV": "test"}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "users", *args],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    added = cli(
        "add",
        "cli_user",
        "--name",
        "命令行用户",
        "--role",
        "unit",
        "--unit-id",
        "city-water",
        "--password-stdin",
        stdin="命令行-password-1\n",
    )
    assert added.returncode == 0, added.stderr
    tokens = await signed_in(platform, "cli_user", "命令行-password-1")
    assert tokens["user"]["unit_id"] == "city-water"
    assert cli("disable", "cli_user").returncode == 0
    assert (await platform.login("cli_user", "命令行-password-1")).status_code == 401
    refused = cli("bind", "cli_user", "--industry", "water")
    assert refused.returncode == 1 and "refused" in refused.stderr


async def test_failed_sign_ins_are_limited_per_user_with_retry_after_and_audit(
    platform: Platform,
) -> None:
    password = await add_user(platform, "target_user")
    async with from_address(platform, "203.0.113.10") as client:
        for _ in range(5):
            r = await client.post(
                "/api/v1/auth/login", json={"username": "target_user", "password": "guess"}
            )
            assert r.status_code == 401
        right = await client.post(
            "/api/v1/auth/login", json={"username": "target_user", "password": password}
        )
    assert right.status_code == 429, right.text
    assert int(right.headers["retry-after"]) > 0
    assert right.headers["content-type"].startswith("application/problem+json")
    assert audit_rows(platform, "login.failed", "target_user") == 5
    assert audit_rows(platform, "login.throttled", "target_user") == 1
    async with from_address(platform, "203.0.113.11") as elsewhere:  # per user, any address
        r = await elsewhere.post(
            "/api/v1/auth/login", json={"username": "target_user", "password": password}
        )
    assert r.status_code == 429


async def test_failed_sign_ins_are_limited_per_client_address(platform: Platform) -> None:
    async with from_address(platform, "203.0.113.20") as client:
        codes = [
            (
                await client.post(
                    "/api/v1/auth/login", json={"username": f"nobody{i}", "password": "x"}
                )
            ).status_code
            for i in range(31)
        ]
        assert codes[:30] == [401] * 30 and codes[30] == 429
        blocked = await client.post(
            "/api/v1/auth/login", json={"username": "operator", "password": "demo12345"}
        )
    assert blocked.status_code == 429
    async with from_address(platform, "203.0.113.21") as other:
        ok = await other.post(
            "/api/v1/auth/login", json={"username": "operator", "password": "demo12345"}
        )
    assert ok.status_code == 200


async def lookup(client: httpx.AsyncClient, token: str, ticket_id: str) -> int:
    r = await client.post(
        "/api/v1/intake/tickets/lookup",
        json={"ticket_id": ticket_id, "phone": "13900000000"},
        headers={"authorization": f"Bearer {token}"},
    )
    return r.status_code


async def test_citizen_lookups_are_limited_per_ticket_and_per_client(platform: Platform) -> None:
    token = platform.tokens["citizen_web"]
    codes = []
    for i in range(11):
        async with from_address(platform, f"198.51.100.{100 + i}") as client:
            codes.append(await lookup(client, token, "TJ20260101000001"))
    assert 429 not in codes[:10] and codes[10] == 429
    async with from_address(platform, "198.51.100.200") as client:
        many = [await lookup(client, token, f"TJ2026010200{i:04d}") for i in range(31)]
    assert 429 not in many[:30] and many[30] == 429


async def test_registrations_are_limited_per_channel_account(platform: Platform) -> None:
    body = {**WATER_OUTAGE, "channel": "web"}
    codes = [
        (
            await platform.call("citizen_web", "POST", "/api/v1/intake/tickets", json=body)
        ).status_code
        for _ in range(4)
    ]
    assert codes[:3] == [201] * 3 and codes[3] == 429, codes
    operator = await platform.call("operator", "POST", "/api/v1/intake/tickets", json=body)
    assert operator.status_code == 201  # operators are not a channel account
