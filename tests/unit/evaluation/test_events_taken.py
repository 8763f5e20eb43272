"""The events evaluation takes (issue 12: only the events a service needs reach it): of
the SLA clocks, the scores ask only whether one went overdue, so ``sla.deadline_set`` (two
or three a ticket, most clocks never late) is neither handled nor recorded; an overdue
clock's row begins with its ``sla.overdue``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from services.evaluation.app import SPEC as EVALUATION
from services.evaluation.models import hotspot_tracks, sla_clocks
from shared.consumer import Consumer
from tests.unit.evaluation.conftest import (
    T0,
    Evaluation,
    accepted,
    deadline_set,
    dispatched,
    overdue,
    registered,
)
from tests.unit.test_set_based_consumers import registered as registered_at_t0
from tests.unit.test_set_based_consumers import sent, serving

W = "city-water"


async def test_deadline_set_is_not_taken_and_an_overdue_clock_still_counts_late(
    service: Evaluation,
) -> None:
    s, m = T0, timedelta(minutes=1)
    clocks = [
        deadline_set("K", "dispatch", s, s + 30 * m, None),
        deadline_set("K", "acceptance", s + 5 * m, s + 35 * m, W),
        deadline_set("L", "acceptance", s + 5 * m, s + 35 * m, W),
    ]
    late = overdue("K", "acceptance", s + 35 * m)
    await service.feed(
        registered("K", s), registered("L", s), dispatched("K", s + 5 * m),
        dispatched("L", s + 5 * m), *clocks, late, accepted("K", s + 40 * m),
        accepted("L", s + 10 * m),
    )  # fmt: skip
    await service.bus.settle()

    inbox = service.ctx.db.inbox
    async with service.ctx.db.engine.connect() as conn:
        taken = set((await conn.execute(select(inbox.c.event_id))).scalars())
        rows = (await conn.execute(select(sla_clocks))).mappings().all()
    assert not taken & {str(e.event_id) for e in clocks}
    assert str(late.event_id) in taken
    assert [(r["ticket_id"], r["clock"], r["unit_key"]) for r in rows] == [("K", "acceptance", W)]
    assert rows[0]["overdue_at"] is not None

    r = await service.call("GET", f"/scores/{W}?from=2026-03-01&to=2026-03-31&explain=true")
    assert r.status_code == 200, r.text
    [water] = r.json()["data"]
    outcomes = {t["ticket_id"]: t["outcome"] for t in water["on_time_acceptance"]["tickets"]}
    assert outcomes == {"K": "late", "L": "on_time"}


async def test_tracked_matters_and_districts_are_tallied_without_inserting_their_tracks(
    tmp_path: Path,
) -> None:
    """A batch of registrations reads its matters and districts' hotspot tracks and
    writes their counts; only a matter and district heard of for the first time has its
    track inserted."""
    async with serving(EVALUATION, f"sqlite+aiosqlite:///{tmp_path}/evaluation.db") as ctx:
        consumer: Consumer = ctx.extras["consumer"]
        await consumer.handle_batch(
            [registered_at_t0(n, "WATER-001", district="120103") for n in (1, 2)]
        )
        statements = sent(ctx)
        await consumer.handle_batch(
            [registered_at_t0(n, "WATER-001", district="120103", minutes=n) for n in (3, 4, 5)]
        )
        assert not [s for s in statements if s.startswith("INSERT INTO hotspot_tracks")]
        await consumer.handle_batch([registered_at_t0(6, "WATER-001", district="120104")])
        assert [s for s in statements if s.startswith("INSERT INTO hotspot_tracks")]
        async with ctx.db.engine.connect() as conn:
            tracks = (await conn.execute(select(hotspot_tracks))).mappings().all()
    assert {(t["district"], t["tallied"]) for t in tracks} == {("120103", 5), ("120104", 1)}
