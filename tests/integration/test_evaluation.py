"""Evaluation, supervision and monitoring on the real Kafka and PostgreSQL, every service
its own process, driven through the gateway: SLA escalations open each supervision exactly
once (written → the unit's parent), a burst of tickets makes exactly one hotspot, and a
dissatisfied ticket goes round once, with an exemption that leaves the unit's score."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from tests.integration.conftest import System, eventually
from tests.integration.test_overdue import REPLY, move_sla_clock, redeliver
from tests.integration.test_ticket_flow import assignment, clocks, register

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOUSE_DANGER = {
    "channel": "phone",
    "type": "help",
    "matter_code": "HOUSE-003",
    "district": "120101",
    "content": "楼道墙体出现大面积裂缝，担心房屋结构安全",
    "requester": {"name": "孙伟", "phone": "13700002222"},
}


async def evaluation_events(system: System, kind: str, **match: Any) -> list[Any]:
    return [
        e
        for e in await system.events("hotline.evaluation")
        if e.type == kind and all(e.payload.get(k) == v for k, v in match.items())
    ]


async def test_escalations_open_each_supervision_exactly_once(system: System) -> None:
    tid = (await register(system, HOUSE_DANGER))["ticket_id"]
    dispatched = await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")
    assert dispatched["unit_id"] == "120101-housing"

    async def clocked() -> bool:
        """The SLA has handled the dispatch: the acceptance clock runs, the dispatch clock
        (5 min for a life-safety case) has stopped. Moving the clock before that would
        also make the dispatch clock overdue, a supervision of its own."""
        found = {c["kind"]: c["state"] for c in await clocks(system, tid)}
        return found.get("acceptance") == "running" and found.get("dispatch") != "running"

    await eventually(clocked, "the SLA's clocks after the dispatch")
    await move_sla_clock(system, 16 * 60)  # acceptance (15 min) overdue → level 1
    [ticket_level] = await eventually(
        lambda: evaluation_events(system, "supervision.opened", ticket_id=tid), "level 1"
    )
    assert ticket_level.payload["kind"] == "ticket"
    assert ticket_level.payload["unit_id"] == "120101-housing"

    await move_sla_clock(system, 16 * 60)  # one more period → level 2, written, to the parent

    async def both() -> list[Any] | None:
        found = await evaluation_events(system, "supervision.opened", ticket_id=tid)
        return found if len(found) >= 2 else None

    await eventually(both, "level 2")
    escalations = [
        e
        for e in await system.events("hotline.sla")
        if e.type == "sla.escalated" and e.ticket_id == tid
    ]
    assert sorted(e.payload["level"] for e in escalations) == [1, 2]
    for envelope in escalations:  # a redelivery changes nothing
        await redeliver(system, envelope)
    await move_sla_clock(system, 3600)
    await asyncio.sleep(1.0)  # room for a would-be duplicate to show up on the bus
    opened = await evaluation_events(system, "supervision.opened", ticket_id=tid)
    assert sorted((e.payload["kind"], e.payload["unit_id"]) for e in opened) == [
        ("ticket", "120101-housing"),
        ("written", "city-housing"),
    ]

    async with system.client("agency") as agency:
        r = await agency.get("/api/v1/evaluation/supervisions", params={"ticket_id": tid})
    assert r.json()["count"] == 2
    ticket_supervision = next(s for s in r.json()["data"] if s["kind"] == "ticket")
    async with system.client("unit_heping_housing") as unit:
        answer = await unit.post(
            f"/api/v1/evaluation/supervisions/{ticket_supervision['supervision_id']}/answer",
            json={"answer": "已安排专人现场排查，设置警示区域"},
        )
        assert answer.status_code == 200, answer.text
        mine = await unit.get("/api/v1/evaluation/supervisions", params={"state": "open"})
    assert [s["kind"] for s in mine.json()["data"] if s["ticket_id"] == tid] == ["written"]
    async with system.client("unit_water") as other:
        r = await other.get(
            f"/api/v1/evaluation/supervisions/{ticket_supervision['supervision_id']}"
        )
    assert r.status_code == 403


async def test_a_burst_of_tickets_makes_exactly_one_hotspot(system: System) -> None:
    body = {
        **HOUSE_DANGER,
        "type": "complaint",
        "matter_code": "POWER-001",
        "district": "120110",
        "content": "整个小区停电三个小时了",
    }
    ids = [(await register(system, body))["ticket_id"] for _ in range(11)]

    async def hotspot() -> list[Any]:
        return await evaluation_events(
            system, "monitor.hotspot", matter_code="POWER-001", district="120110"
        )

    [event] = await eventually(hotspot, "monitor.hotspot")
    assert event.payload["ticket_count"] >= 10
    assert set(event.payload["ticket_ids"]) <= set(ids)
    await asyncio.sleep(1.0)  # room for a would-be duplicate to show up on the bus
    assert len(await hotspot()) == 1

    async def listed() -> dict[str, Any] | None:
        async with system.client("agency") as agency:
            r = await agency.get("/api/v1/evaluation/hotspots", params={"active": "true"})
        rows = [h for h in r.json()["data"] if h["matter_code"] == "POWER-001"]
        return rows[0] if rows and rows[0]["ticket_count"] == 11 else None

    row = await eventually(listed, "hotspot with all 11 tickets")
    assert sorted(row["ticket_ids"]) == sorted(ids)


async def complete(system: System, tid: str) -> None:
    async with system.client("unit_water") as unit:
        r = await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
        assert r.status_code == 200, r.text
        contacted = datetime.fromisoformat(r.json()["accepted_at"])
        r = await unit.post(
            f"/api/v1/dispatch/tickets/{tid}/complete",
            json={**REPLY, "contacted_at": contacted.isoformat()},
        )
        assert r.status_code == 200, r.text


async def revisit(system: System, tid: str, round_: int) -> dict[str, Any] | None:
    async with system.client("operator") as op:
        r = await op.get(f"/api/v1/evaluation/revisits/{tid}")
    if r.status_code == 200 and r.json()["round"] == round_ and r.json()["state"] == "open":
        return r.json()  # type: ignore[no-any-return]
    return None


async def test_a_dissatisfied_ticket_is_sent_back_once_and_exempted(system: System) -> None:
    body = {**HOUSE_DANGER, "matter_code": "WATER-001", "district": "120103", "content": "停水"}
    tid = (await register(system, body))["ticket_id"]
    await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")
    await complete(system, tid)
    await eventually(lambda: revisit(system, tid, 1), "revisit round 1")
    dissatisfied = {"rating": "dissatisfied", "resolved": False, "note": "水压仍然很低"}
    async with system.client("operator") as op:
        r = await op.post(f"/api/v1/evaluation/revisits/{tid}", json=dissatisfied)
    assert r.json()["state"] == "awaiting_decision", r.text
    async with system.client("agency") as agency:
        r = await agency.post(
            f"/api/v1/evaluation/revisits/{tid}/decision",
            json={"decision": "send_back", "reason": "水压问题未解决"},
        )
        assert r.status_code == 200, r.text
        again = await agency.post(
            f"/api/v1/evaluation/revisits/{tid}/decision",
            json={"decision": "send_back", "reason": "again"},
        )
    assert again.status_code == 409

    async def round_two() -> dict[str, Any] | None:
        found = await assignment(system, tid, "dispatched")
        return found if found and found.get("round") == 2 else None

    await eventually(round_two, "re-dispatch (round 2) by the dispatch service")
    await complete(system, tid)
    await eventually(lambda: revisit(system, tid, 2), "revisit round 2")
    async with system.client("operator") as op:
        r = await op.post(f"/api/v1/evaluation/revisits/{tid}", json=dissatisfied)
    assert r.json()["state"] == "closed"  # the second rating is final
    async with system.client("agency") as agency:
        r = await agency.post(
            f"/api/v1/evaluation/revisits/{tid}/decision",
            json={"decision": "send_back", "reason": "again"},
        )
    assert r.status_code == 409

    async with system.client("unit_water") as unit:
        filed = await unit.post(
            "/api/v1/evaluation/exemptions",
            data={"ticket_id": tid, "explanation": "管网改造期间水压受限，已书面告知"},
            files=[("files", ("告知书.pdf", b"%PDF-1.4 notice", "application/pdf"))],
        )
    assert filed.status_code == 201, filed.text
    async with system.client("agency") as agency:
        r = await agency.post(
            f"/api/v1/evaluation/exemptions/{filed.json()['exemption_id']}/decision",
            json={"decision": "accepted", "reason": "确已尽责"},
        )
        assert r.status_code == 200, r.text
        scores = await agency.get(
            "/api/v1/evaluation/scores/city-water", params={"explain": "true"}
        )
        csv = await agency.get("/api/v1/evaluation/scores.csv")
    [water] = scores.json()["data"]
    counted = {t["ticket_id"]: t["outcome"] for t in water["satisfaction"]["tickets"]}
    assert counted[tid] == "exempted"
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rehandles = await evaluation_events(system, "evaluation.rehandle_requested", ticket_id=tid)
    assert len(rehandles) == 1
