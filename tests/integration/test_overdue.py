"""Deadlines on the real Kafka and PostgreSQL: an unmet deadline produces exactly one
sla.overdue; killing the SLA service loses no deadline and no event; an event delivered
twice has one effect. The SLA clock is moved, never waited for."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import Envelope
from tests.integration.conftest import System, eventually
from tests.integration.test_ticket_flow import assignment, clocks, register

pytestmark = pytest.mark.asyncio(loop_scope="module")

GAS_LEAK = {
    "channel": "phone",
    "type": "help",
    "matter_code": "GAS-001",
    "district": "120101",
    "content": "楼道里有很重的煤气味，担心燃气泄漏",
    "requester": {"name": "赵敏", "phone": "13600001111"},
}
BURST_PIPE = {
    **GAS_LEAK,
    "matter_code": "WATER-001",
    "district": "120104",
    "content": "小区主水管爆裂，整栋楼停水",
}


async def move_sla_clock(system: System, seconds: float) -> datetime:
    async with system.client("admin") as admin:
        r = await admin.put("/api/v1/sla/internal/clock", json={"advance_seconds": seconds})
    assert r.status_code == 200, r.text
    return datetime.fromisoformat(r.json()["now"])


async def overdue_events(system: System, ticket_id: str, clock: str) -> list:  # type: ignore[type-arg]
    """The ``sla.overdue`` events of one clock of one ticket. (Tests in this module share
    the SLA service and its moved clock, so other clocks may be overdue as well.)"""
    events = await system.events("hotline.sla")
    unique = {e.event_id: e for e in events}.values()  # delivery is at-least-once
    return [
        e
        for e in unique
        if e.type == "sla.overdue" and e.ticket_id == ticket_id and e.payload["clock"] == clock
    ]


async def test_an_unmet_acceptance_deadline_produces_exactly_one_overdue(system: System) -> None:
    tid = (await register(system, GAS_LEAK))["ticket_id"]
    await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")

    async def acceptance_clock() -> dict | None:  # type: ignore[type-arg]
        return next((c for c in await clocks(system, tid) if c["kind"] == "acceptance"), None)

    clock = await eventually(acceptance_clock, "acceptance clock")
    assert clock["period"] == "15m"
    assert await overdue_events(system, tid, "acceptance") == []

    await move_sla_clock(system, 16 * 60)
    await eventually(lambda: overdue_events(system, tid, "acceptance"), "sla.overdue")
    later = await move_sla_clock(system, 60 * 60)  # much later: still the one event
    await asyncio.sleep(1.0)  # give a would-be duplicate time to appear on the bus
    [overdue] = await overdue_events(system, tid, "acceptance")
    assert overdue.payload["clock"] == "acceptance"
    assert overdue.payload["unit_id"] == "city-gas"
    # How late: from the deadline to when the SLA saw it pass. The service clock runs on in
    # real time, so that is the minute moved past the deadline plus however long the test
    # took since the dispatch (seconds on a loaded machine), and no later than the moment
    # the event was seen, before the clock moved on by the hour.
    deadline = datetime.fromisoformat(clock["deadline"])
    detected = datetime.fromisoformat(overdue.payload["detected_at"])
    assert overdue.payload["late_seconds"] == (detected - deadline).total_seconds()
    assert timedelta(minutes=1) <= detected - deadline <= later - timedelta(hours=1) - deadline
    state = next(c for c in await clocks(system, tid) if c["kind"] == "acceptance")
    assert state["state"] == "overdue" and state["overdue_at"] is not None


async def test_killing_the_sla_service_loses_no_deadline_and_no_event(system: System) -> None:
    tid = (await register(system, BURST_PIPE))["ticket_id"]
    await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")

    async def has_acceptance() -> bool:
        return any(c["kind"] == "acceptance" for c in await clocks(system, tid))

    await eventually(has_acceptance, "acceptance clock")
    system.kill("sla")
    # While the SLA service is down the unit accepts: the event must wait on the bus.
    async with system.client("unit_water") as unit:
        r = await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
    assert r.status_code == 200, r.text
    accepted_at = datetime.fromisoformat(r.json()["accepted_at"])

    system.start("sla")
    await system.wait_ready("sla")

    async def completion_clock() -> dict | None:  # type: ignore[type-arg]
        return next((c for c in await clocks(system, tid) if c["kind"] == "completion"), None)

    completion = await eventually(completion_clock, "completion clock after restart")
    assert datetime.fromisoformat(completion["deadline"]) == accepted_at + timedelta(hours=24)

    # the restarted service's clock runs from real time again; move it past the deadline
    await move_sla_clock(system, 24 * 3600 + 60)
    [overdue] = await eventually(
        lambda: overdue_events(system, tid, "completion"), "completion overdue"
    )
    assert overdue.payload["clock"] == "completion"
    system.kill("sla")
    system.start("sla")
    await system.wait_ready("sla")
    await move_sla_clock(system, 48 * 3600)
    await asyncio.sleep(1.0)
    assert len(await overdue_events(system, tid, "completion")) == 1


async def _committed(system: System, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=system.infra["kafka"])
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{system.prefix}{group}")
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


REPLY = {
    "policy_basis": "《天津市供水用水条例》第二十条",
    "progress": "抢修队已到场更换破损管段",
    "result": "已于当日恢复供水",
    "process": "接单后两小时内到场，关闭阀门、更换管段、冲洗消毒后恢复供水",
    "feedback": "诉求人表示认可",
}


async def redeliver(system: System, envelope: Envelope) -> tuple[str, int, int]:
    """Publish the very same envelope (same event_id) again, as a redelivery would."""
    producer = AIOKafkaProducer(bootstrap_servers=system.infra["kafka"])
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            f"{system.prefix}{envelope.topic}", envelope.to_json(), key=envelope.key.encode()
        )
    finally:
        await producer.stop()
    return meta.topic, meta.partition, meta.offset


async def consumed(system: System, group: str, where: tuple[str, int, int]) -> None:
    """Wait until ``group`` has committed past the message at ``where``."""
    topic, partition, offset = where

    async def past() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=system.infra["kafka"])
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(f"{system.prefix}{group}")
        finally:
            await admin.close()
        committed = {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
        return committed.get((topic, partition), -1) > offset

    await eventually(past, f"{group} to consume the redelivered event")


async def test_an_event_delivered_twice_has_one_effect(system: System) -> None:
    tid = (await register(system, BURST_PIPE))["ticket_id"]
    first = await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")
    async with system.client("unit_water") as unit:
        accepted = await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
        contacted = datetime.fromisoformat(accepted.json()["accepted_at"])
        done = await unit.post(
            f"/api/v1/dispatch/tickets/{tid}/complete",
            json={**REPLY, "contacted_at": contacted.isoformat()},
        )
    assert done.status_code == 200, done.text

    async def revisit() -> dict | None:  # type: ignore[type-arg]
        async with system.client("operator") as op:
            r = await op.get(f"/api/v1/evaluation/revisits/{tid}")
        return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]

    opened = await eventually(revisit, "revisit opened")
    tickets = await system.events("hotline.tickets")
    [registered] = [e for e in tickets if e.type == "ticket.registered" and e.ticket_id == tid]
    [completed] = [e for e in tickets if e.type == "ticket.completed" and e.ticket_id == tid]

    at_registered = await redeliver(system, registered)
    at_completed = await redeliver(system, completed)
    for group in ("dispatch", "sla"):
        await consumed(system, group, at_registered)
    for group in ("sla", "evaluation"):
        await consumed(system, group, at_completed)

    assert (await assignment(system, tid, "completed") or {})["dispatched_at"] == (
        first["dispatched_at"]
    )
    assert await revisit() == opened
    tickets = await system.events("hotline.tickets")
    assert len([e for e in tickets if e.type == "ticket.dispatched" and e.ticket_id == tid]) == 1
    sla = await system.events("hotline.sla")
    assert sorted(
        e.payload["clock"] for e in sla if e.type == "sla.deadline_set" and e.ticket_id == tid
    ) == ["acceptance", "completion", "dispatch"]
