"""The whole platform embedded for the security tests: every real service behind the real
gateway on SQLite and the in-process bus, the demo users signed in, and a few tickets
handled by different units — what an attacker or a curious clerk would have in front of
them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from hotline.embedded import embedded_app
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DEMO_PASSWORD = "demo12345"
USERS = (
    "operator",
    "agency",
    "admin",
    "authority",
    "govservice",
    "supervisor",
    "citizen_web",
    "unit_water",
    "unit_heping_housing",
    "unit_hexi_housing",
)

WATER_OUTAGE = {
    "channel": "wechat_mini",
    "type": "help",
    "matter_code": "WATER-001",
    "district": "120103",
    "address": "河西区友谊路街道某小区3号楼",
    "content": "从早上八点开始停水，家里有老人，请尽快恢复供水，身份证120101199001011239",
    "requester": {"name": "刘芳", "phone": "13920001234"},
}


def platform_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "db_url": f"sqlite+aiosqlite:///{tmp}/hotline.db",
        "clock": "controllable",
        "relay_poll_seconds": 0.05,
        "jwt_secret": "test-jwt-secret-of-at-least-32-bytes-long",
        "service_secret": "test-service-secret-of-at-least-32-bytes",
        "log_json": False,
        "password_hash_memory_kib": 8192,
    }
    values.update(overrides)
    return Settings(**values)


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 10) -> Any:
    """Poll ``probe`` until it returns something truthy (events cross the in-process bus)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@dataclass
class Platform:
    client: httpx.AsyncClient
    settings: Settings
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)
    tickets: dict[str, str] = field(default_factory=dict)  # unit user → a ticket it handles

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[user]}"}

    async def call(self, user: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**(self.auth(user) if user else {}), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)

    async def login(self, user: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"username": user, "password": password}
        )

    async def register(self, body: dict[str, Any] | None = None, user: str = "operator") -> str:
        r = await self.call(user, "POST", "/api/v1/intake/tickets", json=body or WATER_OUTAGE)
        assert r.status_code == 201, r.text
        return str(r.json()["ticket_id"])

    async def dispatched(self, ticket_id: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            r = await self.call("operator", "GET", f"/api/v1/dispatch/tickets/{ticket_id}")
            return r.json() if r.status_code == 200 and r.json().get("unit_id") else None

        found: dict[str, Any] = await eventually(probe, f"dispatch of {ticket_id}")
        return found


@asynccontextmanager
async def running_platform(tmp: Path, **overrides: Any) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp, **overrides)
    async with embedded_app(settings) as app:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            platform = Platform(client, settings, app)
            for user in USERS:
                r = await platform.login(user)
                assert r.status_code == 200, r.text
                platform.tokens[user] = r.json()["access_token"]
            yield platform


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path_factory.mktemp("platform")) as running:
        water = await running.register()
        await running.dispatched(water)
        running.tickets["unit_water"] = water
        yield running
