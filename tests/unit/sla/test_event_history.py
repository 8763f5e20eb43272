"""The event history: the relay moves each sent row there from the outbox in the batch's
transaction, and a ticket's timeline part reads both, so it shows every event whether sent
or not (the outbox holds only unsent rows; the timeline loses nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
from sqlalchemy import func, select

from shared.auth import Caller, Role, sign_headers
from shared.events import ClockWarning
from shared.service import ServiceContext
from tests.unit.sla.conftest import T0, Harness, dispatched, registered, settle, until


async def timeline_part(harness: Harness, ticket_id: str) -> list[dict]:  # type: ignore[type-arg]
    path = f"/internal/tickets/{ticket_id}/events"
    gateway = Caller(sub="gateway", role=Role.ADMIN, internal=True)
    headers = sign_headers(harness.settings.service_secret, gateway, "GET", path)
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sla") as client:
        r = await client.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def rows(ctx: ServiceContext) -> tuple[int, int]:
    """How many rows the outbox and the event history hold."""
    async with ctx.db.engine.connect() as conn:
        held = await conn.scalar(select(func.count()).select_from(ctx.db.outbox))
        moved = await conn.scalar(select(func.count()).select_from(ctx.db.event_history))
    return held or 0, moved or 0


async def test_sent_rows_are_in_the_history_and_the_timeline_shows_sent_and_unsent_alike(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1")])
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ1")) == 2, "clocks")
        await settle(ctx)
        sent = await timeline_part(harness, "TJ1")
        assert [e["type"] for e in sent] == ["sla.deadline_set", "sla.deadline_set"]
        held, moved = await rows(ctx)
        assert held == 0 and moved >= 2

        await ctx.relay.stop()  # a row written now stays unsent, in the outbox
        warning = ClockWarning(
            ticket_id="TJ1", clock="acceptance", deadline=T0, warned_at=T0
        ).envelope(producer="sla", occurred_at=datetime.now(UTC), ticket_id="TJ1")
        async with ctx.db.unit_of_work() as uow:
            uow.emit(warning)
        assert await rows(ctx) == (1, moved)
        unsent = await timeline_part(harness, "TJ1")
        assert unsent == [*sent, orjson.loads(warning.to_json())]

        assert await ctx.relay.relay_once() == 1
        assert await rows(ctx) == (0, moved + 1)
        assert await timeline_part(harness, "TJ1") == unsent
