"""Outbox retention: sent rows older than the retention period leave the outbox for the
event history, and a ticket's timeline part reads both, so it is the same before and
after (the outbox stays small; the timeline loses nothing)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from shared.auth import Caller, Role, sign_headers
from tests.unit.shared.test_outbox_inbox import envelope
from tests.unit.sla.conftest import Harness, dispatched, registered, settle, until


async def timeline_part(harness: Harness, ticket_id: str) -> list[dict]:  # type: ignore[type-arg]
    path = f"/internal/tickets/{ticket_id}/events"
    gateway = Caller(sub="gateway", role=Role.ADMIN, internal=True)
    headers = sign_headers(harness.settings.service_secret, gateway, "GET", path)
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sla") as client:
        r = await client.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_sent_rows_past_retention_move_to_the_history_and_the_timeline_keeps_them(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1")])
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ1")) == 2, "clocks")
        await settle(ctx)
        before = await timeline_part(harness, "TJ1")
        assert [e["type"] for e in before] == ["sla.deadline_set", "sla.deadline_set"]
        relay, outbox = ctx.relay, ctx.db.outbox

        assert await relay.prune() == 0  # sent, but younger than the retention period
        relay.retention = timedelta(0)
        moved = await relay.prune()
        async with ctx.db.engine.connect() as conn:
            left = await conn.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_not(None))
            )
        assert moved >= 1 and left == 1  # the newest row stays (see the next test)
        await harness.bus.publish([registered("TJ2")])  # a newer row stays in the outbox
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ2")) == 1, "TJ2 clock")
        assert await timeline_part(harness, "TJ1") == before
        assert [e["type"] for e in await timeline_part(harness, "TJ2")] == ["sla.deadline_set"]


async def test_the_timeline_holds_the_events_not_sent_yet_in_order(harness: Harness) -> None:
    """The outbox's index by key holds the sent rows only: the timeline reads the unsent
    ones apart, and a ticket's part lists them too, after those sent before them."""
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ1")])
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ1")) == 1, "clock")
        await settle(ctx)
        await ctx.relay.stop()  # what is written now stays unsent
        async with ctx.db.unit_of_work() as uow:
            uow.emit(envelope("X", key="TJ1"))
            uow.emit(envelope("Y", key="TJ2"))
        assert [e["type"] for e in await timeline_part(harness, "TJ1")] == [
            "sla.deadline_set",
            envelope("X").type,
        ]
        assert await ctx.relay.relay_once() == 2
        assert [e["type"] for e in await timeline_part(harness, "TJ1")] == [
            "sla.deadline_set",
            envelope("X").type,
        ]


async def test_retention_never_empties_the_outbox_so_no_id_is_given_out_twice(
    harness: Harness,
) -> None:
    """SQLite numbers an emptied table's rows from 1 again; had retention emptied the
    outbox, the next row's id would already be in the history, and moving it there would
    fail at every later pass (the outbox growing, the timeline out of order)."""
    async with harness.running() as ctx:
        relay, outbox, history = ctx.relay, ctx.db.outbox, ctx.db.event_history
        relay.retention = timedelta(0)
        for n in range(1, 4):  # a quiet spell between tickets empties what it can
            await harness.bus.publish([registered(f"TK{n}")])
            await until(
                lambda n=n: len(harness.emitted("sla.deadline_set", f"TK{n}")) == 1, "clock"
            )
            await settle(ctx)
            await relay.retain()
        async with ctx.db.engine.connect() as conn:
            kept = (await conn.execute(select(outbox.c.id))).scalars().all()
            moved = (await conn.execute(select(history.c.outbox_id))).scalars().all()
        assert len(kept) == 1 and len(moved) == 2 and max(moved) < kept[0]
        for n in range(1, 4):
            assert [e["type"] for e in await timeline_part(harness, f"TK{n}")] == [
                "sla.deadline_set"
            ]
