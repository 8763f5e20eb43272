"""The real services embedded (``make run``): one bad event never stops the platform, and a
consumer that starts after an event was published still receives it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hotline.embedded import embedded_app, settle
from shared.settings import Settings

WATER = {
    "channel": "phone",
    "type": "help",
    "matter_code": "WATER-001",
    "district": "120103",
    "address": "河西区友谊路街道某小区3号楼",
    "requester": {"name": "刘芳", "phone": "13920001234"},
}


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Path]]:
    settings = Settings(
        env="test",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hotline.db'}",
        jwt_secret="embedded-test-jwt-secret-of-32-bytes-or-more",
    )
    async with embedded_app(settings) as app:
        # intake learns the catalog from dispatch's events: let that land before registering
        await settle(app)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hotline"
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "operator", "password": "demo12345"}
            )
            client.headers["authorization"] = f"Bearer {login.json()['access_token']}"
            yield app, client, tmp_path / "var"


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


async def register(client: httpx.AsyncClient, content: str) -> dict[str, Any]:
    r = await client.post("/api/v1/intake/tickets", json={**WATER, "content": content})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_flagged_ticket_is_handled_and_later_tickets_are_still_dispatched(
    system: tuple[FastAPI, httpx.AsyncClient, Path],
) -> None:
    app, client, var = system
    flagged = await register(client, "家里停水三天了，再不来修我就不想活了")
    normal = await register(client, "从早上八点开始停水，家里有老人")
    await settle(app)

    for ticket in (flagged, normal):
        r = await client.get(f"/api/v1/intake/tickets/{ticket['ticket_id']}")
        assert r.json()["status"] == "dispatched", r.text
    with sqlite3.connect(var / "hotline-evaluation.db") as conn:
        rows = dict(conn.execute("SELECT ticket_id, flagged FROM tickets").fetchall())
    assert rows == {flagged["ticket_id"]: 1, normal["ticket_id"]: 0}
    assert count(var / "hotline-evaluation.db", "dead_letters") == 0


async def test_evaluation_knows_every_catalog_unit_dispatch_announced_before_it_started(
    system: tuple[FastAPI, httpx.AsyncClient, Path],
) -> None:
    app, _, var = system
    await settle(app)

    units = count(var / "hotline-dispatch.db", "units")
    assert units > 100
    assert count(var / "hotline-evaluation.db", "units") == units
