"""The SLA service's exactly-once promises on the real Kafka and PostgreSQL: two instances
on one database and bus, and a restart after a deadline passed while it was down."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from shared.auth import Caller, Role, SignedAs
from shared.settings import Settings
from tests.integration.conftest import System, eventually
from tests.integration.test_ticket_flow import assignment, clocks, register

pytestmark = pytest.mark.asyncio(loop_scope="module")

GAS_LEAK = {
    "channel": "phone",
    "type": "help",
    "matter_code": "GAS-001",
    "district": "120105",
    "content": "单元门口闻到燃气味，怀疑管道泄漏",
    "requester": {"name": "孙丽", "phone": "13700002222"},
}
ADMIN = Caller(sub="test-admin", role=Role.ADMIN)


async def move_clock(system: System, instance: str, seconds: float) -> None:
    """Move one SLA instance's clock directly (the second instance is not behind the
    gateway), signed as the gateway would sign it."""
    path = "/internal/clock"
    secret = Settings().service_secret
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.ports[instance]}") as c:
        r = await c.put(
            path,
            json={"advance_seconds": seconds},
            auth=SignedAs(secret, ADMIN),
        )
    assert r.status_code == 200, r.text


async def sla_events(system: System, ticket_ids: set[str]) -> Counter[tuple[str, str, int]]:
    """(type, ticket, level) → how many times it is on the bus."""
    seen = await system.events("hotline.sla")
    # distinct event ids: a crash between sending and marking the outbox row may put the
    # same event on the bus twice, which consumers dedupe; a second *event* would be a bug
    unique = {e.event_id: e for e in seen}.values()
    return Counter(
        (e.type, e.ticket_id or "", int(e.payload.get("level", 0)))
        for e in unique
        if e.ticket_id in ticket_ids
        and e.type in ("sla.overdue", "sla.escalated")
        and e.payload["clock"] == "acceptance"
    )


async def open_tickets(system: System, n: int) -> set[str]:
    ids = {(await register(system, GAS_LEAK))["ticket_id"] for _ in range(n)}

    async def all_clocked() -> bool:
        for tid in ids:
            if not any(c["kind"] == "acceptance" for c in await clocks(system, tid)):
                return False
        return True

    for tid in ids:
        await eventually(lambda t=tid: assignment(system, t, "dispatched"), "dispatch")
    await eventually(all_clocked, "acceptance clocks")
    return ids


async def test_two_instances_emit_each_overdue_exactly_once(system: System) -> None:
    system.start("sla", name="sla-2")
    await system.wait_ready("sla-2")
    ids = await open_tickets(system, 8)
    # both instances see time pass the 15-minute acceptance deadlines
    await asyncio.gather(move_clock(system, "sla", 16 * 60), move_clock(system, "sla-2", 16 * 60))

    async def all_overdue() -> bool:
        counts = await sla_events(system, ids)
        return all(counts[("sla.overdue", tid, 0)] >= 1 for tid in ids)

    await eventually(all_overdue, "every ticket overdue")
    await asyncio.sleep(1.0)  # room for a would-be duplicate from the other instance
    counts = await sla_events(system, ids)
    for tid in ids:
        assert counts[("sla.overdue", tid, 0)] == 1, (tid, counts)
        assert counts[("sla.escalated", tid, 1)] == 1, (tid, counts)
    system.kill("sla-2")


async def test_a_deadline_that_passed_while_the_service_was_down_is_acted_on_once(
    system: System,
) -> None:
    ids = await open_tickets(system, 3)
    system.kill("sla")
    # it comes back an hour later: every 15-minute acceptance deadline passed meanwhile
    later = {"HOTLINE_CLOCK_OFFSET_SECONDS": "3600"}
    system.start("sla", extra_env=later)
    await system.wait_ready("sla")

    async def all_overdue() -> bool:
        counts = await sla_events(system, ids)
        return all(counts[("sla.overdue", tid, 0)] == 1 for tid in ids)

    await eventually(all_overdue, "overdue after the restart")
    system.kill("sla")  # and once more: nothing is repeated
    system.start("sla", extra_env=later)
    await system.wait_ready("sla")
    await asyncio.sleep(1.0)
    counts = await sla_events(system, ids)
    assert all(counts[("sla.overdue", tid, 0)] == 1 for tid in ids), counts
    assert all(counts[("sla.escalated", tid, 1)] == 1 for tid in ids), counts
