"""Outbox retention: sent rows older than the retention period leave the outbox for the
event history, and a ticket's timeline part reads both, so it is the same before and
after (the outbox stays small; the timeline loses nothing)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from shared.auth import Caller, Role, sign_headers
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
        assert moved >= 2 and left == 0
        await harness.bus.publish([registered("TJ2")])  # a newer row stays in the outbox
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ2")) == 1, "TJ2 clock")
        assert await timeline_part(harness, "TJ1") == before
        assert [e["type"] for e in await timeline_part(harness, "TJ2")] == ["sla.deadline_set"]
