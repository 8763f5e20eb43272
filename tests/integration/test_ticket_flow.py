"""A ticket's path through the gateway, on the real PostgreSQL and Kafka, with every
service in its own process."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from tests.integration.conftest import System, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

WATER_OUTAGE = {
    "channel": "wechat_mini",
    "type": "help",
    "matter_code": "WATER-001",
    "district": "120103",
    "address": "河西区友谊路街道某小区3号楼",
    "content": "从早上八点开始停水，家里有老人，请尽快恢复供水",
    "requester": {"name": "刘芳", "phone": "13920001234"},
}


async def register(system: System, body: dict) -> dict:  # type: ignore[type-arg]
    async with system.client("operator") as op:
        r = await op.post("/api/v1/intake/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def assignment(system: System, ticket_id: str, state: str) -> dict | None:  # type: ignore[type-arg]
    async with system.client("operator") as op:
        r = await op.get(f"/api/v1/dispatch/tickets/{ticket_id}")
    if r.status_code == 200 and r.json()["state"] == state:
        return r.json()  # type: ignore[no-any-return]
    return None


async def clocks(system: System, ticket_id: str, user: str = "operator") -> list[dict]:  # type: ignore[type-arg]
    async with system.client(user) as client:
        r = await client.get(f"/api/v1/sla/tickets/{ticket_id}/clocks")
    return r.json()["clocks"] if r.status_code == 200 else []  # type: ignore[no-any-return]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_ticket_is_registered_dispatched_accepted_and_clocked(system: System) -> None:
    ticket = await register(system, WATER_OUTAGE)
    tid = ticket["ticket_id"]
    assert tid.startswith("TJ") and len(tid) == 16
    assert ticket["urgency"] == "livelihood"  # the matter's default class

    dispatched = await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")
    assert dispatched["unit_id"] == "city-water"
    assert dispatched["unit_name"] == "天津水务集团有限公司"

    async with system.client("unit_water") as unit:
        r = await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
    assert r.status_code == 200, r.text
    accepted_at = ts(r.json()["accepted_at"])

    async def completion_clock() -> list[dict] | None:  # type: ignore[type-arg]
        found = await clocks(system, tid)
        return found if any(c["kind"] == "completion" for c in found) else None

    found = {c["kind"]: c for c in await eventually(completion_clock, "completion clock")}
    dispatch_clock, acceptance, completion = (
        found["dispatch"],
        found["acceptance"],
        found["completion"],
    )
    assert dispatch_clock["state"] == "met"
    assert acceptance["state"] == "met"
    assert ts(acceptance["deadline"]) - ts(acceptance["started_at"]) == timedelta(minutes=30)
    assert ts(acceptance["started_at"]) == ts(dispatched["dispatched_at"])
    assert completion["state"] == "running"
    assert ts(completion["started_at"]) == accepted_at
    assert ts(completion["deadline"]) == accepted_at + timedelta(hours=24)


async def test_refusals_say_why_and_leave_nothing_behind(system: System) -> None:
    ticket = await register(system, WATER_OUTAGE)
    tid = ticket["ticket_id"]
    await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")

    async with system.client("unit_heping_housing") as other_unit:
        r = await other_unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")

    async with system.client("unit_water") as unit:
        assert (await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")).status_code == 200
        again = await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
    assert again.status_code == 409
    assert "accepted" in again.json()["detail"]

    async with system.client("operator") as op:
        before = (await op.get("/api/v1/intake/tickets", params={"limit": 1})).json()["count"]
        bad = [
            ({**WATER_OUTAGE, "channel": "fax"}, "channel"),
            ({**WATER_OUTAGE, "requester": {"name": "刘芳"}}, "requester.phone"),
            ({**WATER_OUTAGE, "requester": {"name": "刘芳", "phone": "12345"}}, "requester.phone"),
            ({**WATER_OUTAGE, "matter_code": "NOPE-404"}, "matter_code"),
            ({**WATER_OUTAGE, "content": "停" * 4001}, "content"),
        ]
        for body, field in bad:
            r = await op.post("/api/v1/intake/tickets", json=body)
            assert r.status_code == 422, (field, r.text)
            assert field in [e["field"] for e in r.json()["errors"]], r.text
        r = await op.post(
            "/api/v1/intake/tickets",
            content=b'{"channel": "phone",',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
        after = (await op.get("/api/v1/intake/tickets", params={"limit": 1})).json()["count"]
    assert after == before  # no half-written row


async def test_a_service_refuses_calls_that_bypass_the_gateway(system: System) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.ports['intake']}") as raw:
        r = await raw.post("/tickets", json=WATER_OUTAGE)
        assert r.status_code == 401
        forged = await raw.post(
            "/tickets",
            json=WATER_OUTAGE,
            headers={
                "x-hotline-caller": "eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIn0=",
                "x-hotline-timestamp": "9999999999",
                "x-hotline-signature": "0" * 64,
            },
        )
        assert forged.status_code == 401
    async with system.client() as anonymous:
        assert (await anonymous.get("/api/v1/intake/tickets")).status_code == 401
