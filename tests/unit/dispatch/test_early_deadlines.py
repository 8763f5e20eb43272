"""The SLA's dispatch deadline (sla.deadline_set, topic hotline.sla) and the registration
that opens the work order (ticket.registered, topic hotline.tickets) come in either order:
a deadline heard of first waits for its registration and is on the work order from its
first moment, read-only in the API (派单时限, Art 6), by the set-based handlers and one by
one alike."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from services.dispatch.handlers.read_models import settle_stranded
from services.dispatch.models import early_dispatch_deadlines
from tests.unit.dispatch.conftest import MINUTE, T0, Harness

UNCLEAR = "请帮忙处理一下这个情况"  # no suggestion is confident: the manual queue
HOUR = 60 * MINUTE

WAYS = pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "one-by-one"])


def handled(service: Harness, *, set_based: bool) -> None:
    if not set_based:
        service.ctx.extras["consumer"].many = {}


def when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def waiting(service: Harness) -> list[tuple[str, int]]:
    async with service.ctx.db.engine.connect() as conn:
        rows = await conn.execute(select(early_dispatch_deadlines))
        return sorted((r.ticket_id, r.round) for r in rows)


@WAYS
async def test_a_dispatch_deadline_heard_of_before_its_ticket_is_not_lost(
    service: Harness, set_based: bool
) -> None:
    handled(service, set_based=set_based)
    routed, queued = service.next_id(), service.next_id()
    await service.deadline(routed, "dispatch", T0 + 5 * MINUTE, started_at=T0)
    await service.deadline(queued, "dispatch", T0 + 20 * HOUR, started_at=T0)
    # the SLA's later word on the same clock (a recomputed deadline) replaces the first
    await service.deadline(queued, "dispatch", T0 + 24 * HOUR, started_at=T0)

    await service.register("WATER-001", "120103", ticket_id=routed)
    await service.register(
        "NEW-404", "120101", content=UNCLEAR, urgency="general", ticket_id=queued
    )

    ticket = await service.ticket(routed)
    assert ticket["state"] == "dispatched"
    assert when(ticket["dispatch_deadline"]) == T0 + 5 * MINUTE
    # the operator sees it in the manual queue (Art 6: dispatch within 24 h)
    queue = (await service.get("operator", "/tickets", state="pending_dispatch")).json()
    assert [(t["ticket_id"], when(t["dispatch_deadline"])) for t in queue["data"]] == [
        (queued, T0 + 24 * HOUR)
    ]
    assert await waiting(service) == []  # taken by the registrations


@WAYS
async def test_an_early_deadline_of_another_round_or_ticket_changes_no_work_order(
    service: Harness, set_based: bool
) -> None:
    handled(service, set_based=set_based)
    tid, never = service.next_id(), service.next_id()
    await service.deadline(tid, "dispatch", T0 + 2 * HOUR, started_at=T0, round_=2)
    # the other clocks start from dispatch's own events: one before its ticket is no clock
    # of a work order dispatch will open, and is not kept
    await service.deadline(tid, "acceptance", T0 + 3 * HOUR, started_at=T0)
    await service.deadline(never, "dispatch", T0 + 4 * HOUR, started_at=T0)

    await service.register("WATER-001", "120103", ticket_id=tid)

    ticket = await service.ticket(tid)
    assert ticket["dispatch_deadline"] is None  # a first round takes no second round's
    assert ticket["deadline_source"] == "policy"  # nor an acceptance deadline
    assert when(ticket["acceptance_deadline"]) == T0 + 30 * MINUTE
    assert await waiting(service) == [(never, 1)]  # waits for a registration


@WAYS
async def test_a_dispatch_deadline_after_its_ticket_is_set_as_before(
    service: Harness, set_based: bool
) -> None:
    handled(service, set_based=set_based)
    tid = await service.register("WATER-001", "120103")
    assert (await service.ticket(tid))["dispatch_deadline"] is None  # not known yet
    await service.deadline(tid, "dispatch", T0 + 5 * MINUTE, started_at=T0)
    await service.deadline(tid, "dispatch", T0 + 9 * MINUTE, started_at=T0, round_=2)

    assert when((await service.ticket(tid))["dispatch_deadline"]) == T0 + 5 * MINUTE
    assert await waiting(service) == []  # the ticket is known: nothing waits


async def test_the_dispatch_deadline_is_documented_in_the_openapi(service: Harness) -> None:
    schema = service.app.openapi()["components"]["schemas"]["AssignmentPublic"]
    field = schema["properties"]["dispatch_deadline"]
    assert "派单时限" in field["description"] and "Read-only" in field["description"]


async def test_a_deadline_left_waiting_beside_its_work_order_is_settled(service: Harness) -> None:
    """Two instances: one keeps a deadline while the other, not yet committed, opens the
    work order and takes nothing (tests/integration/test_set_based_statements.py runs that
    on PostgreSQL). What is left waiting beside a work order is settled: a deadline of its
    round it has none of goes on, a stale or another round's goes without effect."""
    stranded, newer, second = [await service.register("WATER-001", "120103") for _ in "abc"]
    await service.deadline(newer, "dispatch", T0 + 9 * MINUTE, started_at=T0)
    left = {stranded: (1, 5), newer: (1, 7), second: (2, 8)}  # ticket: round, minutes
    async with service.ctx.db.engine.begin() as conn:
        await conn.execute(
            early_dispatch_deadlines.insert(),
            [
                {"ticket_id": t, "round": r, "deadline": T0 + m * MINUTE}
                for t, (r, m) in left.items()
            ],
        )

    await settle_stranded(service.ctx)

    got = [when((await service.ticket(t))["dispatch_deadline"]) for t in left]
    assert got == [T0 + 5 * MINUTE, T0 + 9 * MINUTE, None]
    assert await waiting(service) == []
    assert await settle_stranded(service.ctx) == 0
